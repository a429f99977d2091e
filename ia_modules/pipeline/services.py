"""ServiceRegistry: the named services (database, http, cache, ...) that steps reach through ``self.services``."""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any

logger = logging.getLogger(__name__)

#: The run in progress; a context variable, so concurrent runs never see each other's id.
current_execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ia_modules_execution_id", default=None
)


class ServiceRegistry:
    """Named services shared by the steps of a pipeline.

    ``get("execution_id")`` answers the id of the run in progress unless a service of that name was registered.
    """

    def __init__(self) -> None:
        self._services: dict[str, Any] = {}

    def register(self, name: str, service: Any) -> None:
        self._services[name] = service

    def get(self, name: str) -> Any:
        """The service called ``name``, or None when there is none."""
        if name in self._services:
            return self._services[name]
        if name == "execution_id":
            return current_execution_id.get()
        return None

    def has(self, name: str) -> bool:
        return name in self._services or (name == "execution_id" and current_execution_id.get() is not None)

    def names(self) -> list[str]:
        return list(self._services)

    async def initialize_all(self) -> None:
        """Call each service's own ``initialize`` (sync or async), in registration order."""
        for name, service in self._services.items():
            await _call_optional(service, "initialize", name)

    async def cleanup_all(self) -> None:
        """Call each service's ``cleanup`` (or ``aclose`` / ``close``) in reverse order; one failing does not
        stop the others."""
        for name, service in reversed(list(self._services.items())):
            method = next((m for m in ("cleanup", "aclose", "close") if callable(getattr(service, m, None))), None)
            if method is None:
                continue
            try:
                await _call_optional(service, method, name)
            except Exception:
                logger.exception("cleaning up service %r failed", name)


async def _call_optional(service: Any, method: str, name: str) -> None:
    function = getattr(service, method, None)
    if not callable(function) or inspect.isclass(service):
        return
    outcome = function()
    if inspect.isawaitable(outcome):
        await outcome
    logger.debug("service %r: %s done", name, method)
