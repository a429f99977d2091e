"""``ia-modules migrate``: on IA_DATABASE_URL, or on the embedded PostgreSQL when it is unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ia_modules.database.manager import default_project_migrations_dir
from ia_modules.database.migrations import parse_directory
from streams.cli import app
from tests.postgres_server import PostgresForTests, with_login

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "ia-modules")


def project_migrations(dialect: str) -> list[str]:
    """The project's own migration files that ``dialect`` applies, in order (they grow with the schema)."""
    directory = default_project_migrations_dir()
    entries = [(path, path.read_bytes()) for path in sorted(directory.iterdir()) if path.is_file()]
    return [migration.name for migration in parse_directory("project", entries, dialect)]


def app_migrations(root: Path) -> Path:
    directory = root / "app_migrations"
    directory.mkdir()
    (directory / "V1__widgets.sql").write_text("CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT);")
    (directory / "V2__gadgets.sql").write_text("CREATE TABLE gadgets (id INTEGER PRIMARY KEY);")
    return directory


def test_migrate_applies_the_project_and_app_migrations_then_nothing(postgres_url: str, tmp_path: Path) -> None:
    directory = app_migrations(tmp_path)
    first = CliRunner().invoke(
        app, ["migrate", "--path", str(directory), "--json"], env={"IA_DATABASE_URL": postgres_url}
    )
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    ours = project_migrations("postgresql")
    assert [(m["scope"], m["name"]) for m in report["applied"]] == [
        *(("project", name) for name in ours),
        ("app:app_migrations", "V1__widgets.sql"),
        ("app:app_migrations", "V2__gadgets.sql"),
    ]
    total = len(ours) + 2
    assert "V1__widgets.sql" in first.stderr and f"applied {total} migration(s)" in first.stderr
    second = CliRunner().invoke(app, ["migrate", "--path", str(directory)], env={"IA_DATABASE_URL": postgres_url})
    assert second.exit_code == 0
    assert f"nothing to apply: {total} migration(s) already applied" in second.stderr


def test_migrate_failure_exits_1_naming_the_file(postgres_url: str, tmp_path: Path) -> None:
    directory = app_migrations(tmp_path)
    (directory / "V3__broken.sql").write_text("CREATE TABLE fine (id INTEGER);\nCREATE TABLE broken (;\n")
    result = CliRunner().invoke(app, ["migrate", "--path", str(directory)], env={"IA_DATABASE_URL": postgres_url})
    assert result.exit_code == 1
    assert "V3__broken.sql" in result.stderr and "rolled back" in result.stderr and "at line 2" in result.stderr


def test_migrate_rejects_a_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["migrate", "--path", str(tmp_path / "nope")], env={"IA_DATABASE_URL": None})
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [(["migrate"], 1), (["dlq", "list", "custom_processing"], 2)],
    ids=["migrate", "dlq-list"],
)
def test_a_command_that_reads_the_database_says_when_it_is_turned_off(command: list[str], exit_code: int) -> None:
    result = CliRunner().invoke(app, command, env={"IA_DATABASE_URL": "none"})
    assert result.exit_code == exit_code, result.output
    assert "IA_DATABASE_URL=none turns the database off, and this command reads it" in result.stderr
    assert "unsupported database URL scheme" not in result.stderr


def test_migrate_with_a_wrong_password_never_prints_it(postgres_server: PostgresForTests, postgres_url: str) -> None:
    if postgres_server.password_login is None:
        pytest.skip("no password-checked role on this server")
    url = with_login(postgres_url, postgres_server.password_login[0], "Wr0ng-Passw0rd")
    result = CliRunner().invoke(app, ["migrate"], env={"IA_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "password authentication failed" in result.output
    assert "Wr0ng-Passw0rd" not in result.output


def test_migrate_without_a_url_uses_the_embedded_postgres_and_stops_it(
    server_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(server_dir)
    result = CliRunner().invoke(app, ["migrate", "--json"], env={"IA_DATABASE_URL": None})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "(embedded)" in result.stderr
    assert [m["name"] for m in report["applied"]] == project_migrations("postgresql")
    pgdata = server_dir / ".ia" / "pg"
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()  # stopped on exit
    again = CliRunner().invoke(app, ["migrate"], env={"IA_DATABASE_URL": None})
    applied = len(project_migrations("postgresql"))
    assert again.exit_code == 0 and f"nothing to apply: {applied} migration(s) already applied" in again.stderr


def test_console_script_on_sqlite(tmp_path: Path) -> None:
    directory = app_migrations(tmp_path)
    env = {**os.environ, "IA_DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}"}
    done = subprocess.run(
        [CLI, "migrate", "--path", str(directory), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [m["name"] for m in report["applied"]] == [
        *project_migrations("sqlite"),
        "V1__widgets.sql",
        "V2__gadgets.sql",
    ]
