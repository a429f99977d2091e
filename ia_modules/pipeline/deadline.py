"""Awaiting a step with a timeout that costs nothing when the step never suspends.

Most steps are pure computation and finish in their first slice; arming a timer for each of them is a
measurable share of the kernel's per-step cost. ``run_with_deadline`` starts the coroutine, and only if it
suspends does it arm a timer (with the deadline counted from the start) and drive the rest of it, exactly as
an ``await`` would, cancelling the task when the deadline passes, like ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The awaited coroutine was cancelled because its deadline passed."""


async def run_with_deadline(coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """Await ``coroutine``; raise DeadlineExceeded (a TimeoutError) if it is still running ``timeout_s``
    seconds after it started."""
    started = time.perf_counter()
    try:
        suspended_on = coroutine.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    return await finish_with_deadline(coroutine, suspended_on, timeout_s, started)


async def finish_with_deadline(
    coroutine: Coroutine[Any, Any, T], suspended_on: Any, timeout_s: float, started: float
) -> T:
    """Drive a coroutine that suspended on its first ``send`` (waiting on ``suspended_on``) to its end, with
    the deadline counted from ``started`` (``time.perf_counter()``). The kernel makes that first ``send``
    itself, so a step that never suspends costs no extra coroutine."""
    task = asyncio.current_task()
    assert task is not None, "finish_with_deadline must run inside a task"
    loop = asyncio.get_running_loop()
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    remaining = timeout_s - (time.perf_counter() - started)
    handle = loop.call_later(max(remaining, 0.0), expire)
    try:
        result: T = await _Resume(coroutine, suspended_on)
        if expired:  # the step swallowed the cancellation and finished anyway: keep its result
            task.uncancel()
        return result
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise DeadlineExceeded(f"timed out after {timeout_s:g}s") from None
        raise
    finally:
        handle.cancel()


class _Resume:
    """Drives an already started coroutine to its end, passing what it waits on up to the running task."""

    __slots__ = ("coroutine", "first")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coroutine = coroutine
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.first
        while True:
            try:
                sent = yield waiting_on
            except BaseException as raised:  # cancellation and the like go into the step, as with await
                try:
                    waiting_on = coroutine.throw(raised)
                except StopIteration as finished:
                    return finished.value
                continue
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration as finished:
                return finished.value
