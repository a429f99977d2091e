"""DatabaseManager: the guide's database service, async, on PostgreSQL (asyncpg) or SQLite (aiosqlite).

SQL uses ``?`` placeholders on both (numbered for asyncpg; see :mod:`.placeholders`); rows come back as dicts.
On PostgreSQL parameters are typed by asyncpg: a ``timestamptz`` column takes a ``datetime``, a ``jsonb`` one
JSON text. The URL's password never appears in a message, a log or ``repr``.

``connect``, ``execute``, ``executemany``, ``fetch_one``, ``fetch_all`` and ``close`` work awaited (the
non-blocking way) and, as the guide writes them, without ``await``: then they run to completion before returning
(:mod:`.call_sites` tells the two apart, :mod:`.blocking` runs the second kind).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

from .backends.base import Backend, Params, Row, Session
from .blocking import BlockingCalls, in_transaction
from .call_sites import awaited_at as _awaited_at
from .call_sites import awaits_value, site_of
from .errors import DatabaseConnectionError
from .migrations import MigrationReport, MigrationRunner, MigrationSource
from .url import DatabaseURL, SecretLike

logger = logging.getLogger(__name__)
_getframe = sys._getframe


def default_project_migrations_dir() -> Path:
    """The repository's ``migrations/`` folder (the package is installed editable from the repository)."""
    import ia_modules

    return Path(ia_modules.__file__).resolve().parents[1] / "migrations"


class DatabaseManager:
    """Async access to one database. ``DatabaseManager("postgresql://...")``, ``("sqlite:///./app.db")`` or
    ``("sqlite:///:memory:")``; connects on first use, or explicitly with :meth:`connect`.

    ``project_migrations_dir``: where the project's own migrations are (default: the repository's
    ``migrations/``; ``False`` for none). Pool sizes and timeouts apply to PostgreSQL.
    """

    def __init__(
        self,
        url: str | SecretLike,
        *,
        project_migrations_dir: Path | str | Literal[False] | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        command_timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = DatabaseURL.parse(url)
        if project_migrations_dir is False:
            self.project_migrations_dir: Path | None = None
        else:
            self.project_migrations_dir = Path(project_migrations_dir or default_project_migrations_dir())
        self._backend: Backend
        if self._url.dialect == "postgresql":
            from .backends.postgres import PostgresBackend

            self._backend = PostgresBackend(
                self._url,
                min_size=min_pool_size,
                max_size=max_pool_size,
                command_timeout=command_timeout,
                connect_timeout=connect_timeout,
            )
        else:
            from .backends.sqlite import SqliteBackend

            self._backend = SqliteBackend(self._url)
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._blocking = BlockingCalls(
            self._url, max_pool_size=max_pool_size, command_timeout=command_timeout, connect_timeout=connect_timeout
        )
        weakref.finalize(self, self._blocking.discard)
        self.last_migration_report: MigrationReport | None = None

    def __repr__(self) -> str:
        return f"DatabaseManager({self._url.redacted!r})"

    @property
    def url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return self._url.redacted

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return self._url.dialect

    @property
    def is_connected(self) -> bool:
        """Whether the pool or file is open (also the pool the calls without await use on PostgreSQL)."""
        return self._connected or self._blocking.connected

    @property
    def asyncpg_pool(self) -> Any:
        """The asyncpg pool, for bulk paths the manager does not wrap (``copy_records_to_table``)."""
        pool = getattr(self._backend, "pool", None)
        if pool is None:
            raise DatabaseConnectionError(f"no asyncpg pool: {self.url} is not a connected PostgreSQL database")
        return pool

    @property
    def home_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the awaited calls last opened or used the database on."""
        return self._home_loop

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def connecting(self) -> bool:
        """Whether an awaited ``connect()`` is under way."""
        return self._connect_lock.locked()

    def mark_connected(self) -> None:
        self._connected = True

    def mark_closed(self) -> None:
        self._connected = False

    if TYPE_CHECKING:  # as typed code sees them: awaited (without await they return the result itself)

        async def connect(self) -> bool: ...
        async def execute(self, sql: str, params: Params = ()) -> int: ...
        async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None: ...
        async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...
        async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...
        async def close(self) -> None: ...

    else:

        def connect(self):
            """Open the pool (PostgreSQL) or the file (SQLite). Awaited: True once connected, or
            DatabaseConnectionError (without the password). Without await: True, or False (the reason logged)."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._connect()
            site = site_of(frame, "connect")
            return self._connect() if awaits_value(frame) else self._blocking.connect(self, site)

        def execute(self, sql, params=()):
            """Run one statement; the rows it affected (-1 when that does not apply, e.g. DDL)."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._execute(sql, params)
            return self._unawaited(frame, "execute", (sql, params))

        def executemany(self, sql, seq_of_params):
            """Run one statement once per parameter tuple, all or nothing."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._executemany(sql, seq_of_params)
            return self._unawaited(frame, "executemany", (sql, seq_of_params))

        def fetch_one(self, sql, params=()):
            """The first row as a dict, or None."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._fetch_one(sql, params)
            return self._unawaited(frame, "fetch_one", (sql, params))

        def fetch_all(self, sql, params=()):
            """Every row, each as a dict."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._fetch_all(sql, params)
            return self._unawaited(frame, "fetch_all", (sql, params))

        def close(self):
            """Close the pool or file; a later call reconnects."""
            frame = _getframe(1)
            if _awaited_at.get(frame.f_lasti) is frame.f_code:
                return self._close()
            site = site_of(frame, "close")
            return self._close() if awaits_value(frame) else self._blocking.close(self, site)

    def _unawaited(self, frame: FrameType, name: str, args: tuple[Any, ...]) -> Any:
        """A statement whose caller's site is not (yet) known to await it: the coroutine if the value is
        awaited after all, else the result, run to completion."""
        site = site_of(frame, name)
        if awaits_value(frame):
            return getattr(self, f"_{name}")(*args)
        if name == "executemany":  # a generator of parameters is read here, by the caller's thread
            args = (args[0], list(args[1]))
        return self._blocking.statement(self, site, name, args)

    async def _connect(self) -> bool:
        async with self._connect_lock:
            if not self._connected:
                await self._backend.connect()
                self._connected = True
                self._home_loop = asyncio.get_running_loop()
                logger.info("connected to %s", self.url)
        return True

    async def initialize(
        self, apply_schema: bool = True, app_migration_paths: Sequence[str | Path | MigrationSource] | None = None
    ) -> bool:
        """Connect and, with ``apply_schema``, apply the pending migrations: the project's, then each app
        path's. True on success; MigrationError (naming the file) when a migration changed or fails."""
        await self._connect()
        if apply_schema:
            await self.migrate(app_migration_paths or ())
        return True

    async def migrate(self, app_migration_paths: Sequence[str | Path | MigrationSource] = ()) -> MigrationReport:
        """Apply the pending migrations and report what was applied."""
        await self._connect()
        runner = MigrationRunner(self._backend, self.project_migrations_dir)
        self.last_migration_report = await runner.run(app_migration_paths)
        return self.last_migration_report

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Session]:
        if not self._connected:
            await self._connect()
        home = self._home_loop
        if home is None or home.is_closed():
            self._home_loop = asyncio.get_running_loop()
        async with self._backend.session() as session:
            yield session

    async def _execute(self, sql: str, params: Params = ()) -> int:
        async with self._session() as session:
            return await session.execute(sql, params)

    async def _executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        async with self._session() as session:
            await session.executemany(sql, seq_of_params)

    async def _fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._session() as session:
            return await session.fetch_one(sql, params)

    async def _fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._session() as session:
            return await session.fetch_all(sql, params)

    async def execute_script(self, script: str) -> None:
        """Run several statements (no parameters) as one transaction."""
        async with self._session() as session, session.transaction() as tx:
            await tx.execute_script(script)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """``async with db.transaction() as tx:`` statements on ``tx`` commit together or not at all. On
        SQLite the database is held for the block: use ``tx``, not ``db``, inside it."""
        async with self._session() as session, session.transaction() as tx:
            token = in_transaction.set(self)
            try:
                yield tx
            finally:
                in_transaction.reset(token)

    async def _close(self) -> None:
        async with self._connect_lock:
            if self._connected:
                self._connected = False
                await self._backend.close()
                logger.info("closed %s", self.url)
        await self._blocking.aclose()

    async def __aenter__(self) -> DatabaseManager:
        await self._connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()
