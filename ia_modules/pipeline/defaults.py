"""The services a run gets when its caller gives none, the same set as ``ia-modules run`` and the worker use
by default: ``http`` (an httpx.AsyncClient) and ``cache`` (an in-memory TTL cache, the guide's)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from .lifetimes import cleanup_when_loop_ends, forget
from .services import ServiceRegistry

logger = logging.getLogger(__name__)


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


class DefaultServices(ServiceRegistry):
    """``http`` and ``cache``. The HTTP client is made when a step first asks for it (making one takes tens of
    milliseconds, and most runs never ask) and closed by ``cleanup_all``, after which the next ask makes a new
    one; one made in a running loop is closed when that loop ends at the latest. The cache lives as long as
    the registry."""

    def __init__(self) -> None:
        super().__init__()
        self._own_http: Any = None
        self._users = 0
        self.register("cache", CacheService())

    def get(self, name: str) -> Any:
        if name == "http" and "http" not in self._services:
            self._open_http()
        return super().get(name)

    def has(self, name: str) -> bool:
        return name == "http" or super().has(name)

    def names(self) -> list[str]:
        names = super().names()
        return names if "http" in names else ["http", *names]

    def _open_http(self) -> None:
        import httpx  # only when a step uses it: the import alone takes a third of a second

        self._own_http = httpx.AsyncClient(timeout=30.0, follow_redirects=True)
        self.register("http", self._own_http)
        with contextlib.suppress(RuntimeError):  # no running loop: whoever made the registry cleans it up
            cleanup_when_loop_ends(self)

    async def cleanup_all(self) -> None:
        """Close every service, the HTTP client among them; the next ask for ``http`` makes a new client (so a
        run starting while this closes never gets the closing one)."""
        own, self._own_http = self._own_http, None
        if own is not None and self._services.get("http") is own:
            del self._services["http"]
        await super().cleanup_all()
        if own is not None:
            try:
                await own.aclose()
            except Exception:
                logger.exception("closing the default HTTP client failed")
        if self._own_http is None:
            forget(self)

    @contextlib.asynccontextmanager
    async def in_use(self) -> AsyncIterator[DefaultServices]:
        """Held by each run; when the last run in progress ends, ``cleanup_all``: nothing stays open between
        runs, whatever the caller does after."""
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                await self.cleanup_all()


def default_services() -> DefaultServices:
    """``http`` and ``cache``; the caller cleans up with ``cleanup_all`` (which closes the HTTP client)."""
    return DefaultServices()
