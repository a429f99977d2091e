"""Join state: tokens a join (a step with several incoming paths, or the end node) has received for a run.

The store is plain memory per partition; every change is also written, as a record appended to the batch's
``Produced``, to the pipeline's compacted changelog topic, from which a worker that takes over a partition
rebuilds it. The store does no I/O itself. Writes come in two kinds so that a fired join is never lost in a
crash: partial states go out with the batch that delivered them (``join_state``), but the marker that a join fired
goes out only after what it fired downstream has been acknowledged (``join_markers``), so a crash in between
fires it again (a duplicate with the same run id) instead of never. A join that fired ``fail`` keeps its state (for a
week) so that a replay of the run from the dead-letter queue can start from what the other branches brought.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ia_modules.pipeline.kernel import Token, join_decision, join_ready
from ia_modules.pipeline.wire import RunError
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, Emission
from streams.sink.checkpoint import Produced


@dataclass
class JoinEntry:
    """What one join of one run has received so far, with the state its branches carried."""

    tokens: dict[int, Token]
    outputs: dict[str, Any]
    trace: dict[str, dict[str, Any]]
    error: RunError | None
    created_ms: int
    fired: bool = False
    run: dict[str, Any] = field(default_factory=dict)
    """The run's identity as the envelope carried it (key, input, source, started_ms), to resume it from here."""

    def merge(self, outputs: dict[str, Any], trace: list[dict[str, Any]], error: RunError | None) -> None:
        self.outputs.update(outputs)
        for entry in trace:
            self.trace.setdefault(entry["step"], entry)
        if self.error is None:
            self.error = error

    def decision(self) -> Token:
        return join_decision(self.tokens)

    def encode(self) -> bytes:
        if self.fired and self.decision() != "fail":
            return orjson.dumps({"fired": True, "created_ms": self.created_ms})
        return orjson.dumps(
            {
                "tokens": self.tokens,
                "outputs": self.outputs,
                "trace": list(self.trace.values()),
                "error": self.error,
                "created_ms": self.created_ms,
                "run": self.run,
                "fired": self.fired,
            },
            option=orjson.OPT_NON_STR_KEYS,
        )

    @classmethod
    def decode(cls, raw: bytes) -> JoinEntry:
        value = orjson.loads(raw)
        if value.get("fired") and "tokens" not in value:
            return cls({}, {}, {}, None, value["created_ms"], fired=True)
        return cls(
            tokens={int(k): v for k, v in value["tokens"].items()},
            outputs=value["outputs"],
            trace={entry["step"]: entry for entry in value["trace"]},
            error=value["error"],
            created_ms=value["created_ms"],
            run=value.get("run") or {},
            fired=bool(value.get("fired")),
        )


class JoinStateTooLarge(Exception):
    """A join's state would be a changelog record larger than a record may be; the join is closed (a token
    that arrives for it later is ignored) and the run must end here."""

    def __init__(self, topic: str, size: int, node: str) -> None:
        super().__init__(f"join state of {size:,} bytes for {topic}")
        self.topic = topic
        self.size = size
        self.node = node


def join_key(run_id: str, replay: int, node: str) -> str:
    """The changelog key of a join: a replayed run (``replay`` > 0) joins afresh."""
    return f"{run_id}|{replay}|{node}"


@dataclass
class JoinStore:
    """The join state of one pipeline on this worker, by partition."""

    topic: str
    expected: dict[str, int]
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES
    partitions: dict[int, dict[str, JoinEntry]] = field(default_factory=dict)

    def deliver(
        self,
        partition: int,
        key: str,
        node: str,
        tokens: dict[int, Token],
        fragment: tuple[dict[str, Any], list[dict[str, Any]], RunError | None],
        now_ms: int,
        run: dict[str, Any],
        out: Produced,
    ) -> JoinEntry | None:
        """Record ``tokens`` (by path); the entry once every path has delivered (once only: a token that
        arrives again after the join fired, as after a crash, is ignored). JoinStateTooLarge when the state
        kept meanwhile would be too large to write."""
        entries = self.partitions.setdefault(partition, {})
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = JoinEntry({}, {}, {}, None, now_ms, run=run)
        if entry.fired:
            return None
        entry.tokens.update(tokens)
        entry.merge(*fragment)
        if join_ready(entry.tokens, self.expected[node]) is None:
            encoded = entry.encode()
            if len(encoded) > self.max_bytes:
                self.close(partition, key, now_ms, out)
                raise JoinStateTooLarge(self.topic, len(encoded), node)
            out.join_state.append(Emission(self.topic, partition, key.encode(), encoded))
            return None
        return self.fire(partition, key, entry, out)

    def fire(self, partition: int, key: str, entry: JoinEntry, out: Produced) -> JoinEntry:
        """Mark the join fired and return what it collected. The store keeps only a small marker (to ignore a
        token that arrives again), except for a join that fired ``fail``, kept whole for a replay; the marker
        is written once what the join fired is durable. A failed join's state too large for a record, or nested too
        deep to encode, is not kept: its replay then starts that join afresh."""
        entry.fired = True
        marker = JoinEntry({}, {}, {}, None, entry.created_ms, fired=True)
        kept, encoded = marker, None
        if entry.decision() == "fail":
            try:
                encoded = entry.encode()
            except orjson.JSONEncodeError:  # nested past what orjson writes: kept as a marker, like a large one
                encoded = None
            if encoded is not None and len(encoded) <= self.max_bytes:
                kept = entry
        if kept is marker:
            encoded = marker.encode()
        self.partitions.setdefault(partition, {})[key] = kept
        out.join_markers.append(Emission(self.topic, partition, key.encode(), encoded))
        return entry

    def close(self, partition: int, key: str, now_ms: int, out: Produced) -> None:
        """Mark a join fired without firing it, as its run has ended another way: tokens that arrive for it
        later are ignored, so the run gets no second result."""
        entry = self.partitions.get(partition, {}).get(key)
        if entry is None or not entry.fired:
            self.fire(partition, key, JoinEntry({}, {}, {}, None, entry.created_ms if entry else now_ms), out)

    def apply(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Replay one changelog record (restore); a null value deletes."""
        entries = self.partitions.setdefault(partition, {})
        if value is None:
            entries.pop(key.decode(), None)
        else:
            entries[key.decode()] = JoinEntry.decode(value)

    def get(self, partition: int, key: str) -> JoinEntry | None:
        return self.partitions.get(partition, {}).get(key)

    def seed(self, partition: int, key: str, entry: JoinEntry, out: Produced) -> None:
        """Start a join with what an earlier attempt of its run already had (a replay)."""
        self.partitions.setdefault(partition, {})[key] = entry
        out.join_state.append(Emission(self.topic, partition, key.encode(), entry.encode()))

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns."""
        self.partitions.pop(partition, None)

    def waiting_since(self, older_than_ms: int) -> Iterator[tuple[int, str, JoinEntry]]:
        """Joins still waiting that were created before ``older_than_ms``."""
        for partition, entries in self.partitions.items():
            for key, entry in list(entries.items()):
                if not entry.fired and entry.created_ms <= older_than_ms:
                    yield partition, key, entry

    def purge_fired(self, older_than_ms: int, failed_older_than_ms: int, out: Produced) -> None:
        """Delete fired joins created before ``older_than_ms`` (tombstones for the changelog); a join that
        fired ``fail`` is kept until ``failed_older_than_ms``, for a replay of its run to start from."""
        for partition, entries in self.partitions.items():
            for key, entry in list(entries.items()):
                limit = failed_older_than_ms if entry.decision() == "fail" else older_than_ms
                if entry.fired and entry.created_ms < limit:
                    del entries[key]
                    out.join_state.append(Emission(self.topic, partition, key.encode(), None))

    @property
    def empty(self) -> bool:
        """No join of any partition is waiting or remembered as fired."""
        return not any(self.partitions.values())

    def waiting(self) -> int:
        return sum(1 for entries in self.partitions.values() for e in entries.values() if not e.fired)

    def waiting_by_node(self) -> dict[str, int]:
        """Joins waiting, by the node they wait at (for ``ia_joins_waiting``)."""
        counts: dict[str, int] = dict.fromkeys(self.expected, 0)
        for entries in self.partitions.values():
            for key, entry in entries.items():
                if not entry.fired:
                    node = key.split("|", 2)[2]
                    counts[node] = counts.get(node, 0) + 1
        return counts
