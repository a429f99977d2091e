"""A consumed record, as the stage runner needs it, and the clock its timestamps use."""

from __future__ import annotations

import time
from typing import NamedTuple, Protocol


def now_ms() -> int:
    """Milliseconds since the epoch, as Kafka's record timestamps count."""
    return int(time.time() * 1000)


class ConsumedRecord(Protocol):
    """What a stage reads of a consumed record: aiokafka's ``ConsumerRecord`` is one, as is ``InputRecord``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class InputRecord(NamedTuple):
    """A consumed record made by hand (tests, benchmarks), in the fields a stage reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
