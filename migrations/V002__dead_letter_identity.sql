-- V002 (PostgreSQL and SQLite alike): what kind of dead letter a row is, and which replay of its run wrote it,
-- so that a dead letter written again after a crash (the worker re-runs an uncommitted batch) is not doubled.
ALTER TABLE dead_letters ADD COLUMN kind TEXT NOT NULL DEFAULT 'step_failed';
ALTER TABLE dead_letters ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;

-- One dead letter per run, kind, step and replay: the sink inserts with ON CONFLICT DO NOTHING on it.
CREATE UNIQUE INDEX dead_letters_identity_idx ON dead_letters (run_id, kind, COALESCE(step, ''), replay);
