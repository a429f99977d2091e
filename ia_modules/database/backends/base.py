"""What every backend offers: sessions (one connection, optionally in a transaction) and a lock for migrations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

Row = dict[str, Any]
Params = Sequence[Any]


class Session(ABC):
    """One connection's operations. Errors are DatabaseErrors naming the query's first line."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it affected, or -1 when that does not apply."""

    @abstractmethod
    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        """Run one statement for each parameter tuple, atomically."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row as a dict, or None."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row, each as a dict."""

    @abstractmethod
    async def execute_script(self, script: str) -> None:
        """Run a whole SQL script (several statements, triggers, ``$$`` bodies) without parameters."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """A transaction on this connection (a savepoint when one is already open): committed when the
        block ends, rolled back when it raises."""


class Backend(ABC):
    """A connected database: PostgreSQL through an asyncpg pool or SQLite through one aiosqlite connection."""

    dialect: str

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def session(self) -> AbstractAsyncContextManager[Session]:
        """A connection for a few statements, in autocommit mode."""

    @abstractmethod
    def migration_session(self) -> AbstractAsyncContextManager[Session]:
        """A session holding the migration lock, so that runners in other processes wait for this one."""
