"""PostgreSQL through an asyncpg pool; ``?`` placeholders are numbered, whole scripts use the simple protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]

from ..errors import DatabaseConnectionError, Secrets, wrap_error
from ..placeholders import to_numbered
from ..url import DatabaseURL
from .base import Backend, Params, Row, Session

logger = logging.getLogger("ia_modules.database")

#: Session-level advisory lock key that serialises migration runners on one database ("ia_migr" in ASCII).
MIGRATION_LOCK_KEY = 0x69615F6D69677201


def _rowcount(status: str | None) -> int:
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PostgresSession(Session):
    """Operations on one asyncpg connection."""

    def __init__(self, connection: Any, secrets: Secrets) -> None:
        self.connection = connection
        self._secrets = secrets

    def _fail(self, exc: Exception, sql: str) -> NoReturn:
        error = wrap_error(exc, self._secrets, sql=sql)
        if f"{exc!r} {exc}" in self._secrets:
            raise error from None
        raise error from exc

    async def execute(self, sql: str, params: Params = ()) -> int:
        query = to_numbered(sql)
        try:
            if params or query.count:
                status = await self.connection.execute(query.sql, *params)
            else:
                status = await self.connection.execute(query.sql)
        except Exception as exc:
            self._fail(exc, sql)
        return _rowcount(status)

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        try:
            await self.connection.executemany(to_numbered(sql).sql, list(seq_of_params))
        except Exception as exc:
            self._fail(exc, sql)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        try:
            record = await self.connection.fetchrow(to_numbered(sql).sql, *params)
        except Exception as exc:
            self._fail(exc, sql)
        return None if record is None else dict(record)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            records = await self.connection.fetch(to_numbered(sql).sql, *params)
        except Exception as exc:
            self._fail(exc, sql)
        return [dict(record) for record in records]

    async def execute_script(self, script: str) -> None:
        try:
            await self.connection.execute(script)
        except Exception as exc:
            self._fail(exc, script)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        tx = self.connection.transaction()
        try:
            await tx.start()
        except Exception as exc:
            self._fail(exc, "BEGIN")
        try:
            yield self
        except BaseException:
            try:
                await tx.rollback()
            except Exception:
                logger.debug("rollback failed after an error (the connection is likely gone)", exc_info=True)
            raise
        try:
            await tx.commit()
        except Exception as exc:
            self._fail(exc, "COMMIT")


class PostgresBackend(Backend):
    """An asyncpg pool on ``url``."""

    dialect = "postgresql"

    def __init__(
        self,
        url: DatabaseURL,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self.pool: Any = None

    def _connect_error(self, exc: Exception) -> DatabaseConnectionError:
        error = wrap_error(exc, self._url.secrets, action=f"connecting to {self._url.redacted}")
        if isinstance(error, DatabaseConnectionError):
            return error
        return DatabaseConnectionError(str(error), sqlstate=error.sqlstate)

    async def connect(self) -> None:
        try:
            self.pool = await asyncpg.create_pool(
                dsn=self._url.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
            )
        except Exception as exc:
            raise self._connect_error(exc) from None

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except Exception:
            logger.warning("closing the PostgreSQL pool gracefully failed; terminating its connections")
            pool.terminate()

    async def _acquire(self) -> Any:
        if self.pool is None:
            raise DatabaseConnectionError("not connected: call connect() first, or the manager was closed")
        try:
            return await self.pool.acquire()
        except Exception as exc:
            raise self._connect_error(exc) from None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        connection = await self._acquire()
        try:
            yield PostgresSession(connection, self._url.secrets)
        finally:
            await self.pool.release(connection)

    @asynccontextmanager
    async def migration_session(self) -> AsyncIterator[Session]:
        async with self.session() as session:
            got = await session.fetch_one("SELECT pg_try_advisory_lock(?) AS got", (MIGRATION_LOCK_KEY,))
            if not (got and got["got"]):
                logger.info("another migration runner holds the lock on %s; waiting for it", self._url.redacted)
                await session.execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK_KEY,))
            try:
                yield session
            finally:
                try:
                    await session.execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK_KEY,))
                except Exception:
                    logger.debug("advisory unlock failed; the lock ends with the connection", exc_info=True)
