"""SQLite through one aiosqlite connection in autocommit mode, shared under an asyncio lock; transactions are
explicit ``BEGIN IMMEDIATE`` so that writers in other processes queue on SQLite's own lock."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import aiosqlite

from ..errors import DatabaseConnectionError, DatabaseError, Secrets, wrap_error
from ..url import DatabaseURL
from .base import Backend, Params, Row, Session

_holder: contextvars.ContextVar[SqliteBackend | None] = contextvars.ContextVar("ia_sqlite_holder", default=None)


def _adapt(params: Params) -> tuple[Any, ...]:
    """Parameters for sqlite3: dates and times as ISO 8601 text (the format of sqlite3's default adapters,
    which Python 3.12 deprecates), so one datetime parameter works on SQLite and PostgreSQL alike."""
    return tuple(_adapt_value(value) for value in params)


def _adapt_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def split_statements(script: str) -> list[str]:
    """The statements of ``script``, split where SQLite itself sees a complete statement, so that a trigger's
    ``BEGIN ... END;`` body, strings and comments holding ``;`` stay whole."""
    statements: list[str] = []
    start = 0
    end = script.find(";")
    while end >= 0:
        chunk = script[start : end + 1]
        if sqlite3.complete_statement(chunk):
            statements.append(chunk)
            start = end + 1
        end = script.find(";", end + 1)
    tail = script[start:]
    if tail.strip():
        statements.append(tail)
    return statements


class SqliteSession(Session):
    """Operations on the backend's connection, which this session holds exclusively."""

    def __init__(
        self, connection: aiosqlite.Connection, secrets: Secrets, backend: SqliteBackend | None = None
    ) -> None:
        self.connection = connection
        self._secrets = secrets
        self._savepoints = 0
        self._backend = backend

    def _fail(self, exc: Exception, sql: str) -> NoReturn:
        raise wrap_error(exc, self._secrets, sql=sql) from exc

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            async with self.connection.execute(sql, _adapt(params)) as cursor:
                return cursor.rowcount
        except Exception as exc:
            self._fail(exc, sql)

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        async with self.transaction():
            try:
                await self.connection.executemany(sql, [_adapt(params) for params in seq_of_params])
            except Exception as exc:
                self._fail(exc, sql)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        try:
            async with self.connection.execute(sql, _adapt(params)) as cursor:
                row = await cursor.fetchone()
        except Exception as exc:
            self._fail(exc, sql)
        return None if row is None else dict(row)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            async with self.connection.execute(sql, _adapt(params)) as cursor:
                rows = await cursor.fetchall()
        except Exception as exc:
            self._fail(exc, sql)
        return [dict(row) for row in rows]

    async def execute_script(self, script: str) -> None:
        # Not executescript(): it commits any open transaction first, so a file could not run in ours.
        async with self.transaction():
            for statement in split_statements(script):
                await self.execute(statement)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        rollback: tuple[str, ...]
        if self.connection.in_transaction:
            self._savepoints += 1
            name = f"ia_sp_{self._savepoints}"
            begin, commit, rollback = f"SAVEPOINT {name}", f"RELEASE {name}", (f"ROLLBACK TO {name}", f"RELEASE {name}")
        else:
            begin, commit, rollback = "BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",)
        owner = self._backend if self._backend is not None and not self._backend.transaction_open else None
        if owner is not None:
            owner.transaction_open = True
        try:
            await self.execute(begin)
            try:
                yield self
            except BaseException:
                for statement in rollback:
                    try:
                        await self.execute(statement)
                    except DatabaseError:
                        break
                raise
            await self.execute(commit)
        finally:
            if owner is not None:
                owner.transaction_open = False


class SqliteBackend(Backend):
    """One aiosqlite connection to ``url``'s file (or memory)."""

    dialect = "sqlite"

    def __init__(self, url: DatabaseURL, *, timeout: float = 30.0) -> None:
        self._url = url
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.connection: aiosqlite.Connection | None = None
        self.transaction_open = False
        """True from a transaction's BEGIN until its end (calls without await must not slip into it)."""

    async def connect(self) -> None:
        path = self._url.sqlite_path or ":memory:"
        try:
            if path != ":memory:":
                await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
            opening = aiosqlite.connect(path, isolation_level=None, timeout=self._timeout)
            # A daemon thread: a script that never closes its manager still exits (every call is waited for,
            # so nothing is pending then).
            thread = getattr(opening, "_thread", None)
            if isinstance(thread, threading.Thread):
                thread.daemon = True
            connection = await opening
        except Exception as exc:
            raise wrap_error(exc, Secrets(), action=f"opening {self._url.redacted}") from exc
        connection.row_factory = sqlite3.Row
        # The default rollback journal, not WAL: with WAL, a connection that opened the file while another was
        # switching it gets "database is locked" at once instead of waiting its busy timeout.
        await connection.execute("PRAGMA foreign_keys = ON")
        self.connection = connection

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            async with self._lock:
                await connection.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        if _holder.get() is self:
            raise DatabaseError(
                "this SQLite database is already in use by this task (inside transaction()?): "
                "run the statement on the transaction's session instead"
            )
        async with self._lock:
            if self.connection is None:
                raise DatabaseConnectionError("not connected: call connect() first, or the manager was closed")
            token = _holder.set(self)
            try:
                yield SqliteSession(self.connection, self._url.secrets, self)
            finally:
                _holder.reset(token)

    def unlocked_session(self) -> SqliteSession:
        """A session on the connection without taking the lock: for calls without await, which run on
        aiosqlite's thread while the loop that holds the lock cannot move (see ``..blocking``)."""
        if self.connection is None:
            raise DatabaseConnectionError("not connected: call connect() first, or the manager was closed")
        return SqliteSession(self.connection, self._url.secrets, self)

    def migration_session(self) -> AbstractAsyncContextManager[Session]:
        """The connection for the whole run; each file's ``BEGIN IMMEDIATE`` makes other processes wait."""
        return self.session()
