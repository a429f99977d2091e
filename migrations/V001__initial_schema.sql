-- V001 (PostgreSQL): finished pipeline runs and the dead letters of failed ones.
-- SQLite applies V001__initial_schema.sqlite.sql instead: the same tables and columns in SQLite's types.

-- One row per run, written by the end stage's sink; the run id is deterministic (uuid5 of the input record's
-- cluster, topic, partition and offset), so a reprocessed record hits the primary key and is not doubled.
CREATE TABLE pipeline_runs (
    run_id           UUID PRIMARY KEY,
    pipeline         TEXT NOT NULL,
    pipeline_version TEXT,
    status           TEXT NOT NULL CHECK (status IN ('success', 'failed')),
    input            JSONB,
    output           JSONB,
    trace            JSONB,
    error            JSONB,            -- null on success
    source_topic     TEXT,             -- where the input record came from (null in-process)
    source_partition INTEGER,
    source_offset    BIGINT,
    source_timestamp TIMESTAMPTZ,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms      DOUBLE PRECISION,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now()   -- when the row was written (finished_at + sink delay)
);

-- The latest runs of a pipeline, and its runs in a time window.
CREATE INDEX pipeline_runs_pipeline_finished_idx ON pipeline_runs (pipeline, finished_at DESC);
-- The latest runs with a given status across pipelines ("what failed in the last hour").
CREATE INDEX pipeline_runs_status_finished_idx ON pipeline_runs (status, finished_at DESC);
-- A pipeline's failed runs: a small partial index, since failures are the rare rows one looks for.
CREATE INDEX pipeline_runs_failed_idx ON pipeline_runs (pipeline, finished_at DESC) WHERE status = 'failed';
-- Which run came from a given input record (topic, partition, offset).
CREATE INDEX pipeline_runs_source_idx ON pipeline_runs (source_topic, source_partition, source_offset);
-- Time-range scans and retention deletes over all pipelines; rows arrive in finished_at order, so BRIN is tiny.
CREATE INDEX pipeline_runs_finished_brin ON pipeline_runs USING brin (finished_at);

-- One row per run that failed for good at a step (or whose input could not be read at all: step is null).
CREATE TABLE dead_letters (
    id               BIGSERIAL PRIMARY KEY,
    run_id           UUID NOT NULL,
    pipeline         TEXT NOT NULL,
    step             TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error_type       TEXT NOT NULL,
    error_message    TEXT NOT NULL,
    error_traceback  TEXT,
    payload          JSONB,            -- the envelope to replay and the step's resolved input
    source_topic     TEXT,
    source_partition INTEGER,
    source_offset    BIGINT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at      TIMESTAMPTZ,
    replayed         BOOLEAN GENERATED ALWAYS AS (replayed_at IS NOT NULL) STORED
);

-- `dlq list PIPELINE`: a pipeline's dead letters, newest first.
CREATE INDEX dead_letters_pipeline_created_idx ON dead_letters (pipeline, created_at DESC);
-- `dlq replay PIPELINE --all`: the ones not replayed yet, oldest first.
CREATE INDEX dead_letters_pending_idx ON dead_letters (pipeline, id) WHERE replayed_at IS NULL;
-- From a run to its dead letters.
CREATE INDEX dead_letters_run_idx ON dead_letters (run_id);
