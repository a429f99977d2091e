"""The results sink: finished runs into ``pipeline_runs`` and dead letters into ``dead_letters``, in batches.

A batch is one transaction. On PostgreSQL the runs go in with one ``INSERT ... SELECT FROM unnest(...)``
(see benchmarks/sink_inserts.py for why); on SQLite with ``executemany``. A run id already present is left
alone unless its row says ``failed`` (a replayed run replaces its failed row; a success is never
overwritten), so a batch written again after a crash doubles nothing.

PostgreSQL's text and jsonb cannot hold NUL (U+0000), which JSON strings may (``\\u0000``): text is stored with
NUL as ``MARK + "0"`` and MARK itself (U+E000) as ``MARK + "e"``, on both databases alike, and only where a
value holds one of the two (``stored_json``, ``stored_text``); ``read_json`` and ``read_text`` reverse it.
docs/database.md shows the stored form and how to read it in SQL.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ia_modules.database import DatabaseManager

if TYPE_CHECKING:  # the dead letters' module imports this one
    from streams.metrics.catalog import RunSeries
    from streams.sink.dead_letters import DeadLetters

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
    """A result record and when its run finished; and, should the database refuse its row, where the dead
    letter saying so goes: the pipeline's ``DeadLetters`` (its dead-letter topic), the run's partition and key."""

    record: dict[str, Any]
    finished_ms: int
    dead_letters: DeadLetters | None = field(default=None, compare=False, repr=False)
    partition: int = 0
    key: str | None = None
    started_ms: int = 0
    """The input record's Kafka timestamp (epoch ms): where ``ia_end_to_end_latency_seconds`` starts."""
    consumed_ms: int = 0
    """When the input record was first consumed (0: not known): where ``ia_run_duration_seconds`` starts."""
    replay: int = 0
    """How often the run was replayed from a dead letter (a replay's latencies are not counted)."""
    series: RunSeries | None = field(default=None, compare=False, repr=False)
    """The run's pipeline's series in the worker's metrics (None: looked up by pipeline, or no metrics)."""


# -- text PostgreSQL cannot store --------------------------------------------------------------------------------

MARK = "\ue000"
"""The escape character of stored text (U+E000, the first private-use character): in the stored form every MARK
begins one of two pairs, ``NUL_STORED`` (a NUL of the original) or ``MARK_STORED`` (a MARK of the original)."""
NUL_STORED = MARK + "0"
MARK_STORED = MARK + "e"
# In JSON text a backslash always begins an escape; matching every escape whole keeps the scan on escape
# boundaries, so that the text \\u0000 (an escaped backslash, then "u0000") is not taken for a NUL.
_JSON_ESCAPES = re.compile(r"\\u0000|\\u[eE]000|\\.|\ue000", re.DOTALL)


def _stored_escape(match: re.Match[str]) -> str:
    found = match.group()
    if len(found) == 2:  # any other escape, left as it is
        return found
    return NUL_STORED if found == "\\u0000" else MARK_STORED


def stored_json(text: str) -> str:
    """JSON text as it is stored: every NUL (``\\u0000``) in a string, key or value, at any depth, becomes
    ``MARK + "0"`` and every MARK (raw or ``\\ue000``) ``MARK + "e"``. JSON without either is returned as it is,
    mostly after one search for a backslash and one for MARK (at once false in text of Latin-1 characters only)."""
    escaped = "\\" in text and ("\\u0000" in text or "\\ue000" in text or "\\uE000" in text)
    if not escaped and MARK not in text:
        return text
    return _JSON_ESCAPES.sub(_stored_escape, text)


def stored_text(text: str | None) -> str | None:
    """Text as it is stored in a text column: NUL as ``MARK + "0"``, MARK as ``MARK + "e"``."""
    if text is None or ("\0" not in text and MARK not in text):
        return text
    return text.replace(MARK, MARK_STORED).replace("\0", NUL_STORED)


def read_text(text: str | None) -> str | None:
    """A text column's value as it was before ``stored_text``."""
    if text is None or MARK not in text:
        return text
    return text.replace(NUL_STORED, "\0").replace(MARK_STORED, MARK)


def read_json(stored: str | bytes) -> Any:
    """A JSON column's value (its text, as the database gives it back) as it was before ``stored_json``. Every
    MARK of the stored form begins a pair, so replacing the NUL pairs first and then the MARK pairs is exact."""
    text = stored.decode() if isinstance(stored, bytes) else stored
    if MARK in text:
        text = text.replace(NUL_STORED, "\\u0000").replace(MARK_STORED, MARK)
    return orjson.loads(text)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return stored_json(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())


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
        stored_text(record["pipeline"]),
        stored_text(record.get("pipeline_version")),
        record["status"],
        _json(record.get("input")),
        _json(record.get("outputs")),
        _json(record.get("trace")),
        _json(record.get("error")),
        stored_text(source.get("topic")),
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
        stored_text(letter["pipeline"]),
        stored_text(letter.get("step")),
        letter.get("attempts") or 0,
        stored_text(error.get("type") or "Unknown"),
        stored_text(error.get("message") or ""),
        stored_text(error.get("traceback")),
        _json(letter),
        stored_text(source.get("topic")),
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
