"""Services closed while their event loop can still run the close: a registry that runs used is cleaned up when
the loop ends (``asyncio.run`` cancelling what is left), if its program never calls ``cleanup_all``.

Without this, a database or HTTP client the program forgot (the guide's ``main.py`` never closes its
``DatabaseManager``) is finalised by the garbage collector, perhaps while the loop closes: aiosqlite's thread
then reports ``RuntimeError: Event loop is closed`` and aiohttp "Unclosed client session".
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref

from .services import ServiceRegistry

logger = logging.getLogger(__name__)


class _LoopEnd:
    """One task per loop that waits for the loop's shutdown to cancel it, then cleans up the registries it
    holds, last used first. It holds them strongly: a registry a program dropped must still be closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.registries: dict[int, ServiceRegistry] = {}
        # An empty context: the task must not carry the run id (or anything else) of the run that made it.
        self.task = contextvars.Context().run(
            loop.create_task, self._wait(loop), name="ia_modules: clean up services when the loop ends"
        )

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await loop.create_future()  # never set: only the loop's shutdown ends this
        finally:
            while self.registries:
                _, registry = self.registries.popitem()
                try:
                    await registry.cleanup_all()
                except Exception:  # cleanup_all reports each service's failure itself; never stop the others
                    logger.exception("cleaning up a service registry at the end of the event loop failed")


_loop_ends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopEnd] = weakref.WeakKeyDictionary()


def cleanup_when_loop_ends(registry: ServiceRegistry) -> None:
    """Clean up ``registry`` when the running loop ends, unless :func:`forget` is called first. Calling it
    again for the same registry changes nothing. Needs a running loop."""
    loop = asyncio.get_running_loop()
    guard = _loop_ends.get(loop)
    if guard is None or guard.task.done():
        guard = _loop_ends[loop] = _LoopEnd(loop)
    guard.registries.setdefault(id(registry), registry)


def forget(registry: ServiceRegistry) -> None:
    """``registry`` was cleaned up by its owner: the running loop's end need not (and no longer keeps it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    guard = _loop_ends.get(loop)
    if guard is not None and guard.registries.get(id(registry)) is registry:
        del guard.registries[id(registry)]
