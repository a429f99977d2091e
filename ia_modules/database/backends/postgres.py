"""PostgreSQL through an asyncpg pool; ``?`` placeholders are numbered, whole scripts use the simple protocol."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]

from ..errors import DatabaseConnectionError, Secrets, wrap_error
from ..placeholders import to_numbered
from ..url import DatabaseURL
from .base import Backend, Params, Row, Session

logger = logging.getLogger(__name__)

#: Session-level advisory lock key that serialises migration runners on one database ("ia_migr" in ASCII).
MIGRATION_LOCK_KEY = 0x69615F6D69677201


_BAD_ARGUMENT = re.compile(r"invalid input for query argument \$([0-9]+)")
_TEMPORAL_PARSERS: dict[str, Callable[[str], Any]] = {
    "timestamptz": datetime.fromisoformat,  # a naive value is taken as UTC, as asyncpg does
    "timestamp": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timetz": time.fromisoformat,
}


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

    async def _call(self, method: str, sql: str, rows: list[list[Any]], many: bool = False) -> Any:
        """``connection.<method>`` on the numbered SQL; an ISO 8601 string given for a date, time or timestamp
        parameter is converted and the call retried, as text parameters are with other drivers."""
        query = to_numbered(sql).sql
        for _ in range(len(rows[0]) + 1 if rows else 1):
            try:
                if many:
                    return await self.connection.executemany(query, rows)
                return await getattr(self.connection, method)(query, *rows[0])
            except asyncpg.exceptions.DataError as exc:
                fixed = await self._temporal_strings_parsed(query, rows, exc)
                if fixed is None:
                    self._fail(exc, sql)
                rows = fixed
            except Exception as exc:
                self._fail(exc, sql)
        raise AssertionError("unreachable: every parameter was converted at most once")

    async def _temporal_strings_parsed(
        self, query: str, rows: list[list[Any]], exc: Exception
    ) -> list[list[Any]] | None:
        match = _BAD_ARGUMENT.match(str(exc))
        if not match or not rows:
            return None
        index = int(match.group(1)) - 1
        try:
            types = (await self.connection.prepare(query)).get_parameters()
        except Exception:
            return None
        parse = _TEMPORAL_PARSERS.get(types[index].name) if index < len(types) else None
        if parse is None or not any(isinstance(row[index], str) for row in rows):
            return None
        try:
            return [
                [*row[:index], parse(row[index]) if isinstance(row[index], str) else row[index], *row[index + 1 :]]
                for row in rows
            ]
        except ValueError:
            return None

    async def execute(self, sql: str, params: Params = ()) -> int:
        if not params and not to_numbered(sql).count:
            return _rowcount(await self._call("execute", sql, [[]]))
        return _rowcount(await self._call("execute", sql, [list(params)]))

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        rows = [list(params) for params in seq_of_params]
        if rows:
            await self._call("executemany", sql, rows, many=True)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        record = await self._call("fetchrow", sql, [list(params)])
        return None if record is None else dict(record)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return [dict(record) for record in await self._call("fetch", sql, [list(params)])]

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
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._server_settings = server_settings
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
                server_settings=self._server_settings,
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
            try:
                await self.pool.release(connection)
            except Exception:
                # asyncpg resets a connection as it takes it back, and terminates it if that fails (the server
                # went away after the work was done); the work stands and the pool opens a new connection
                logger.debug("a connection broke as it went back to the pool; it was closed", exc_info=True)

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
