"""Small real steps and condition functions for the core's unit tests (module ``tests.unit.sample_steps``).

Steps that need to coordinate with a test (events, call logs) reach it through services, so every test
creates its own and nothing leaks between tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from ia_modules.pipeline.core import Step

MODULE = __name__


class ConstStep(Step):
    """Returns ``config["output"]`` (a fresh copy each time)."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return dict(self.config.get("output", {}))


class CaptureStep(Step):
    """Returns the data it received, under ``received``, plus ``config["output"]`` merged in."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"received": data, **self.config.get("output", {})}


class ConfigStep(Step):
    """Returns its (load-time resolved) config."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"config": self.config}


class FlakyStep(Step):
    """Raises ``ConnectionError`` for the first ``config["failures"]`` attempts of each run, then succeeds."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.calls: dict[str, int] = defaultdict(int)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        run_id = self.services.get("execution_id") if self.services else "?"
        self.calls[run_id] += 1
        if self.calls[run_id] <= self.config.get("failures", 0):
            raise ConnectionError(f"flaky attempt {self.calls[run_id]}")
        return {"succeeded_on": self.calls[run_id]}


class FailStep(Step):
    """Always raises ``ValueError(config["message"])``; counts its calls in the ``calls`` service if any."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        calls = self.get_service("calls")
        if calls is not None:
            calls.append(self.name)
        raise ValueError(self.config.get("message", "boom"))


class HangStep(Step):
    """Awaits an event that never fires; counts its attempts in the ``calls`` service."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        calls = self.get_service("calls")
        if calls is not None:
            calls.append(self.name)
        await asyncio.Event().wait()
        return {}  # pragma: no cover - never reached


class BadOutputStep(Step):
    """Returns something a step must not: ``config["kind"]`` is ``list``, ``none``, ``set`` or ``int_keys``."""

    async def run(self, data: dict[str, Any]) -> Any:
        kind = self.config["kind"]
        if kind == "list":
            return [1, 2]
        if kind == "none":
            return None
        if kind == "set":
            return {"values": {1, 2}}
        return {"ok": {1: "int key"}}


class RendezvousStep(Step):
    """Sets the event ``config["set"]`` and waits for ``config["wait"]`` (events from the ``events`` service):
    two of these in parallel branches meet; run one after the other, the first waits forever."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        events = self.get_service("events")
        events[self.config["set"]].set()
        await events[self.config["wait"]].wait()
        return {self.name: "met"}


class ExecutionIdStep(Step):
    """Reports the run id it sees before and after yielding to other runs."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        before = self.services.get("execution_id") if self.services else None
        for _ in range(3):
            await asyncio.sleep(0)
        after = self.services.get("execution_id") if self.services else None
        return {"before": before, "after": after, "tag": data.get("tag")}


class CountingStep(Step):
    """Appends its id to the ``calls`` service and returns ``config["output"]``."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        self.get_service("calls").append(self.name)
        return dict(self.config.get("output", {}))


class TupleStep(Step):
    """Returns a tuple inside its dict: JSON turns it into a list."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"t": (1, 2)}


class ServiceUserStep(Step):
    """Reports the services it reaches through the guide's helpers."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"db": self.get_db(), "http": self.get_http(), "cache": self.get_service("cache")}


class BrokenInitStep(Step):
    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        raise RuntimeError("cannot build")


class NotAStep:
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {}


NOT_A_CLASS = 42

# -- condition functions -------------------------------------------------------------------------------------------

CALLS: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
"""Every call of ``recording_check``: (name, context, args). Tests clear it first."""


def score_above(context: Any, *, threshold: float) -> bool:
    return bool(context["result"]["score"] > threshold)


async def async_score_above(context: Any, *, threshold: float) -> bool:
    await asyncio.sleep(0)
    return bool(context["result"]["score"] > threshold)


def recording_check(context: Any, **args: Any) -> bool:
    CALLS.append(("recording_check", dict(context), args))
    return bool(args.get("answer", True))


def returns_text(context: Any) -> Any:
    return "yes"


def raises(context: Any) -> bool:
    raise KeyError("no such thing")


def _plain_decorator(function: Any) -> Any:
    """A decorator that does not keep the coroutine-function marker, as many logging/caching decorators do."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


@_plain_decorator
async def decorated_async_score_above(context: Any, *, threshold: float) -> bool:
    await asyncio.sleep(0)
    return bool(context["result"]["score"] > threshold)


class _AsyncCheck:
    async def __call__(self, context: Any, *, threshold: float) -> bool:
        await asyncio.sleep(0)
        return bool(context["result"]["score"] > threshold)


async_callable_object = _AsyncCheck()
