"""A real login with a password holding URL characters, written unencoded in IA_DATABASE_URL: ``ia-modules
migrate`` connects (the server checks the password) and never prints it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from ia_modules.database import DatabaseConnectionError, DatabaseManager
from tests.postgres_server import PostgresForTests, run_in_thread

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "ia-modules")


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    database: str
    query: str
    """``host=<socket dir>&port=<port>`` of the session's embedded server."""

    def url(self, password: str | None = None) -> str:
        return f"postgresql://{self.user}:{password or self.password}@/{self.database}?{self.query}"


async def _admin(url: str, *statements: str) -> list[object]:
    """Each statement's first value, run one after the other on one connection."""
    connection = await asyncpg.connect(url)
    try:
        return [await connection.fetchval(sql) for sql in statements]
    finally:
        await connection.close()


@pytest.fixture
def url_character_login(postgres_server: PostgresForTests) -> Iterator[Login]:
    """A role whose password holds ``/ # ? @ [ ] : %`` and a space, checked by the server (a scram-sha-256 line in
    pg_hba.conf for it), owning a database of its own; all dropped afterwards."""
    if not postgres_server.embedded:
        pytest.skip("needs the embedded server, whose pg_hba.conf the tests may change")
    tag = secrets.token_hex(6)
    admin = postgres_server.admin_url
    login = Login(f"ia_url_pw_{tag}", f"Pw/#?@[x]:%zz q{tag}", f"ia_test_url_pw_{tag}", urlsplit(admin).query)
    (hba_file,) = run_in_thread(lambda: _admin(admin, "SHOW hba_file"))
    hba = Path(str(hba_file))
    original = hba.read_text()
    hba.write_text(f"local all {login.user} scram-sha-256\n{original}")
    # generated names and password (no quote in them); CREATE ROLE cannot take parameters
    create_role = f"CREATE ROLE {login.user} LOGIN PASSWORD '{login.password}'"
    create_database = f'CREATE DATABASE "{login.database}" OWNER {login.user}'
    run_in_thread(lambda: _admin(admin, create_role, create_database, "SELECT pg_reload_conf()"))
    try:
        yield login
    finally:
        hba.write_text(original)
        drop_database = f'DROP DATABASE IF EXISTS "{login.database}" WITH (FORCE)'
        run_in_thread(
            lambda: _admin(admin, drop_database, f"DROP ROLE IF EXISTS {login.user}", "SELECT pg_reload_conf()")
        )


def test_migrate_logs_in_with_an_unencoded_password_holding_url_characters(
    url_character_login: Login, tmp_path: Path
) -> None:
    login = url_character_login
    environment = {**os.environ, "IA_DATABASE_URL": login.url()}
    done = subprocess.run([CLI, "migrate", "--json"], cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert login.password not in printed
    assert f"database: postgresql://{login.user}:***@/{login.database}?" in done.stderr
    assert "applied" in done.stderr and '"applied"' in done.stdout

    async def owner_of_the_ledger() -> str:
        connection = await asyncpg.connect(user=login.user, password=login.password, database=login.database,
                                           **_socket(login.query))  # fmt: skip
        try:
            return str(await connection.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = $1",
                                                 "ia_schema_migrations"))  # fmt: skip
        finally:
            await connection.close()

    assert run_in_thread(owner_of_the_ledger) == login.user, "the migrations ran as the role that logged in"


def test_the_server_checks_that_password_and_a_wrong_one_never_prints(url_character_login: Login) -> None:
    """The login above proves the URL's password was read whole: the server refuses anything else."""
    wrong = url_character_login.url(password="Wr0ng/#?@[pw")

    async def connect() -> str:
        manager = DatabaseManager(wrong, project_migrations_dir=False)
        try:
            await manager.connect()
        except DatabaseConnectionError as exc:
            return str(exc)
        finally:
            await manager.close()
        return "connected"

    message = asyncio.run(connect())
    assert "password authentication failed" in message
    assert "Wr0ng" not in message and "[pw" not in message


def _socket(query: str) -> dict[str, str | int]:
    fields = dict(pair.split("=", 1) for pair in query.split("&"))
    return {"host": fields["host"], "port": int(fields["port"])}
