-- V001 (SQLite): the tables of V001__initial_schema.sql with SQLite's types, for development databases.
-- JSON columns hold JSON text, timestamps ISO 8601 text (UTC), run ids their text form.

CREATE TABLE pipeline_runs (
    run_id           TEXT PRIMARY KEY,
    pipeline         TEXT NOT NULL,
    pipeline_version TEXT,
    status           TEXT NOT NULL CHECK (status IN ('success', 'failed')),
    input            TEXT,
    output           TEXT,
    trace            TEXT,
    error            TEXT,
    source_topic     TEXT,
    source_partition INTEGER,
    source_offset    INTEGER,
    source_timestamp TEXT,
    started_at       TEXT,
    finished_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    duration_ms      REAL,
    recorded_at      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX pipeline_runs_pipeline_finished_idx ON pipeline_runs (pipeline, finished_at DESC);
CREATE INDEX pipeline_runs_status_finished_idx ON pipeline_runs (status, finished_at DESC);
CREATE INDEX pipeline_runs_failed_idx ON pipeline_runs (pipeline, finished_at DESC) WHERE status = 'failed';
CREATE INDEX pipeline_runs_source_idx ON pipeline_runs (source_topic, source_partition, source_offset);
CREATE INDEX pipeline_runs_finished_idx ON pipeline_runs (finished_at);

CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT NOT NULL,
    pipeline         TEXT NOT NULL,
    step             TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error_type       TEXT NOT NULL,
    error_message    TEXT NOT NULL,
    error_traceback  TEXT,
    payload          TEXT,
    source_topic     TEXT,
    source_partition INTEGER,
    source_offset    INTEGER,
    created_at       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    replayed_at      TEXT,
    replayed         INTEGER GENERATED ALWAYS AS (replayed_at IS NOT NULL) STORED
);

CREATE INDEX dead_letters_pipeline_created_idx ON dead_letters (pipeline, created_at DESC);
CREATE INDEX dead_letters_pending_idx ON dead_letters (pipeline, id) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_run_idx ON dead_letters (run_id);
