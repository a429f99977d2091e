"""A record a stage wants produced; the worker sends them and waits for the broker's acknowledgement."""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""The largest record value a worker produces (``IA_MAX_RECORD_BYTES``): below Kafka's default
``message.max.bytes`` (1,048,588), with room for the record's key, headers and batch framing."""


class Emission(NamedTuple):
    """Where a record goes and what it holds (a tuple: several are made per event, and cheaply)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
