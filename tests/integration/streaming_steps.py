"""Steps for the streaming tests: each records which worker process ran it; one can kill its own worker."""

from __future__ import annotations

import os
import signal
from typing import Any

from ia_modules.pipeline.core import Step


class StampStep(Step):
    """Returns ``{<step>_pid: the worker's pid}``; with ``CRASH_AT`` naming this step, the worker dies here
    with SIGKILL, as a crash mid-run would."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        if os.environ.get("CRASH_AT") == self.name:
            os.kill(os.getpid(), signal.SIGKILL)
        return {f"{self.name}_pid": os.getpid()}


class AlwaysFailsStep(Step):
    """Raises on every attempt: a poison record for the dead-letter queue."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"cannot process order {data.get('order')}")
