"""Reading JSON-lines event files (``pipelines/<id>.events.jsonl``) without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

from ia_modules.pipeline.wire import parse_event

UTF8_BOM = b"\xef\xbb\xbf"
"""What some editors put in front of a UTF-8 file; not part of the first event."""


@dataclass(frozen=True)
class EventLine:
    """One line of an events file: the event, or why it is not one."""

    line: int
    event: dict[str, Any] | None
    problem: str | None = None


def _lines(stream: IO[bytes], max_depth: int | None = None) -> Iterator[EventLine]:
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if not raw.strip():
            continue
        event, problem = parse_event(raw, max_depth)
        yield EventLine(number, event, problem)


async def read_events(path: Path | None, batch: int = 1000, max_depth: int | None = None) -> AsyncIterator[EventLine]:
    """Lines of ``path`` (or standard input when None), read in batches in a thread; with ``max_depth``, a line
    nesting deeper than that is not an event (``parse_event``)."""
    if path is None:
        async for line in _stdin_events(batch, max_depth):
            yield line
        return
    stream: IO[bytes] = await asyncio.to_thread(path.open, "rb")
    try:
        lines = _lines(stream, max_depth)
        while chunk := await asyncio.to_thread(lambda: list(islice(lines, batch))):
            for line in chunk:
                yield line
    finally:
        await asyncio.to_thread(stream.close)


async def _stdin_events(batch: int, max_depth: int | None) -> AsyncIterator[EventLine]:
    """Standard input's lines, read by a daemon thread of its own: a read that waits for a writer that never
    writes again must not hold up the command's exit (the event loop's own threads are waited for)."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[list[EventLine] | BaseException] = asyncio.Queue(maxsize=2)

    def pump() -> None:
        # its own file object: a read still waiting at exit holds its object's lock, and Python's own sys.stdin
        # must stay free for the interpreter to shut down
        stream = open(os.dup(sys.stdin.fileno()), "rb")
        lines = _lines(stream, max_depth)
        while True:
            try:
                chunk: list[EventLine] | BaseException = list(islice(lines, batch))
            except BaseException as exc:  # handed over: the reader raises it
                chunk = exc
            try:
                asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()  # waits while the queue is full
            except RuntimeError:  # the loop closed: nobody reads any more
                return
            if not chunk or isinstance(chunk, BaseException):
                stream.close()
                return

    threading.Thread(target=pump, name="stdin-events", daemon=True).start()
    while chunk := await chunks.get():
        if isinstance(chunk, BaseException):
            raise chunk
        for line in chunk:
            yield line
