"""The event loop the commands run on: uvloop (libuv) where it is installed, else asyncio's own.

A worker spends about a tenth of its time in the event loop (socket reads and writes, callbacks, futures); uvloop
does that work in C (benchmarks/README.md has the measurements). ``IA_EVENT_LOOP=asyncio`` opts out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]

T = TypeVar("T")


class EventLoopUnavailable(RuntimeError):
    """``IA_EVENT_LOOP=uvloop`` where uvloop is not installed."""


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the loop for ``choice``: ``auto`` is uvloop when it imports, else asyncio's loop."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                "IA_EVENT_LOOP=uvloop but uvloop is not installed here (pip install uvloop; not on Windows)"
            ) from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """Run ``main`` to completion on a new loop of ``choice`` (as ``asyncio.run`` does) and return its result."""
    try:
        factory = loop_factory(choice)
    except EventLoopUnavailable:
        main.close()  # never awaited: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
