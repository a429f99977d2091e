"""The envelope: what travels between stages of a run, and how it is encoded (orjson).

It carries the run's identity and partition key, the input, the step outputs still read downstream, the trace
so far, the first error, the step to resume at, for a join that fired, which of its paths were taken and, for
joins still ahead, the tokens this run already decided for them (``carried``: a skipped branch costs no
message and no join-state write when the run's only envelope brings its token along).

``StreamRun`` is the kernel's run state on one stage, with the trace the envelope brought.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from ia_modules.pipeline.kernel import RunState, Token
from ia_modules.pipeline.wire import RunError

ENVELOPE_VERSION = 2

_PARTITION_CACHE_SIZE = 65_536
_partitions_of_keys: dict[tuple[bytes, int], int] = {}


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``: the same for every topic of a
    pipeline, so all messages of a run, and its join state, stay on one partition. Keys repeat and murmur2
    is pure Python here, so recent answers are kept (a bounded cache, emptied when full)."""
    found = _partitions_of_keys.get((key, partitions))
    if found is None:
        if len(_partitions_of_keys) >= _PARTITION_CACHE_SIZE:
            _partitions_of_keys.clear()
        hashed: int = murmur2(key)
        found = _partitions_of_keys[(key, partitions)] = (hashed & 0x7FFFFFFF) % partitions
    return found


class EnvelopeError(ValueError):
    """A stage topic carried something that is not an envelope of this pipeline."""


@dataclass(slots=True)
class Envelope:
    """One run in flight between stages.

    On the wire (version 2) it is three lines: a JSON header, the trace so far as a JSON array, and the input
    as a JSON object. The trace is only appended to on the way, so it is kept as those bytes and never parsed
    between stages; the input is parsed (steps read it) but not encoded again. Version 1, a single JSON object
    with ``input`` and ``trace`` inside, is what dead letters hold (``as_dict``) and is read too, so a replayed
    letter is an envelope as it stands.
    """

    run_id: str
    pipeline: str
    version: str
    key: str
    input: dict[str, Any]
    resume_at: str
    outputs: dict[str, Any] = field(default_factory=dict)
    trace_json: bytes = b"[]"
    error: RunError | None = None
    join_tokens: dict[int, Token] = field(default_factory=dict)
    carried: dict[str, dict[int, Token]] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    started_ms: int = 0
    replay: int = 0
    replay_from: str | None = None
    input_json: bytes = b""
    consumed_ms: int = 0
    """When the run's input record was first consumed (epoch ms; 0: not known, as in envelopes of earlier
    releases): where ``ia_run_duration_seconds`` starts."""
    """``input`` encoded (computed on first use when the envelope was made from a dict)."""

    def input_bytes(self) -> bytes:
        if not self.input_json:
            self.input_json = orjson.dumps(self.input)
        return self.input_json

    def timing(self) -> tuple[int, int, int]:
        """``(started_ms, consumed_ms, replay)``: what the run's latencies are measured from (``FinishedRun``)."""
        return self.started_ms, self.consumed_ms, self.replay

    def trace(self) -> list[dict[str, Any]]:
        """The trace so far, parsed (for dead letters and join state, not for the hot path)."""
        entries: list[dict[str, Any]] = orjson.loads(self.trace_json)
        return entries

    def _header(
        self,
        layout: int,
        version: str,
        resume_at: str,
        outputs: dict[str, Any],
        error: RunError | None,
        join_tokens: dict[int, Token] | None,
        carried: dict[str, dict[int, Token]],
    ) -> dict[str, Any]:
        """The header of this run with the state given. Version 2 leaves out what is empty or zero (most
        envelopes carry no error, tokens or replay), which ``decode`` reads as those defaults; version 1, what
        dead letters hold, has every field."""
        header: dict[str, Any] = {
            "v": layout,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "version": version,
            "key": self.key,
            "resume_at": resume_at,
            "outputs": outputs,
            "source": self.source,
            "started_ms": self.started_ms,
        }
        full = layout != ENVELOPE_VERSION
        if full or self.consumed_ms:
            header["consumed_ms"] = self.consumed_ms
        if full or error is not None:
            header["error"] = error
        if full or join_tokens:
            header["join_tokens"] = join_tokens or {}
        if full or carried:
            header["carried"] = carried
        if full or self.replay:
            header["replay"] = self.replay
            header["replay_from"] = self.replay_from
        return header

    def encode(self) -> bytes:
        """Version 2: header, trace and input on three lines."""
        return self.encode_resumed(
            self.version, self.resume_at, self.outputs, self.trace_json, self.error, self.join_tokens, self.carried
        )

    def encode_resumed(
        self,
        version: str,
        resume_at: str,
        outputs: dict[str, Any],
        trace_json: bytes,
        error: RunError | None,
        join_tokens: dict[int, Token] | None,
        carried: dict[str, dict[int, Token]],
    ) -> bytes:
        """This run carried on to ``resume_at`` with the state given, encoded: what ``encode`` gives for the
        envelope with those fields replaced, without making it (this runs for every forwarded envelope)."""
        header = self._header(ENVELOPE_VERSION, version, resume_at, outputs, error, join_tokens, carried)
        encoded = orjson.dumps(header, option=orjson.OPT_NON_STR_KEYS)
        return b"\n".join((encoded, trace_json, self.input_bytes()))

    def as_dict(self) -> dict[str, Any]:
        """The envelope as one JSON object (version 1), as a dead letter holds it."""
        header = self._header(1, self.version, self.resume_at, self.outputs, self.error, self.join_tokens, self.carried)
        value = {**header, "input": self.input, "trace": self.trace()}
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, raw: bytes | None, pipeline: str) -> Envelope:
        """Parse an envelope of ``pipeline``; EnvelopeError says what is wrong with anything else."""
        if raw is None:
            raise EnvelopeError("empty message")
        head, newline, rest = raw.partition(b"\n")
        try:
            value = orjson.loads(head if newline else raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from None
        get = value.get if type(value) is dict else {}.get
        layout = get("v")
        if layout not in (1, ENVELOPE_VERSION) or (layout == ENVELOPE_VERSION) != bool(newline):
            raise EnvelopeError(f"not an envelope of version 1 or {ENVELOPE_VERSION}")
        if get("pipeline") != pipeline:
            raise EnvelopeError(f"an envelope of pipeline {get('pipeline')!r}, not {pipeline!r}")
        try:
            if newline:
                trace_json, _, input_json = rest.partition(b"\n")
                event = orjson.loads(input_json)
            else:
                event, input_json = value["input"], b""
                trace_json = orjson.dumps(get("trace") or [])
            if type(event) is not dict:
                raise ValueError(f"the input is {type(event).__name__}, not an object")
            join_tokens, carried = get("join_tokens"), get("carried")
            return cls(  # positional, in field order: this runs for every consumed envelope
                value["run_id"],
                pipeline,
                value["version"],
                value["key"],
                event,
                value["resume_at"],
                get("outputs") or {},
                trace_json or b"[]",
                get("error"),
                {int(k): v for k, v in join_tokens.items()} if join_tokens else {},
                {node: {int(k): v for k, v in t.items()} for node, t in carried.items()} if carried else {},
                get("source"),
                get("started_ms") or 0,
                get("replay") or 0,
                get("replay_from"),
                input_json,
                get("consumed_ms") or 0,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"malformed envelope: {type(exc).__name__}: {exc}") from None


def join_trace(earlier: bytes, entries: list[dict[str, Any]]) -> bytes:
    """The JSON array ``earlier`` (bytes) with ``entries`` appended, without parsing ``earlier``."""
    if not entries:
        return earlier
    added = orjson.dumps(entries)
    if earlier == b"[]":
        return added
    return b"%b,%b" % (earlier[:-1], added[1:])


class StreamRun(RunState):
    """A run on one stage: ``trace`` holds the entries of this stage, ``earlier_trace`` those of the stages
    before it, as the envelope brought them (JSON bytes, parsed only where a join or a dead letter needs them)."""

    earlier_trace: bytes = b"[]"

    def full_trace(self) -> list[dict[str, Any]]:
        """The whole trace as entries (the earlier stages' entries parsed and put in front, once)."""
        if self.earlier_trace != b"[]":
            self.trace[:0] = orjson.loads(self.earlier_trace)
            self.earlier_trace = b"[]"
        return self.trace

    def trace_json(self) -> bytes:
        """The whole trace as a JSON array, the earlier stages' bytes not parsed."""
        return join_trace(self.earlier_trace, self.trace)


def run_identity(envelope: Envelope) -> dict[str, Any]:
    """What a join keeps of the run so that it can resume it on its own (after a join timeout)."""
    return {
        "key": envelope.key,
        "input": envelope.input,
        "source": envelope.source,
        "started_ms": envelope.started_ms,
        "consumed_ms": envelope.consumed_ms,
    }
