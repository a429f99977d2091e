"""The guide's own database samples, run as the guide writes them (calls without ``await``), on SQLite and on the
real PostgreSQL: ``DatabaseConfig.initialize_database()`` applying the guide's migrations, ``DatabaseWriterStep``
and ``PersistentAnalysisStep`` in a pipeline run in-process and through a worker on real Kafka, and
``diagnose_database``. Every write is read back from the database."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ia_modules.database import DatabaseError, DatabaseManager, SecretURL
from ia_modules.database.call_sites import forget_sites
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.services import ServiceRegistry
from tests.guide_samples import database_samples
from tests.guide_samples.database_samples import DatabaseConfig, diagnose_database
from tests.integration.streaming_support import Namespace, WorkerProcess, collect, free_port, publish
from tests.postgres_server import PostgresForTests, with_database, with_login

pytestmark = pytest.mark.integration

SAMPLES = Path(database_samples.__file__).parent
SAMPLES_SHOWN = "tests/guide_samples/database_samples.py"
PIPELINE: dict[str, Any] = {
    "name": "Guide database steps",
    "steps": [
        {"id": "transform", "step_class": "DataTransformStep", "module": "steps.transform"},
        {"id": "db_writer", "step_class": "DatabaseWriterStep", "module": "tests.guide_samples.database_samples",
         "config": {"table_name": "processed_data"}},
        {"id": "analysis", "step_class": "PersistentAnalysisStep", "module": "tests.guide_samples.database_samples"},
    ],
    "flow": {"start_at": "transform", "paths": [
        {"from": "transform", "to": "db_writer"}, {"from": "db_writer", "to": "analysis"}]},
}  # fmt: skip
WRITTEN = {"database_write": "success", "table": "processed_data", "record_count": 1, "status": "success"}
TEXTS = ["first text", "second text", "third text"]


def sample_line(text: str) -> int:
    """The line of the guide's samples module that is ``text`` (stripped of its indentation)."""
    lines = (SAMPLES / "database_samples.py").read_text().splitlines()
    found = [number for number, line in enumerate(lines, 1) if line.strip() == text]
    assert len(found) == 1, (text, found)
    return found[0]


def blocking_warning(line: str, call: str, shown: str | None = None) -> str:
    """The warning for the call on ``line`` of the samples module, its path as shown from the working directory
    (or ``shown``)."""
    where = shown or os.path.relpath(SAMPLES / "database_samples.py")
    return f"{where}:{sample_line(line)}: {call} called without await blocks the event loop; write `await {call}`"


@pytest.fixture(autouse=True)
def fresh_sites(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("IA_SYNC_DB_CALLS", raising=False)
    forget_sites()
    yield
    forget_sites()


def guide_environment(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The guide's DatabaseConfig environment for one kind of database, in the folder holding its
    ``./migrations`` and ``./custom_migrations``; the URL it gives."""
    monkeypatch.chdir(SAMPLES)
    if kind == "sqlite-memory":
        monkeypatch.setenv("ENVIRONMENT", "testing")
        return "sqlite:///:memory:"
    url = f"sqlite:///{tmp_path / 'guide.db'}" if kind == "sqlite-file" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
def guide_database(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each database the guide's DatabaseConfig gives: testing (in memory) and production (a file, PostgreSQL)."""
    return guide_environment(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A production database of the guide's DatabaseConfig, which a worker process and the test both open."""
    return guide_environment(request.param, request, tmp_path, monkeypatch)


def services_with(db: DatabaseManager) -> ServiceRegistry:
    services = ServiceRegistry()
    services.register("database", db)
    return services


async def test_the_guide_s_steps_write_their_rows_in_a_pipeline_run(guide_database: str) -> None:
    db = await DatabaseConfig.initialize_database()
    try:
        assert db.last_migration_report is not None
        applied = {(m.scope, m.name.partition(".")[0]) for m in db.last_migration_report.applied}
        assert ("app:migrations", "V003__add_pipeline_results_table") in applied
        assert ("app:custom_migrations", "V001__guide_step_tables") in applied
        pipeline = Pipeline.from_dict(PIPELINE)
        results = [await pipeline.run({"text": text}, services_with(db)) for text in TEXTS]
        assert [result.status for result in results] == ["success"] * 3
        assert [result["db_writer"] for result in results] == [WRITTEN] * 3
        assert all(result["analysis"]["database_stored"] is True for result in results)
        assert results[-1]["analysis"]["historical_comparison"]["historical_average"] == pytest.approx(0.85)

        written = await db.fetch_all("SELECT content, metadata, processed_at FROM processed_data ORDER BY id")
        assert [row["content"] for row in written] == [text.upper() for text in TEXTS]
        assert all(ast.literal_eval(row["metadata"])["text"] == text for row, text in zip(written, TEXTS, strict=True))
        assert all(str(row["processed_at"]).startswith("20") for row in written)
        stored = await db.fetch_all(
            "SELECT execution_id, step_name, analysis_data, confidence_score FROM analysis_results"
        )
        assert sorted(row["execution_id"] for row in stored) == sorted(result.run_id for result in results)
        assert {row["step_name"] for row in stored} == {"analysis"}
        assert all(json.loads(row["analysis_data"])["score"] == 0.85 for row in stored)
        assert all(row["confidence_score"] == pytest.approx(0.92) for row in stored)
    finally:
        await db.close()


async def test_the_guide_s_migration_table_and_its_trigger(guide_database: str) -> None:
    db = await DatabaseConfig.initialize_database()
    try:
        db.execute(
            "INSERT INTO pipeline_results (execution_id, pipeline_name, status, updated_at) VALUES (?, ?, ?, ?)",
            ("run-1", "guide", "success", "2000-01-01 00:00:00"),
        )
        assert db.execute("UPDATE pipeline_results SET status = ? WHERE execution_id = ?", ("partial", "run-1")) == 1
        row = db.fetch_one("SELECT status, updated_at FROM pipeline_results WHERE execution_id = ?", ("run-1",))
        assert row is not None and row["status"] == "partial"
        assert not str(row["updated_at"]).startswith("2000"), "the trigger set updated_at"
        with pytest.raises(DatabaseError, match=r"(?i)check"):
            db.execute("INSERT INTO pipeline_results (execution_id, pipeline_name, status) VALUES ('r', 'p', 'bogus')")
        assert await db.fetch_one("SELECT count(*) AS n FROM pipeline_results") == {"n": 1}
    finally:
        await db.close()


async def test_the_guide_s_writer_step_with_sync_calls_refused(
    guide_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await DatabaseConfig.initialize_database()
    monkeypatch.setenv("IA_SYNC_DB_CALLS", "error")
    try:
        result = await Pipeline.from_dict(PIPELINE).run({"text": "refused"}, services_with(db))
        writer, analysis = result["db_writer"], result["analysis"]
        assert writer["status"] == "failed"
        assert writer["error"] == (
            f"Database write failed: {blocking_warning('db.execute(', 'db.execute(...)')} (IA_SYNC_DB_CALLS=error)"
        )
        assert analysis["database_stored"] is False and "write `await db.execute(...)`" in analysis["database_error"]
        assert await db.fetch_all("SELECT * FROM processed_data") == []
        assert await db.fetch_all("SELECT * FROM analysis_results") == []
    finally:
        await db.close()


async def test_the_guide_s_steps_through_a_worker_on_kafka(
    shared_database: str, kafka_broker: str, tmp_path: Path
) -> None:
    migrated = await DatabaseConfig.initialize_database()
    await migrated.close()
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "guide_database.json").write_text(json.dumps(PIPELINE))
    events = tmp_path / "events.jsonl"
    texts = [f"event {i}" for i in range(12)]
    events.write_text("".join(json.dumps({"text": text, "customer_id": i}) + "\n" for i, text in enumerate(texts)))
    namespace = Namespace.fresh(kafka_broker)
    log = tmp_path / "worker.log"
    services = "tests.guide_samples.database_samples:guide_services"
    worker = WorkerProcess(namespace, folder, log, IA_SERVICES=services, IA_LOG_LEVEL="WARNING")
    try:
        await worker.wait_consuming()
        assert publish(namespace, "guide_database", events, folder).returncode == 0
        results = await collect(kafka_broker, namespace.topic("guide_database", "output"), len(texts))
    finally:
        assert worker.stop() == 0, log.read_text()[-3000:]
    assert sorted(r["input"]["text"] for r in results) == sorted(texts)
    assert all(r["status"] == "success" for r in results), [r["error"] for r in results]
    async with DatabaseManager(shared_database, project_migrations_dir=False) as db:
        written = await db.fetch_all("SELECT content FROM processed_data")
        stored = await db.fetch_all("SELECT execution_id FROM analysis_results")
    assert sorted(row["content"] for row in written) == sorted(text.upper() for text in texts)
    assert sorted(row["execution_id"] for row in stored) == sorted(r["run_id"] for r in results)
    text = log.read_text()
    sites = [("db.execute(", "db.execute(...)"), ('db.execute("""', "db.execute(...)"),
             ('historical_data = db.fetch_all("""', "db.fetch_all(...)")]  # fmt: skip
    for line, call in sites:
        assert text.count(blocking_warning(line, call, SAMPLES_SHOWN)) == 1, text[-3000:]


# diagnose_database, from the guide's troubleshooting section


def diagnosed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


async def test_diagnose_database_on_a_working_database(
    guide_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(database_samples, "database_url", SecretURL(guide_database))
    await diagnose_database()
    assert diagnosed(capsys) == ["✅ Database connection successful", "✅ Database queries working"]


def password_url(server: PostgresForTests, database: str) -> tuple[str, str | None]:
    """A URL to ``database`` on the session's server that logs in with a password the server checks (when the
    server has one), and that password."""
    if server.password_login is not None:
        user, password = server.password_login
        return with_database(with_login(server.admin_url, user, password), database), password
    return with_database(server.admin_url, database), urlsplit(server.admin_url).password


@pytest.mark.parametrize("where", ["missing database", "nothing listening"])
async def test_diagnose_database_reports_a_missing_database_without_printing_its_password(
    where: str,
    postgres_server: PostgresForTests,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if where == "missing database":
        url, password = password_url(postgres_server, f"no_such_database_{uuid.uuid4().hex[:8]}")
    else:
        password = "pw-" + uuid.uuid4().hex
        url = f"postgresql://someone:{password}@127.0.0.1:{free_port()}/app"
    monkeypatch.setattr(database_samples, "database_url", SecretURL(url))
    caplog.set_level("DEBUG")
    await diagnose_database()
    lines = diagnosed(capsys)
    assert lines == [
        "❌ Database connection failed",
        f"URL: {SecretURL(url)}",
        "Check: URL format, file permissions, network connectivity",
    ]
    if password:
        assert ":***@" in lines[1]
        assert password not in "\n".join(lines) and password not in caplog.text
    assert f"{SAMPLES_SHOWN}:{sample_line('success = db.connect()')}: connect() failed: " in caplog.text


async def test_diagnose_database_with_sync_calls_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(database_samples, "database_url", SecretURL(f"sqlite:///{tmp_path / 'x.db'}"))
    monkeypatch.setenv("IA_SYNC_DB_CALLS", "error")
    await diagnose_database()
    warning = blocking_warning("success = db.connect()", "db.connect()")
    assert diagnosed(capsys) == [f"❌ Database error: {warning} (IA_SYNC_DB_CALLS=error)"]


SCRIPT = """
import os, sys
from ia_modules.database import DatabaseManager
db = DatabaseManager(os.environ["GUIDE_URL"], project_migrations_dir=False)
print(db.connect())
db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
db.executemany("INSERT INTO notes (id, body) VALUES (?, ?)", [(1, "one"), (2, "two")])
print(db.fetch_all("SELECT id, body FROM notes ORDER BY id"))
print(db.fetch_one("SELECT body FROM notes WHERE id = ?", (2,)))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_plain_script_without_await_or_close_runs_and_exits(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'script.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "GUIDE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "[{'id': 1, 'body': 'one'}, {'id': 2, 'body': 'two'}]",
                                        "{'body': 'two'}"]  # fmt: skip
    assert not re.search(r"WARNING|never awaited", done.stderr), done.stderr
    async with DatabaseManager(url, project_migrations_dir=False) as db:
        assert await db.fetch_all("SELECT body FROM notes ORDER BY id") == [{"body": "one"}, {"body": "two"}]


async def test_postgresql_calls_without_await_reach_the_awaited_calls_database(postgres_url: str) -> None:
    db = DatabaseManager(postgres_url, project_migrations_dir=False)
    try:
        await db.execute("CREATE TABLE shared (id INT PRIMARY KEY, body TEXT)")
        assert db.execute("INSERT INTO shared VALUES (?, ?)", (1, "without await")) == 1
        await db.execute("INSERT INTO shared VALUES (?, ?)", (2, "awaited"))
        assert db.fetch_all("SELECT body FROM shared ORDER BY id") == [{"body": "without await"}, {"body": "awaited"}]
        assert await db.fetch_one("SELECT count(*) AS n FROM shared") == {"n": 2}
        assert db.connect() is True
        assert db.is_connected
    finally:
        await db.close()
    assert not db.is_connected
