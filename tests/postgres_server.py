"""A real PostgreSQL for the integration tests: `IA_TEST_DATABASE_URL`, else the embedded server (once per session).

Each test gets a fresh database on it (its user needs CREATEDB), so tests never see each other's tables. The
embedded server is tuned for tests (no fsync) and given a role whose password the server really checks (a
`scram-sha-256` line in pg_hba.conf; every other local connection is trusted), for the tests proving that a
password never reaches a message or a log.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from streams.embedded.postgres import EmbeddedPostgres

T = TypeVar("T")

PASSWORD_ROLE = "ia_password_check"


@dataclass(frozen=True)
class PostgresForTests:
    """The session's server: an admin URL, and a (user, password) the server checks, when one could be made."""

    admin_url: str
    embedded: bool
    password_login: tuple[str, str] | None = None


def run_in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop in a worker thread, so that sync fixtures never touch the
    loop pytest-asyncio gives the tests."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        async def main() -> T:
            return await make()

        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="pg-fixture")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment))


def with_login(url: str, user: str, password: str | None) -> str:
    """``url`` logging in as ``user`` with ``password``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


async def _prepare_embedded(url: str, data_dir: Path) -> tuple[str, str]:
    """Turn durability off (tests only) and create the password-checked role; its login."""
    password = "pw-" + secrets.token_hex(12)
    connection = await asyncpg.connect(url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes", "wal_init_zero"):
            await connection.execute(f"ALTER SYSTEM SET {setting} = off")
        await connection.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        await connection.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{password}'")
        hba = data_dir / "pg_hba.conf"
        text = await asyncio.to_thread(hba.read_text)
        await asyncio.to_thread(hba.write_text, f"local all {PASSWORD_ROLE} scram-sha-256\n{text}")
        await connection.execute("SELECT pg_reload_conf()")
    finally:
        await connection.close()
    return PASSWORD_ROLE, password


@contextmanager
def server_folder(prefix: str = "ia-test-pg-") -> Iterator[Path]:
    """A temporary folder for a server's data, outside pytest's tmp_path tree: pytest makes /tmp/pytest-of-<user>
    private (0700) whenever any session starts, which cuts a running server (as user embedded_postgres) off its
    own files (it PANICs)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_for_tests(external_url: str | None) -> Iterator[PostgresForTests]:
    """The server the integration tests use, for as long as the block runs."""
    if external_url:
        yield PostgresForTests(external_url, embedded=False)
        return
    with server_folder() as folder:
        yield from _embedded_for_tests(folder / "pg")


def _embedded_for_tests(data_dir: Path) -> Iterator[PostgresForTests]:
    server = EmbeddedPostgres(data_dir)
    url = run_in_thread(server.start)
    try:
        login = run_in_thread(lambda: _prepare_embedded(url, data_dir))
        yield PostgresForTests(url, embedded=True, password_login=login)
    finally:
        run_in_thread(server.stop)


@contextmanager
def fresh_database(server: PostgresForTests) -> Iterator[str]:
    """The URL of a new, empty database, dropped when the block ends."""
    name = f"ia_test_{uuid.uuid4().hex[:16]}"

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(server.admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    # The name is generated here, never taken from input; CREATE DATABASE cannot take a parameter.
    # FILE_COPY: without fsync a copy of template1 is several times faster than WAL-logging it (PostgreSQL 15+).
    strategy = " STRATEGY FILE_COPY" if server.embedded else ""
    run_in_thread(lambda: run(f'CREATE DATABASE "{name}"{strategy}'))
    try:
        yield with_database(server.admin_url, name)
    finally:
        run_in_thread(lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
