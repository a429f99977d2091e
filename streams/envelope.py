"""The envelope: what travels between stages of a run, and how it is encoded (orjson).

It carries the run's identity and partition key, the input, the step outputs still read downstream, the trace
so far, the first error, the step to resume at, for a join that fired, which of its paths were taken and, for
joins still ahead, the tokens this run already decided for them (``carried``: a skipped branch costs no
message and no join-state write when the run's only envelope brings its token along).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from ia_modules.pipeline.kernel import Token

ENVELOPE_VERSION = 1

#: Fixed for all time: run ids must stay the same for the same record across versions and restarts.
RUN_ID_NAMESPACE = uuid.UUID("6f1c7a52-3b8e-5d0a-9c4e-2a7b1e9d4f60")


_NAMESPACE_BYTES = RUN_ID_NAMESPACE.bytes


def run_id_for(cluster_id: str, topic: str, partition: int, offset: int) -> str:
    """The run id of the input record at ``topic``/``partition``/``offset`` on the cluster ``cluster_id``:
    ``uuid5(RUN_ID_NAMESPACE, "<cluster id>:<topic>:<partition>:<offset>")``, computed without building a UUID
    object (a third of the cost; a test checks it against ``uuid.uuid5``)."""
    name = f"{cluster_id}:{topic}:{partition}:{offset}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


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


@dataclass
class Envelope:
    """One run in flight between stages."""

    run_id: str
    pipeline: str
    version: str
    key: str
    input: dict[str, Any]
    resume_at: str
    outputs: dict[str, Any] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    join_tokens: dict[int, Token] = field(default_factory=dict)
    carried: dict[str, dict[int, Token]] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    started_ms: int = 0
    replay: int = 0
    replay_from: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": ENVELOPE_VERSION,
                "run_id": self.run_id,
                "pipeline": self.pipeline,
                "version": self.version,
                "key": self.key,
                "input": self.input,
                "resume_at": self.resume_at,
                "outputs": self.outputs,
                "trace": self.trace,
                "error": self.error,
                "join_tokens": self.join_tokens,
                "carried": self.carried,
                "source": self.source,
                "started_ms": self.started_ms,
                "replay": self.replay,
                "replay_from": self.replay_from,
            },
            option=orjson.OPT_NON_STR_KEYS,
        )

    @classmethod
    def decode(cls, raw: bytes | None, pipeline: str) -> Envelope:
        """Parse an envelope of ``pipeline``; EnvelopeError says what is wrong with anything else."""
        if raw is None:
            raise EnvelopeError("empty message")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from None
        if not isinstance(value, dict) or value.get("v") != ENVELOPE_VERSION:
            raise EnvelopeError(f"not an envelope of version {ENVELOPE_VERSION}")
        if value.get("pipeline") != pipeline:
            raise EnvelopeError(f"an envelope of pipeline {value.get('pipeline')!r}, not {pipeline!r}")
        try:
            return cls(
                run_id=value["run_id"],
                pipeline=value["pipeline"],
                version=value["version"],
                key=value["key"],
                input=value["input"],
                resume_at=value["resume_at"],
                outputs=value.get("outputs") or {},
                trace=value.get("trace") or [],
                error=value.get("error"),
                join_tokens={int(k): v for k, v in (value.get("join_tokens") or {}).items()},
                carried={
                    node: {int(k): v for k, v in tokens.items()}
                    for node, tokens in (value.get("carried") or {}).items()
                },
                source=value.get("source"),
                started_ms=value.get("started_ms") or 0,
                replay=value.get("replay") or 0,
                replay_from=value.get("replay_from"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"malformed envelope: {type(exc).__name__}: {exc}") from None
