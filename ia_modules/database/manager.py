"""DatabaseManager: the guide's database service, async, on PostgreSQL (asyncpg) or SQLite (aiosqlite).

SQL uses ``?`` placeholders on both (numbered for asyncpg; see :mod:`.placeholders`); rows come back as dicts.
On PostgreSQL parameters are typed by asyncpg: a ``timestamptz`` column takes a ``datetime``, a ``jsonb`` one
JSON text. The URL's password never appears in a message, a log or ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .backends.base import Backend, Params, Row, Session
from .errors import DatabaseConnectionError
from .migrations import MigrationReport, MigrationRunner, MigrationSource
from .url import DatabaseURL, SecretLike

logger = logging.getLogger(__name__)


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
        return self._connected

    @property
    def asyncpg_pool(self) -> Any:
        """The asyncpg pool, for bulk paths the manager does not wrap (``copy_records_to_table``)."""
        pool = getattr(self._backend, "pool", None)
        if pool is None:
            raise DatabaseConnectionError(f"no asyncpg pool: {self.url} is not a connected PostgreSQL database")
        return pool

    async def connect(self) -> bool:
        """Open the pool (PostgreSQL) or the file (SQLite); True once connected. Raises
        DatabaseConnectionError (without the password) when the database cannot be reached."""
        async with self._connect_lock:
            if not self._connected:
                await self._backend.connect()
                self._connected = True
                logger.info("connected to %s", self.url)
        return True

    async def initialize(
        self, apply_schema: bool = True, app_migration_paths: Sequence[str | Path | MigrationSource] | None = None
    ) -> bool:
        """Connect and, with ``apply_schema``, apply the pending migrations: the project's, then each app
        path's. True on success; MigrationError (naming the file) when a migration changed or fails."""
        await self.connect()
        if apply_schema:
            await self.migrate(app_migration_paths or ())
        return True

    async def migrate(self, app_migration_paths: Sequence[str | Path | MigrationSource] = ()) -> MigrationReport:
        """Apply the pending migrations and report what was applied."""
        await self.connect()
        runner = MigrationRunner(self._backend, self.project_migrations_dir)
        self.last_migration_report = await runner.run(app_migration_paths)
        return self.last_migration_report

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Session]:
        if not self._connected:
            await self.connect()
        async with self._backend.session() as session:
            yield session

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the rows it affected (-1 when that does not apply, e.g. DDL)."""
        async with self._session() as session:
            return await session.execute(sql, params)

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        """Run one statement once per parameter tuple, all or nothing."""
        async with self._session() as session:
            await session.executemany(sql, seq_of_params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row as a dict, or None."""
        async with self._session() as session:
            return await session.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row, each as a dict."""
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
            yield tx

    async def close(self) -> None:
        """Close the pool or file; a later call reconnects."""
        async with self._connect_lock:
            if self._connected:
                self._connected = False
                await self._backend.close()
                logger.info("closed %s", self.url)

    async def __aenter__(self) -> DatabaseManager:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
