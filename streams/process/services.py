"""The services steps get: the default set (``http``: an httpx.AsyncClient, ``cache``: an in-memory TTL cache),
the one an in-process run gets too (it lives in the core, :mod:`ia_modules.pipeline.defaults`), or the registry
an ``IA_SERVICES`` factory builds."""

from __future__ import annotations

import inspect

from ia_modules.pipeline.defaults import CacheService, default_services
from ia_modules.pipeline.imports import ImportProblem, import_callable
from ia_modules.pipeline.services import ServiceRegistry

__all__ = ["CacheService", "ServicesError", "build_services", "default_services"]


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
