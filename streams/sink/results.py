"""The results sink: finished runs into ``pipeline_runs`` and dead letters into ``dead_letters``, in batches.

A batch is one transaction. On PostgreSQL the runs go in with one ``INSERT ... SELECT FROM unnest(...)``
(see benchmarks/sink_inserts.py for why); on SQLite with ``executemany``. A run id already present is left
alone unless its row says ``failed`` (a replayed run replaces its failed row; a success is never
overwritten), so a batch written again after a crash doubles nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ia_modules.database import DatabaseManager

RUN_COLUMNS = (
    "run_id", "pipeline", "pipeline_version", "status", "input", "output", "trace", "error",
    "source_topic", "source_partition", "source_offset", "source_timestamp", "started_at", "finished_at",
    "duration_ms",
)  # fmt: skip
_UPDATED = ", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS[1:])

UPSERT_RUNS_UNNEST = (
    f"INSERT INTO pipeline_runs ({', '.join(RUN_COLUMNS)}) "
    "SELECT u.run_id, u.pipeline, u.pipeline_version, u.status, u.input::jsonb, u.output::jsonb, u.trace::jsonb, "
    "u.error::jsonb, u.source_topic, u.source_partition, u.source_offset, u.source_timestamp, u.started_at, "
    "u.finished_at, u.duration_ms "
    "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
    "$9::text[], $10::int[], $11::bigint[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], "
    f"$15::float8[]) AS u({', '.join(RUN_COLUMNS)}) "
    f"ON CONFLICT (run_id) DO UPDATE SET {_UPDATED}, recorded_at = now() WHERE pipeline_runs.status = 'failed'"
)
UPSERT_RUNS_ROWS = (
    f"INSERT INTO pipeline_runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in RUN_COLUMNS)}) "
    f"ON CONFLICT (run_id) DO UPDATE SET {_UPDATED}, recorded_at = CURRENT_TIMESTAMP "
    "WHERE pipeline_runs.status = 'failed'"
)
LETTER_COLUMNS = (
    "run_id", "pipeline", "step", "attempts", "error_type", "error_message", "error_traceback", "payload",
    "source_topic", "source_partition", "source_offset", "kind", "replay",
)  # fmt: skip
INSERT_LETTERS = (
    f"INSERT INTO dead_letters ({', '.join(LETTER_COLUMNS)}) VALUES ({', '.join('?' for _ in LETTER_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class FinishedRun:
    """A result record and when its run finished."""

    record: dict[str, Any]
    finished_ms: int


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _when(epoch_ms: int | None) -> datetime | None:
    return None if not epoch_ms else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _started(record: dict[str, Any]) -> datetime | None:
    """When the run's first step started (the end stage passes the trace on as encoded JSON)."""
    trace = record.get("trace") or ()
    if isinstance(trace, orjson.Fragment):
        trace = orjson.loads(orjson.dumps(trace))
    for entry in trace:
        if entry.get("started_at"):
            return datetime.fromisoformat(entry["started_at"].replace("Z", "+00:00"))
    return None


def run_row(run: FinishedRun) -> tuple[Any, ...]:
    """The ``pipeline_runs`` row of a finished run, in RUN_COLUMNS order."""
    record = run.record
    source = record.get("source") or {}
    finished = _when(run.finished_ms)
    started = _started(record) or finished
    duration = (finished - started).total_seconds() * 1000 if finished and started else None
    return (
        uuid.UUID(record["run_id"]),
        record["pipeline"],
        record.get("pipeline_version"),
        record["status"],
        _json(record.get("input")),
        _json(record.get("outputs")),
        _json(record.get("trace")),
        _json(record.get("error")),
        source.get("topic"),
        source.get("partition"),
        source.get("offset"),
        _when(source.get("timestamp")),
        started,
        finished,
        duration,
    )


def letter_row(letter: dict[str, Any]) -> tuple[Any, ...]:
    """The ``dead_letters`` row of a dead letter, in LETTER_COLUMNS order; the payload keeps the whole letter."""
    source = letter.get("source") or {}
    error = letter.get("error") or {}
    envelope = letter.get("envelope") or {}
    return (
        letter["run_id"],
        letter["pipeline"],
        letter.get("step"),
        letter.get("attempts") or 0,
        error.get("type") or "Unknown",
        error.get("message") or "",
        error.get("traceback"),
        _json(letter),
        source.get("topic"),
        source.get("partition"),
        source.get("offset"),
        letter.get("kind") or "step_failed",
        envelope.get("replay") or 0,
    )


class ResultsSink:
    """Writes batches of finished runs and dead letters; raises DatabaseConnectionError while the database
    is unreachable (the worker then pauses and retries)."""

    def __init__(self, db: DatabaseManager) -> None:
        self.db = db

    async def write(self, runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        if not runs and not letters:
            return
        rows = [run_row(run) for run in runs]
        async with self.db.transaction() as tx:
            if rows and self.db.dialect == "postgresql":
                columns = [list(column) for column in zip(*rows, strict=True)]
                await tx.execute(UPSERT_RUNS_UNNEST, tuple(columns))
            elif rows:
                await tx.executemany(UPSERT_RUNS_ROWS, [_sqlite_row(row) for row in rows])
            if letters:
                await tx.executemany(INSERT_LETTERS, [letter_row(letter) for letter in letters])


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(value) if isinstance(value, uuid.UUID) else value for value in row)
