"""Steps for the streaming tests: each records which worker process ran it; one can kill its own worker."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from ia_modules.pipeline.core import Step


class StampStep(Step):
    """Returns ``{<step>_pid: the worker's pid}``; with ``CRASH_AT`` naming this step, the worker dies here
    with SIGKILL, as a crash mid-run would: after a second, so that the batch before this one, which the worker
    completes while it runs this one, is committed (a crash before that would run that batch again too, which
    at least once allows, but which would hide what the tests using this look at)."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        if os.environ.get("CRASH_AT") == self.name:
            await asyncio.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)
        return {f"{self.name}_pid": os.getpid()}


class AlwaysFailsStep(Step):
    """Raises on every attempt: a poison record for the dead-letter queue."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"cannot process order {data.get('order')}")


class NeedsFlagStep(Step):
    """Fails until the file named by ``IA_TEST_FLAG_FILE`` exists: a fault fixed before a replay."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        flag = os.environ.get("IA_TEST_FLAG_FILE", "")
        if not flag or not os.path.exists(flag):  # noqa: ASYNC240 - a stat of one small file, in a test step
            raise RuntimeError(f"order {data.get('order')} cannot be checked yet")
        return {"checked": data.get("order")}


class SizedStep(Step):
    """Returns ``size`` characters (from the event): a step that fetched a document of that size."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * int(data.get("size", 1))}
