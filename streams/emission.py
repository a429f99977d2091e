"""A record a stage wants produced; the worker sends them and waits for the broker's acknowledgement."""

from __future__ import annotations

from typing import NamedTuple


class Emission(NamedTuple):
    """Where a record goes and what it holds (a tuple: several are made per event, and cheaply)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
