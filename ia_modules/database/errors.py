"""Database errors, and the scrubbing that keeps a URL's password out of every message and log."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from typing import Any

_QUERY_PREVIEW = 120


class DatabaseError(RuntimeError):
    """A query or connection failed. ``query`` is the first line of the SQL, ``sqlstate`` the server's code
    (PostgreSQL only, e.g. ``23505``), ``position`` the 1-based character offset the server pointed at."""

    def __init__(
        self, message: str, *, query: str | None = None, sqlstate: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(message)
        self.query = query
        self.sqlstate = sqlstate
        self.position = position


class DatabaseConnectionError(DatabaseError):
    """The database could not be reached or the connection broke: worth retrying, unlike a bad query."""


class MigrationError(DatabaseError):
    """A migration could not be discovered, verified or applied; the message names the file."""


class DatabaseURLError(DatabaseError):
    """A database URL that cannot be parsed, or names no supported database. The message repeats no part of the
    URL after its scheme (a password may be anywhere in a malformed URL)."""


class Secrets:
    """The password variants of one URL (as written, URL-decoded and encoded for the driver) to scrub from any
    text we emit; also as ``repr`` escapes them (a password with a quote or a backslash, in a repr'd value)."""

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        given = {v for v in values if v}
        self._values = sorted({form for v in given for form in _repr_forms(v)}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every password variant replaced by ``***``."""
        for value in self._values:
            text = text.replace(value, "***")
        return text

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and any(value in text for value in self._values)


def _repr_forms(value: str) -> set[str]:
    """``value`` itself and as it appears inside the repr of a longer string: quoted with ``'`` (which escapes
    ``'``) or, when it holds no ``"``, with ``"``; both escape backslashes and control characters."""
    forms = {value, repr("'\"" + value)[4:-1]}
    if '"' not in value:
        forms.add(repr("'" + value)[2:-1])
    return forms


def first_line(sql: str) -> str:
    """The first meaningful line of ``sql`` (skipping blank and ``--`` comment lines), shortened: errors name
    the query by it."""
    lines = [line.strip() for line in sql.splitlines() if line.strip()]
    chosen = next((line for line in lines if not line.startswith("--")), lines[0] if lines else "")
    return chosen if len(chosen) <= _QUERY_PREVIEW else chosen[: _QUERY_PREVIEW - 3] + "..."


def _is_connection_problem(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError):
        return True
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    connection_types: tuple[type[BaseException], ...] = (
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        asyncpg.exceptions.InvalidPasswordError,
    )
    return isinstance(exc, connection_types)


def wrap_error(exc: BaseException, secrets: Secrets, *, sql: str | None = None, action: str = "query") -> DatabaseError:
    """``exc`` as a DatabaseError (DatabaseConnectionError when the link is the problem) whose message names
    the query's first line and never contains the password."""
    if isinstance(exc, DatabaseError):
        return exc
    query = first_line(sql) if sql is not None else None
    detail = secrets.scrub(f"{type(exc).__name__}: {exc}".strip())
    message = f"{action} failed: {detail}" + (f" [query: {secrets.scrub(query)}]" if query else "")
    sqlstate: Any = getattr(exc, "sqlstate", None)
    raw_position: Any = getattr(exc, "position", None)
    position = int(raw_position) if isinstance(raw_position, str | int) and str(raw_position).isdigit() else None
    kind = DatabaseConnectionError if _is_connection_problem(exc) else DatabaseError
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
        kind = DatabaseConnectionError
    return kind(message, query=query, sqlstate=sqlstate if isinstance(sqlstate, str) else None, position=position)
