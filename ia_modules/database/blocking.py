"""Running a DatabaseManager call to completion for a caller that did not await it (the guide's way).

Where it runs, so that it reaches the same database as the awaited calls:

- When the loop the manager was opened on runs in another thread, the call runs there (same pool or
  connection) and the caller waits.
- Otherwise it runs on a private event loop in a daemon thread of this process: on SQLite with the manager's own
  connection (aiosqlite's thread does the work, so ``sqlite:///:memory:`` is the same database); on PostgreSQL
  with a small pool of the manager's URL and credentials, opened on that loop (an asyncpg pool belongs to the
  loop that opened it).

Called on a running event loop (a step's ``run``), the call blocks that loop until it is done: the one place this
package blocks a loop, because code written as the guide shows expects the result at once. The first such call of
each call site logs a WARNING naming ``file:line`` and the ``await`` form; ``IA_SYNC_DB_CALLS=error`` raises
:class:`UnawaitedCallError` with that message instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import Session
from .errors import DatabaseConnectionError, DatabaseError
from .url import DatabaseURL

if TYPE_CHECKING:
    from .backends.postgres import PostgresBackend
    from .backends.sqlite import SqliteBackend
    from .call_sites import Site
    from .manager import DatabaseManager

logger = logging.getLogger("ia_modules.database")

T = TypeVar("T")

SETTING = "IA_SYNC_DB_CALLS"
"""``warn`` (default): a call without await on a running event loop is logged once per call site; ``error``:
it raises UnawaitedCallError."""
LOCK_TIMEOUT = "30s"
"""How long a PostgreSQL statement run without await waits for a lock: while it waits it may block the very
event loop whose task holds that lock, so it gives up (with a DatabaseError) instead of waiting forever."""
_POLL_S = 0.25

#: The manager whose ``transaction()`` block the current task is in.
in_transaction: contextvars.ContextVar[object | None] = contextvars.ContextVar("ia_db_transaction", default=None)


class UnawaitedCallError(DatabaseError):
    """A database call was made without ``await`` on a running event loop while ``IA_SYNC_DB_CALLS=error``."""


def sync_calls_setting() -> str:
    """``warn`` or ``error``, from ``IA_SYNC_DB_CALLS`` (any case; unset or empty: ``warn``)."""
    value = os.environ.get(SETTING, "").strip().lower() or "warn"
    if value not in ("warn", "error"):
        raise DatabaseError(f"{SETTING}={value!r} is not a valid setting: expected warn or error")
    return value


def blocking_message(site: Site) -> str:
    """What the user is told about a call without await on a running loop, and how to write it instead."""
    return f"{site.where}: {site.call} called without await blocks the event loop; write `await {site.call}`"


def _on_running_loop(site: Site, manager: DatabaseManager) -> None:
    """Refuse (``IA_SYNC_DB_CALLS=error``, or inside the manager's transaction) or warn once for this site."""
    if sync_calls_setting() == "error":
        raise UnawaitedCallError(f"{blocking_message(site)} ({SETTING}=error)")
    if in_transaction.get() is manager:
        raise DatabaseError(
            f"{site.where}: {site.call} without await inside `async with db.transaction() as tx`: "
            f"it cannot join the transaction; write `await tx.{site.callee.rpartition('.')[2]}(...)`"
        )
    if not site.warned:
        site.warned = True
        logger.warning("%s", blocking_message(site))


class _PrivateLoop:
    """One event loop in a daemon thread per process, started on first use (again after a fork)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="ia-database-sync-calls", daemon=True)
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def is_current(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop is self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()


private_loop = _PrivateLoop()


def _wait(future: concurrent.futures.Future[T], loop: asyncio.AbstractEventLoop) -> T:
    """The result of ``future``, running on ``loop`` in another thread; an error if that loop stops first."""
    while True:
        try:
            return future.result(timeout=_POLL_S)
        except TimeoutError:
            if future.done():
                raise
            if not loop.is_running():
                future.cancel()
                raise DatabaseConnectionError(
                    "the event loop this database was opened on stopped before the call could run there"
                ) from None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class BlockingCalls:
    """The calls of one manager made without await. Holds no reference to the manager (it is passed in), so
    that a manager dropped without ``close()`` is freed at once, with its SQLite connection's thread."""

    def __init__(
        self, url: DatabaseURL, *, max_pool_size: int, command_timeout: float | None, connect_timeout: float
    ) -> None:
        self._url = url
        self._max_pool_size = max(1, min(max_pool_size, 4))
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._postgres: PostgresBackend | None = None
        self._sqlite_lock: asyncio.Lock | None = None  # lives on the private loop
        self._pid = os.getpid()  # a forked child has a private loop of its own: it opens its own pool

    @property
    def connected(self) -> bool:
        """Whether this manager's own PostgreSQL pool on the private loop is open."""
        return self._postgres is not None and self._postgres.pool is not None

    def _home(self, manager: DatabaseManager, site: Site) -> asyncio.AbstractEventLoop | None:
        """The loop to run on when it is running in another thread; checks and warns for a running loop here."""
        current = _running_loop()
        if current is not None:
            if private_loop.is_current(current):
                raise DatabaseError(f"{site.where}: {site.call} must be awaited on this event loop")
            _on_running_loop(site, manager)
        home = manager.home_loop
        if home is not None and home is not current and home.is_running() and not home.is_closed():
            return home
        return None

    def statement(self, manager: DatabaseManager, site: Site, name: str, args: tuple[Any, ...]) -> Any:
        """``execute``, ``executemany``, ``fetch_one`` or ``fetch_all``, run to completion."""
        home = self._home(manager, site)
        if home is not None:
            coro = getattr(manager, f"_{name}")(*args)
            return _wait(asyncio.run_coroutine_threadsafe(coro, home), home)
        return private_loop.run(self._statement(manager, name, args))

    def connect(self, manager: DatabaseManager, site: Site) -> bool:
        """Open the connection the calls use; False (the reason logged, without the password) when the
        database cannot be reached, as the guide's ``if not db.connect()`` expects."""
        home = self._home(manager, site)
        try:
            if home is not None:
                _wait(asyncio.run_coroutine_threadsafe(manager._connect(), home), home)
            else:
                private_loop.run(self._session_source(manager))
        except DatabaseConnectionError as exc:
            logger.warning("%s: connect() failed: %s", site.where, exc)
            return False
        return True

    def close(self, manager: DatabaseManager, site: Site) -> None:
        """Close the manager's connections (a later call reconnects)."""
        home = self._home(manager, site)
        if home is not None:
            _wait(asyncio.run_coroutine_threadsafe(manager._close(), home), home)
            return
        private_loop.run(self._close_private())
        backend = manager.backend
        manager.mark_closed()
        if backend.dialect == "sqlite":
            private_loop.run(_close_sqlite(backend))  # type: ignore[arg-type]
        else:
            _terminate_postgres(backend)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Close the private PostgreSQL pool from another loop, without blocking that loop."""
        if self._postgres is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close_private(), private_loop.loop()))

    def discard(self) -> None:
        """For a manager dropped without ``close()``: close the private pool in the background."""
        if self._postgres is not None:
            asyncio.run_coroutine_threadsafe(self._close_private(), private_loop.loop())

    async def _close_private(self) -> None:
        postgres, self._postgres = self._postgres, None
        if postgres is not None:
            await postgres.close()

    async def _session_source(self, manager: DatabaseManager) -> PostgresBackend | SqliteBackend:
        """On the private loop: the open PostgreSQL pool of these calls, or the manager's SQLite connection."""
        if self._pid != os.getpid():
            self._postgres, self._sqlite_lock, self._pid = None, None, os.getpid()
        if manager.dialect == "postgresql":
            if self._postgres is None or self._postgres.pool is None:
                from .backends.postgres import PostgresBackend

                backend = PostgresBackend(
                    self._url,
                    min_size=1,
                    max_size=self._max_pool_size,
                    command_timeout=self._command_timeout,
                    connect_timeout=self._connect_timeout,
                    server_settings={"lock_timeout": LOCK_TIMEOUT},
                )
                await backend.connect()
                self._postgres = backend
            return self._postgres
        sqlite: SqliteBackend = manager.backend  # type: ignore[assignment]
        if sqlite.connection is None:
            if manager.connecting:
                raise DatabaseError(
                    "this SQLite database is being opened by a task of the running event loop, which a call without "
                    "await cannot wait for: await db.connect() first"
                )
            await sqlite.connect()
            manager.mark_connected()
        return sqlite

    async def _statement(self, manager: DatabaseManager, name: str, args: tuple[Any, ...]) -> Any:
        source = await self._session_source(manager)
        if source.dialect == "postgresql":
            async with source.session() as pooled:
                return await getattr(pooled, name)(*args)
        sqlite: SqliteBackend = source  # type: ignore[assignment]
        if self._sqlite_lock is None:
            self._sqlite_lock = asyncio.Lock()
        async with self._sqlite_lock:
            if sqlite.transaction_open:
                raise DatabaseError(
                    "another task has a transaction open on this SQLite database, which a call without await cannot "
                    "wait for without blocking that task: await the call"
                )
            session: Session = sqlite.unlocked_session()
            return await getattr(session, name)(*args)


async def _close_sqlite(backend: SqliteBackend) -> None:
    connection, backend.connection = backend.connection, None
    if connection is not None:
        await connection.close()


def _terminate_postgres(backend: PostgresBackend) -> None:
    """Close a pool whose event loop cannot be reached from here (it is this thread's, and blocked, or it no
    longer runs): its connections are terminated."""
    pool, backend.pool = backend.pool, None
    if pool is None:
        return
    try:
        pool.terminate()
    except Exception:  # its loop is closed: the sockets go with it
        logger.debug("terminating a PostgreSQL pool whose loop is gone failed", exc_info=True)
