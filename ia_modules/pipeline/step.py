"""Step: the unit of work. Subclasses override ``async run(data) -> dict``; the framework calls ``work``."""

from __future__ import annotations

import logging
import time
from typing import Any

from .errors import StepOutputError
from .services import ServiceRegistry

logger = logging.getLogger("ia_modules.pipeline.step")


class Step:
    """A pipeline step, constructed as ``Step(name, config)``; ``name`` is the step's id in its pipeline."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        self.name = name
        self.config: dict[str, Any] = dict(config) if config else {}
        self.services: ServiceRegistry | None = None

    def set_services(self, services: ServiceRegistry | None) -> None:
        self.services = services

    def get_service(self, name: str) -> Any:
        """The service registered as ``name``, or None."""
        return self.services.get(name) if self.services is not None else None

    def get_db(self) -> Any:
        return self.get_service("database")

    def get_http(self) -> Any:
        return self.get_service("http")

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Do the step's work on ``data`` and return a JSON-serialisable dict. Subclasses override this."""
        raise NotImplementedError(f"{type(self).__name__} must implement async run(data)")

    async def work(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the step, check that it returned a dict, and log how long it took."""
        started = time.perf_counter()
        result = await self.run(data)
        if not isinstance(result, dict):
            raise StepOutputError(
                f"step '{self.name}' ({type(self).__name__}.run) returned {type(result).__name__}, expected a dict"
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("step %s took %.3f ms", self.name, (time.perf_counter() - started) * 1000)
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
