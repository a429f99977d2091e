"""Step: the unit of work. Subclasses override ``async run(data) -> dict``; the framework calls ``work``."""

from __future__ import annotations

from typing import Any

from .errors import StepOutputError
from .services import ServiceRegistry


def checked_output(step: Step, result: Any) -> dict[str, Any]:
    """``result`` if ``step.run`` returned a dict; StepOutputError saying what it returned otherwise."""
    if type(result) is not dict and not isinstance(result, dict):
        raise StepOutputError(
            f"step '{step.name}' ({type(step).__name__}.run) returned {type(result).__name__}, expected a dict"
        )
    return result


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
        """Run the step and check that it returned a dict, as the kernel does (how long it took is in the
        run's trace)."""
        return checked_output(self, await self.run(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
