"""Reading JSON-lines event files (``pipelines/<id>.events.jsonl``) without blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson


@dataclass(frozen=True)
class EventLine:
    """One line of an events file: the event, or why it is not one."""

    line: int
    event: dict[str, Any] | None
    problem: str | None = None


def parse_event(raw: bytes | str) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object, or None and the reason it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"an event must be a JSON object, not {type(value).__name__}"
    return value, None


def _lines(stream: IO[bytes]) -> Iterator[EventLine]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        event, problem = parse_event(raw)
        yield EventLine(number, event, problem)


async def read_events(path: Path | None, batch: int = 1000) -> AsyncIterator[EventLine]:
    """Lines of ``path`` (or standard input when None), read in batches in a thread."""
    import sys

    stream: IO[bytes] = await asyncio.to_thread(path.open, "rb") if path else sys.stdin.buffer
    try:
        lines = _lines(stream)
        while True:
            chunk = await asyncio.to_thread(lambda: [line for _, line in zip(range(batch), lines, strict=False)])
            if not chunk:
                return
            for line in chunk:
                yield line
    finally:
        if path:
            await asyncio.to_thread(stream.close)
