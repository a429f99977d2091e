"""A record a stage wants produced; the worker sends them and waits for the broker's acknowledgement."""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""The largest record value a worker produces (``IA_MAX_RECORD_BYTES``): below Kafka's default
``message.max.bytes`` (1,048,588), with room for the record's key, headers and batch framing."""


def max_request_bytes(max_record_bytes: int) -> int:
    """The producer's ``max_request_size`` for records up to ``max_record_bytes``: room for one with its batch
    framing, and never below aiokafka's default (1 MiB)."""
    return max(1024 * 1024, max_record_bytes + 64 * 1024)


class Emission(NamedTuple):
    """Where a record goes and what it holds (a tuple: several are made per event, and cheaply)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
