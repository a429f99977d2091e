"""A step for the poison-event corpus: it does what the event asks, so each hostile case is one event."""

from __future__ import annotations

import asyncio
from typing import Any

from ia_modules.pipeline.core import Step


class PoisonStep(Step):
    """Needs a numeric ``amount``; ``do`` makes it raise, hang, return a list, or return a result too large to
    produce. Otherwise it returns ``{"total": amount * 2}``."""

    async def run(self, data: dict[str, Any]) -> Any:
        if "amount" not in data:
            raise ValueError("amount is missing")
        amount = data["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise TypeError(f"amount must be a number, not {type(amount).__name__}")
        do = data.get("do")
        if do == "raise":
            raise RuntimeError("the step gave up")
        if do == "hang":
            await asyncio.sleep(30)
        if do == "list":
            return [amount]
        if do == "big":
            return {"blob": "x" * int(data.get("size", 0))}
        return {"total": amount * 2}
