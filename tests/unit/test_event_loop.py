"""Which event loop the commands run on (``IA_EVENT_LOOP``)."""

from __future__ import annotations

import asyncio
import inspect
import sys

import pytest

from streams.process.event_loop import EventLoopUnavailable, run


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    assert run(loop_module(), "auto").startswith("uvloop")
    assert run(loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert run(loop_module(), "asyncio").startswith("asyncio")


def test_run_returns_what_the_coroutine_returns_and_raises_what_it_raises() -> None:
    async def fails() -> None:
        raise ValueError("from the coroutine")

    assert run(asyncio.sleep(0, result=42), "auto") == 42
    with pytest.raises(ValueError, match="from the coroutine"):
        run(fails(), "auto")


def test_without_uvloop_auto_falls_back_and_an_explicit_uvloop_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # ``import uvloop`` now raises ImportError
    assert run(loop_module(), "auto").startswith("asyncio")
    never_run = loop_module()
    with pytest.raises(EventLoopUnavailable, match=r"IA_EVENT_LOOP=uvloop but uvloop is not installed"):
        run(never_run, "uvloop")
    assert inspect.getcoroutinestate(never_run) == inspect.CORO_CLOSED
