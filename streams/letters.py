"""The dead-letter records of one pipeline: what goes on ``ia.<p>.dlq``, kept as well for the results sink.

Four kinds: ``step_failed`` (with the envelope to resume at the step), ``run_failed`` (the run failed without a
step failing for good), ``bad_input`` and ``internal_error`` (a record that is not an event, or that the runtime
itself failed on: its position and its bytes, base64). docs/streaming.md lists the fields.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from ia_modules.pipeline.kernel import RunState, StepFailure

from .emission import DEFAULT_MAX_RECORD_BYTES, Emission
from .envelope import Envelope, run_id_for
from .records import ConsumedRecord, now_ms, record_source


@dataclass
class DeadLetters:
    """Builds the dead letters of ``pipeline`` and keeps them until the sink takes them."""

    pipeline: str
    topic: str
    cluster_id: str
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES
    written: list[dict[str, Any]] = field(default_factory=list)

    def take(self) -> list[dict[str, Any]]:
        written, self.written = self.written, []
        return written

    def forget(self, run_id: str) -> None:
        """Drop the letters written for ``run_id`` since the last ``take`` (the run is ended another way)."""
        self.written = [letter for letter in self.written if letter["run_id"] != run_id]

    def step_failed(self, run: RunState, resume: Envelope, failure: StepFailure, partition: int) -> Emission:
        """A step failed for good; ``resume`` is the run just before it, to replay from."""
        return self._emit(
            {
                "kind": "step_failed",
                "run_id": run.run_id,
                "pipeline": self.pipeline,
                "step": failure.step,
                "attempts": failure.attempts,
                "error": {"type": failure.type, "message": failure.message, "traceback": failure.traceback},
                "input": failure.input,
                "envelope": resume.as_dict(),
                "resume_at": failure.step,
                "source": resume.source,
                "created_ms": now_ms(),
            },
            resume.key,
            partition,
        )

    def run_failed(self, run: RunState, envelope: Envelope, partition: int) -> Emission:
        """The run failed at its end without a step failing for good (end_with_failure, a condition that
        raised, a join timeout)."""
        error = run.error or {}
        return self._emit(
            {
                "kind": "run_failed",
                "run_id": run.run_id,
                "pipeline": self.pipeline,
                "step": error.get("step"),
                "attempts": error.get("attempts", 0),
                "error": {k: error.get(k) for k in ("type", "message", "traceback")},
                "input": None,
                "envelope": None,
                "resume_at": None,
                "source": envelope.source,
                "created_ms": now_ms(),
            },
            envelope.key,
            partition,
        )

    def bad_input(self, record: ConsumedRecord, reason: str) -> Emission:
        letter = self._about_record(record, "bad_input", "BadInput", reason)
        return self._emit(letter, letter["key"], record.partition)

    def internal_error(self, record: ConsumedRecord, trace: str) -> Emission:
        letter = self._about_record(record, "internal_error", "InternalError", trace.strip().splitlines()[-1])
        letter["error"]["traceback"] = trace
        return self._emit(letter, letter["key"], record.partition)

    def _about_record(self, record: ConsumedRecord, kind: str, error_type: str, message: str) -> dict[str, Any]:
        run_id = run_id_for(self.cluster_id, record.topic, record.partition, record.offset)
        return {
            "kind": kind,
            "run_id": run_id,
            "pipeline": self.pipeline,
            "step": None,
            "attempts": 0,
            "error": {"type": error_type, "message": message, "traceback": None},
            "input": None,
            "raw": base64.b64encode(record.value or b"").decode(),
            "envelope": None,
            "resume_at": None,
            "source": record_source(record),
            "key": record.key.decode("utf-8", "replace") if record.key else run_id,
            "created_ms": now_ms(),
        }

    def _emit(self, letter: dict[str, Any], key: str, partition: int) -> Emission:
        value = orjson.dumps(letter, option=orjson.OPT_NON_STR_KEYS)
        if len(value) > self.max_bytes:  # what is bulky goes; what went wrong, and where, stays
            bulky = [name for name in ("envelope", "input", "raw") if letter.get(name) is not None]
            letter = {**letter, **dict.fromkeys(bulky), "omitted": {"fields": bulky, "bytes": len(value)}}
            value = orjson.dumps(letter, option=orjson.OPT_NON_STR_KEYS)
        self.written.append(letter)
        return Emission(self.topic, partition, key.encode(), value, (("ia-run-id", str(letter["run_id"]).encode()),))
