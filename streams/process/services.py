"""The services steps get: the default set (``http``: an httpx.AsyncClient, ``cache``: an in-memory TTL cache)
or the registry an ``IA_SERVICES`` factory builds."""

from __future__ import annotations

import inspect
import time
from typing import Any

import httpx

from ia_modules.pipeline.imports import ImportProblem, import_callable
from ia_modules.pipeline.services import ServiceRegistry


class CacheService:
    """In-memory cache whose entries expire ``ttl`` seconds after they were set (the guide's ``cache``)."""

    def __init__(self, ttl: float = 3600, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] >= self.ttl:
            del self._entries[key]
            return None
        return entry[1]

    def set(self, key: str, value: Any) -> None:
        if len(self._entries) >= self.max_entries and key not in self._entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._entries.clear()


def default_services() -> ServiceRegistry:
    """``http`` and ``cache``; the caller cleans up with ``cleanup_all`` (which closes the HTTP client)."""
    services = ServiceRegistry()
    services.register("http", httpx.AsyncClient(timeout=30.0, follow_redirects=True))
    services.register("cache", CacheService())
    return services


class ServicesError(RuntimeError):
    """``IA_SERVICES`` names something that is not a factory of a ServiceRegistry."""


async def build_services(spec: str | None) -> ServiceRegistry:
    """The registry from the ``module:factory`` in ``spec`` (sync or async factory), or the default one."""
    if not spec:
        return default_services()
    try:
        factory = import_callable(spec)
    except ImportProblem as exc:
        raise ServicesError(f"IA_SERVICES={spec}: {exc}") from None
    registry = factory()
    if inspect.isawaitable(registry):
        registry = await registry
    if not isinstance(registry, ServiceRegistry):
        raise ServicesError(f"IA_SERVICES={spec} returned {type(registry).__name__}, expected a ServiceRegistry")
    return registry
