"""A consumed record, as the stage runner needs it."""

from __future__ import annotations

from typing import Any, NamedTuple


class InputRecord(NamedTuple):
    """The parts of a consumed record a stage needs (a tuple: one is made per consumed record)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> dict[str, Any]:
        """Where the record came from, as result records and dead letters give it."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset, "timestamp": self.timestamp_ms}
