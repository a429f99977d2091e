"""run_with_deadline: a step's timeout, armed only when the step suspends."""

from __future__ import annotations

import asyncio
import time

import pytest

from ia_modules.pipeline.deadline import DeadlineExceeded, run_with_deadline


async def finishes_at_once() -> str:
    return "done"


async def suspends_twice() -> str:
    await asyncio.sleep(0.005)
    await asyncio.sleep(0)
    return "resumed"


async def never_finishes() -> None:
    await asyncio.Event().wait()


async def test_a_step_that_never_suspends_returns_its_value() -> None:
    assert await run_with_deadline(finishes_at_once(), 0.001) == "done"


async def test_a_suspending_step_is_driven_to_its_end() -> None:
    assert await run_with_deadline(suspends_twice(), 1) == "resumed"


async def test_a_step_past_its_deadline_raises_a_timeout_and_leaves_the_task_uncancelled() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"timed out after 0\.05s"):
        await run_with_deadline(never_finishes(), 0.05)
    assert 0.04 <= time.monotonic() - started < 1
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert await run_with_deadline(suspends_twice(), 1) == "resumed"  # the task still works


async def test_the_deadline_counts_from_the_start_not_from_the_first_suspension() -> None:
    async def busy_then_wait() -> None:
        time.sleep(0.05)  # noqa: ASYNC251 - a synchronous stretch before the first suspension, on purpose
        await asyncio.Event().wait()

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await run_with_deadline(busy_then_wait(), 0.06)
    assert time.monotonic() - started < 0.1


async def test_errors_of_the_step_pass_through() -> None:
    async def fails_after_suspending() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await run_with_deadline(fails_after_suspending(), 1)


async def test_a_step_that_swallows_the_cancellation_keeps_its_result() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "finished anyway"
        return "unreachable"

    assert await run_with_deadline(stubborn(), 0.02) == "finished anyway"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_cancelling_the_caller_cancels_the_step_and_is_not_a_timeout() -> None:
    cleaned_up = asyncio.Event()

    async def cleans_up() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    task = asyncio.ensure_future(run_with_deadline(cleans_up(), 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()


async def test_many_concurrent_steps_each_get_their_own_deadline() -> None:
    results = await asyncio.gather(
        *(run_with_deadline(suspends_twice(), 1) for _ in range(50)),
        *(run_with_deadline(never_finishes(), 0.02) for _ in range(5)),
        return_exceptions=True,
    )
    assert results[:50] == ["resumed"] * 50
    assert all(isinstance(r, DeadlineExceeded) for r in results[50:])
