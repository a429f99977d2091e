"""Dead letters: the records of runs that failed, on ``ia.<p>.dlq`` and in the ``dead_letters`` table.

``DeadLetters`` makes a pipeline's dead-letter records (the shape is ``ia_modules.pipeline.wire.dead_letter``;
docs/streaming.md lists the fields) and appends them to the batch's ``Produced``, to be sent and written to the
table. Four kinds: ``step_failed`` (with the envelope to resume at the step), ``run_failed`` (the run failed
without a step failing for good), ``bad_input`` and ``internal_error`` (a record that is not an event, or that
the runtime itself failed on: its position and its bytes, base64; or a finished run whose ``pipeline_runs`` row
the database refused: its result record, with the database's reason).

Replay puts a ``step_failed`` letter's envelope back on the topic of the stage holding that step, with its
replay count raised and ``replay_from`` set, keyed as before; the run keeps its run id, its joins start afresh
from what its other branches brought, and the sink replaces its ``failed`` row with the new result. Listing and
replaying read the letters back as they were produced: the NULs the sink escaped (``read_json``, ``read_text`` in
streams/sink/results.py) are restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from ia_modules.database import DatabaseManager
from ia_modules.pipeline.kernel import RunState, StepFailure
from ia_modules.pipeline.wire import DeadLetterKind, dead_letter, run_error, run_id_for, source_of
from streams.envelope import Envelope, partition_for
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, Emission, produce
from streams.kafka.records import ConsumedRecord, now_ms
from streams.sink.checkpoint import Produced
from streams.sink.results import FinishedRun, read_json, read_text
from streams.topology import Topology


@dataclass
class DeadLetters:
    """Makes the dead letters of ``pipeline`` for its ``topic`` (``ia.<p>.dlq``)."""

    pipeline: str
    topic: str
    cluster_id: str
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES

    def step_failed(self, run: RunState, resume: Envelope, failure: StepFailure, partition: int, out: Produced) -> None:
        """A step failed for good; ``resume`` is the run just before it, to replay from."""
        letter = dead_letter(
            "step_failed",
            run_id=run.run_id,
            pipeline=self.pipeline,
            error=failure.as_error(),
            input=failure.input,
            envelope=resume.as_dict(),
            source=resume.source,
            created_ms=now_ms(),
        )
        self._emit(letter, resume.key, partition, out)

    def run_failed(self, run: RunState, envelope: Envelope, partition: int, out: Produced) -> None:
        """The run failed at its end without a step failing for good (end_with_failure, a condition that
        raised, a join timeout, a record too large)."""
        letter = dead_letter(
            "run_failed",
            run_id=run.run_id,
            pipeline=self.pipeline,
            error=run.error or run_error("Unknown", ""),
            source=envelope.source,
            created_ms=now_ms(),
        )
        self._emit(letter, envelope.key, partition, out)

    def bad_input(self, record: ConsumedRecord, reason: str, out: Produced) -> None:
        self._about_record(record, "bad_input", run_error("BadInput", reason), out)

    def internal_error(
        self, record: ConsumedRecord, trace: str, out: Produced, run_id: str | None = None, key: str | None = None
    ) -> None:
        """``run_id`` and ``key``: the run's, when the record carries one (an envelope); else the record's."""
        error = run_error("InternalError", trace.strip().splitlines()[-1], traceback=trace)
        self._about_record(record, "internal_error", error, out, run_id, key)

    def row_refused(self, run: FinishedRun, reason: str, out: Produced) -> None:
        """The database refused a finished run's ``pipeline_runs`` row: an ``internal_error`` letter with its
        reason, the result record's bytes (as on the output topic) in ``raw``, keyed as the run."""
        run_id = str(run.record["run_id"])
        key = run.key if run.key is not None else run_id
        letter = dead_letter(
            "internal_error",
            run_id=run_id,
            pipeline=self.pipeline,
            error=run_error("RowRefused", reason),
            source=run.record.get("source"),
            created_ms=now_ms(),
            raw=orjson.dumps(run.record, option=orjson.OPT_NON_STR_KEYS),
            key=key,
        )
        self._emit(letter, key, run.partition, out)

    def _about_record(
        self,
        record: ConsumedRecord,
        kind: DeadLetterKind,
        error: Any,
        out: Produced,
        run_id: str | None = None,
        key: str | None = None,
    ) -> None:
        run_id = run_id or run_id_for(self.cluster_id, record.topic, record.partition, record.offset)
        key = key if key is not None else record.key.decode("utf-8", "replace") if record.key else run_id
        letter = dead_letter(
            kind,
            run_id=run_id,
            pipeline=self.pipeline,
            error=error,
            source=source_of(record.topic, record.partition, record.offset, record.timestamp),
            created_ms=now_ms(),
            raw=record.value,
            key=key,
        )
        self._emit(letter, key, record.partition, out)

    def _emit(self, letter: dict[str, Any], key: str, partition: int, out: Produced) -> None:
        value = orjson.dumps(letter, option=orjson.OPT_NON_STR_KEYS)
        if len(value) > self.max_bytes:  # what is bulky goes; what went wrong, and where, stays
            bulky = [name for name in ("envelope", "input", "raw") if letter.get(name) is not None]
            letter = {**letter, **dict.fromkeys(bulky), "omitted": {"fields": bulky, "bytes": len(value)}}
            value = orjson.dumps(letter, option=orjson.OPT_NON_STR_KEYS)
        out.letters.append(letter)
        out.sends.append(
            Emission(self.topic, partition, key.encode(), value, (("ia-run-id", str(letter["run_id"]).encode()),))
        )


LIST_LETTERS = (
    "SELECT id, run_id, kind, step, attempts, error_type, error_message, created_at, replayed_at, payload "
    "FROM dead_letters WHERE pipeline = ? ORDER BY id DESC LIMIT ?"
)
LETTERS_TO_REPLAY = (
    "SELECT id, kind, step, payload, replayed_at FROM dead_letters WHERE pipeline = ? AND replayed_at IS NULL "
    "ORDER BY id"
)
LETTER_BY_ID = "SELECT id, kind, step, payload, replayed_at FROM dead_letters WHERE pipeline = ? AND id = ?"
MARK_REPLAYED = "UPDATE dead_letters SET replayed_at = CURRENT_TIMESTAMP WHERE id = ? AND replayed_at IS NULL"


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one dead letter: replayed to ``topic``, or why not."""

    id: int
    run_id: str | None
    topic: str | None
    problem: str | None = None


def payload_of(row: dict[str, Any]) -> dict[str, Any]:
    """The letter a row's ``payload`` holds, as it was produced: its JSON text read back with the NULs the sink
    escaped restored (a dict is taken as read already, as ``list_letters`` leaves it)."""
    payload = row.get("payload")
    if isinstance(payload, str | bytes):
        decoded: dict[str, Any] = read_json(payload)
        return decoded
    return dict(payload or {})


async def list_letters(db: DatabaseManager, pipeline: str, limit: int = 50) -> list[dict[str, Any]]:
    """The pipeline's dead letters, newest first, each with whether it can be replayed and why not; text as it
    was produced (``payload`` the letter itself)."""
    rows = await db.fetch_all(LIST_LETTERS, (pipeline, limit))
    for row in rows:
        for column in ("step", "error_type", "error_message"):
            if column in row:
                row[column] = read_text(row[column])
        row["payload"] = letter = payload_of(row)
        problem = replay_problem(row, letter)
        row["replayable"] = problem is None
        if problem is not None:
            row["not_replayable"] = problem
    return rows


def replay_problem(row: dict[str, Any], letter: dict[str, Any], topology: Topology | None = None) -> str | None:
    """Why this dead letter cannot be replayed, or None."""
    if row.get("replayed_at") is not None:
        return f"already replayed at {row['replayed_at']}"
    if letter.get("kind") != "step_failed" or not letter.get("envelope"):
        reason = (letter.get("error") or {}).get("message") or letter.get("kind")
        return f"not replayable ({letter.get('kind')}): {reason}"
    if topology is not None and letter.get("resume_at") not in topology.stage_of:
        return f"step '{letter.get('resume_at')}' is no longer in the pipeline"
    return None


def replay_emission(letter: dict[str, Any], topology: Topology) -> Emission:
    """The envelope of a step-failed dead letter, raised one replay, for the stage holding its step."""
    envelope = dict(letter["envelope"])
    envelope["replay"] = int(envelope.get("replay") or 0) + 1
    envelope["replay_from"] = letter["resume_at"]
    key = str(envelope["key"]).encode()
    stage = topology.stages[topology.stage_of[letter["resume_at"]]]
    headers = (("ia-run-id", str(envelope["run_id"]).encode()),)
    return Emission(stage.topic, partition_for(key, topology.partitions), key, orjson.dumps(envelope), headers)


async def replay_letters(
    db: DatabaseManager, producer: AIOKafkaProducer, pipeline: str, topology: Topology, letter_id: int | None
) -> list[ReplayOutcome]:
    """Replay one dead letter (``letter_id``) or every one not replayed yet; each is marked replayed once the
    broker has acknowledged its envelope."""
    if letter_id is not None:
        row = await db.fetch_one(LETTER_BY_ID, (pipeline, letter_id))
        if row is None:
            return [ReplayOutcome(letter_id, None, None, f"no dead letter {letter_id} of pipeline {pipeline}")]
        rows = [row]
    else:
        rows = await db.fetch_all(LETTERS_TO_REPLAY, (pipeline,))
    outcomes = []
    for row in rows:
        letter = payload_of(row)
        problem = replay_problem(row, letter, topology)
        if problem is not None:
            outcomes.append(ReplayOutcome(row["id"], letter.get("run_id"), None, problem))
            continue
        emission = replay_emission(letter, topology)
        await produce(producer, [emission])
        await db.execute(MARK_REPLAYED, (row["id"],))
        outcomes.append(ReplayOutcome(row["id"], letter.get("run_id"), emission.topic))
    return outcomes
