"""The JSON shapes a run leaves behind, each built here and nowhere else: the run error, the result record, the
dead letter, the run id and the partition key, and the event that starts a run.

In-process runs (``PipelineResult.to_record``) and streamed runs (the end stage, the dead-letter queue, the
results sink) build them with these functions, so ``ia-modules run``, the output topic, ``consume`` and the
``pipeline_runs`` / ``dead_letters`` tables all see the same fields. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import hashlib
import operator
import re
import uuid
from itertools import accumulate, repeat
from typing import Any, Literal, TypedDict

import orjson

from .compiler import PipelinePlan
from .templates import Scope, render_text


class RunError(TypedDict):
    """Why a run failed (``error`` of the result record; null on success)::

        {"step": "enrich" | null, "type": "ValueError", "message": "...", "attempts": 3, "traceback": "..." | null}

    ``type`` is the exception's class for a step that failed, else one of ``ConditionError``,
    ``EndWithFailure``, ``JoinTimeout``, ``RecordTooLarge``, ``RecordNotEncodable``; ``step`` is null when no step
    is to blame."""

    step: str | None
    type: str
    message: str
    attempts: int
    traceback: str | None


#: Run errors that end a run without a step failing for good; their dead letter (``run_failed``) is written when
#: the run ends, not when a step fails.
RUN_LEVEL_ERRORS = frozenset(
    {"EndWithFailure", "ConditionError", "JoinTimeout", "RecordTooLarge", "RecordNotEncodable"}
)


def run_error(
    error_type: str, message: str, *, step: str | None = None, attempts: int = 0, traceback: str | None = None
) -> RunError:
    """A run's error, in the one shape every consumer of results reads."""
    return {"step": step, "type": error_type, "message": message, "attempts": attempts, "traceback": traceback}


def source_of(topic: str, partition: int, offset: int, timestamp: int | None) -> dict[str, Any]:
    """Where a streamed run's input record was: ``{"topic", "partition", "offset", "timestamp"}`` (epoch ms)."""
    return {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp}


def result_record(
    *,
    run_id: str,
    pipeline: str,
    pipeline_version: str,
    status: str,
    outputs: Any,
    error: RunError | None,
    trace: Any,
    input: Any,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    """The result of a run, the same on the output topic, from ``consume`` and from ``run``::

        {"run_id", "pipeline", "pipeline_version", "status": "success" | "failed", "outputs", "error": RunError | null,
         "trace": [...], "input": {...}, "source": {"topic", "partition", "offset", "timestamp"} | null}

    ``trace`` and ``input`` may be ``orjson.Fragment`` (already encoded) where the stream carries them as bytes;
    ``source`` is null in-process."""
    return {
        "run_id": run_id,
        "pipeline": pipeline,
        "pipeline_version": pipeline_version,
        "status": status,
        "outputs": outputs,
        "error": error,
        "trace": trace,
        "input": input,
        "source": source,
    }


DeadLetterKind = Literal["step_failed", "run_failed", "bad_input", "internal_error"]


def dead_letter(
    kind: DeadLetterKind,
    *,
    run_id: str,
    pipeline: str,
    error: RunError,
    source: dict[str, Any] | None,
    created_ms: int,
    input: dict[str, Any] | None = None,
    envelope: dict[str, Any] | None = None,
    raw: bytes | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """A dead letter, as it goes on ``ia.<p>.dlq`` and into ``dead_letters.payload``::

        {"kind", "run_id", "pipeline", "step", "attempts", "error": {"type", "message", "traceback"},
         "input": the failed step's input | null, "envelope": the run to resume at the step | null,
         "resume_at": the step | null, "source": {...} | null, "created_ms",
         "raw": the record's bytes, base64 (bad_input, internal_error only), "key" (those two only)}

    ``step_failed``: a step failed for good, replayable from ``envelope``; ``run_failed``: the run failed with
    a run-level error; ``bad_input``: a record that is not an event or envelope; ``internal_error``: a record
    the runtime itself failed on."""
    letter: dict[str, Any] = {
        "kind": kind,
        "run_id": run_id,
        "pipeline": pipeline,
        "step": error.get("step"),
        "attempts": error.get("attempts") or 0,
        "error": {"type": error.get("type"), "message": error.get("message"), "traceback": error.get("traceback")},
        "input": input,
        "envelope": envelope,
        "resume_at": error.get("step") if envelope is not None else None,
        "source": source,
        "created_ms": created_ms,
    }
    if kind in ("bad_input", "internal_error"):
        letter["raw"] = base64.b64encode(raw or b"").decode()
        letter["key"] = key if key is not None else run_id
    return letter


#: Fixed for all time: run ids must stay the same for the same record across versions and restarts.
RUN_ID_NAMESPACE = uuid.UUID("6f1c7a52-3b8e-5d0a-9c4e-2a7b1e9d4f60")
_NAMESPACE_BYTES = RUN_ID_NAMESPACE.bytes
_PREFIX_CACHE_SIZE = 4_096
_hashed_prefixes: dict[tuple[str, str, int], Any] = {}


def run_id_for(cluster_id: str, topic: str, partition: int, offset: int) -> str:
    """The run id of the input record at ``topic``/``partition``/``offset`` on the cluster ``cluster_id``:
    ``uuid5(RUN_ID_NAMESPACE, "<cluster id>:<topic>:<partition>:<offset>")``, computed without building a UUID
    object, from a SHA-1 state that has hashed all but the offset already (a test checks it against
    ``uuid.uuid5``)."""
    where = (cluster_id, topic, partition)
    prefix = _hashed_prefixes.get(where)
    if prefix is None:
        if len(_hashed_prefixes) >= _PREFIX_CACHE_SIZE:
            _hashed_prefixes.clear()
        prefix = _hashed_prefixes[where] = hashlib.sha1(
            _NAMESPACE_BYTES + f"{cluster_id}:{topic}:{partition}:".encode()
        )
    digest = prefix.copy()
    digest.update(b"%d" % offset)
    x = digest.hexdigest()
    # version 5 in the 13th hex digit, the RFC 4122 variant in the top two bits of the 17th
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{'89ab'[int(x[16], 16) & 3]}{x[17:20]}-{x[20:32]}"


def event_key(plan: PipelinePlan, event: dict[str, Any]) -> str | None:
    """``stream.key`` resolved on the event, or None when the pipeline has none or it resolves to nothing."""
    if plan.key is None:
        return None
    value = plan.key.resolve(Scope(event, plan.parameters, {}))
    return None if value is None or value == "" else render_text(value)


def partition_key(plan: PipelinePlan, event: dict[str, Any], record_key: bytes | None, run_id: str) -> str:
    """The key every message of a run carries: ``stream.key`` resolved on the event, else the input record's
    key, else the run id."""
    key = event_key(plan, event)
    if key is not None:
        return key
    if record_key:
        return record_key.decode("utf-8", "replace")
    return run_id


DEFAULT_MAX_JSON_DEPTH = 100
"""How deeply an event may nest (``IA_MAX_JSON_DEPTH``; the setting's description has the margin)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET_STEPS = bytes.maketrans(b"{[}]", b"\x02\x02\x00\x00")  # less 1: an opener one level up, a closer down
_NOT_BRACKETS = bytes(set(range(256)) - set(b"{[}]"))


def json_depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests objects and arrays (``{}`` and ``[1]`` are 1, ``{"a": [1]}`` is 2,
    a scalar 0), read off the text without parsing it: brackets inside strings do not count."""
    brackets = _STRING.sub(b"", raw).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(accumulate(map(operator.sub, brackets, repeat(1))), default=0)


def _openers_exceed(raw: bytes, limit: int) -> bool:
    """Whether ``raw`` holds more than ``limit`` opening brackets (its depth cannot be larger): found one by one
    with ``find`` (memchr), so an event with a few brackets costs a few calls, not a pass per byte."""
    found = 0
    for opener in b"{[":
        at = raw.find(opener)
        while at >= 0:
            found += 1
            if found > limit:
                return True
            at = raw.find(opener, at + 1)
    return False


def parse_event(raw: bytes | str, max_depth: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """An event: a JSON object, or None and the reason it is not one; with ``max_depth``, also one that nests
    deeper than that (``json_depth``). Most events hold no array and no object but themselves, which two memchr
    passes tell (about 0.2 % of a run's work); others are measured only when they hold more opening brackets
    than ``max_depth``."""
    if max_depth is not None:
        text = raw.encode() if isinstance(raw, str) else raw
        if (0x5B in text or 0x7B in text[1:]) and _openers_exceed(text, max_depth):  # [ anywhere, { after the first
            if (depth := json_depth(text)) > max_depth:
                limit = f"over the {max_depth} an event may have (IA_MAX_JSON_DEPTH)"
                return None, f"the event nests {depth} levels deep, {limit}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"an event must be a JSON object, not {type(value).__name__}"
    return value, None
