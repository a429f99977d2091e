"""DatabaseManager calls written as the guide writes them, without ``await``, on a real SQLite database.

Without await, ``connect``, ``execute``, ``executemany``, ``fetch_one``, ``fetch_all`` and ``close`` finish before
they return and give the guide's values, on the same database as the awaited calls; on a running event loop they
block it, and say so once per call site (``IA_SYNC_DB_CALLS=error``: refuse). Awaited, and wherever the value is
awaited later, they stay coroutines.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ia_modules.database import DatabaseError, DatabaseManager
from ia_modules.database.call_sites import forget_sites
from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.services import ServiceRegistry
from steps._common import maybe_await
from tests.guide_samples.database_samples import DatabaseWriterStep

THIS_FILE = Path(__file__)
SHOWN = str(THIS_FILE.relative_to(Path.cwd())) if THIS_FILE.is_relative_to(Path.cwd()) else str(THIS_FILE)


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    lines = THIS_FILE.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.endswith(f"# {marker}"))


@pytest.fixture(autouse=True)
def fresh_sites(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test classifies its call sites afresh (warnings are once per site and process), with the default
    setting."""
    monkeypatch.delenv("IA_SYNC_DB_CALLS", raising=False)
    forget_sites()
    yield
    forget_sites()


@pytest.fixture
async def db() -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager("sqlite:///:memory:", project_migrations_dir=False)
    await manager.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    yield manager
    await manager.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ia_modules.database" and r.levelno == logging.WARNING]


# In a plain script: no event loop at all.


def test_a_script_gets_the_guide_s_values_and_the_awaited_calls_see_the_same_memory_database() -> None:
    db = DatabaseManager("sqlite:///:memory:", project_migrations_dir=False)
    assert db.connect() is True
    assert db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)") == -1
    assert db.execute("INSERT INTO t (v) VALUES (?)", ("one",)) == 1
    assert db.executemany("INSERT INTO t (v) VALUES (?)", (("two",), ("three",))) is None
    assert db.fetch_one("SELECT v FROM t WHERE id = ?", (2,)) == {"v": "two"}
    assert db.fetch_one("SELECT v FROM t WHERE id = ?", (9,)) is None
    assert db.fetch_all("SELECT id, v FROM t ORDER BY id") == [
        {"id": 1, "v": "one"},
        {"id": 2, "v": "two"},
        {"id": 3, "v": "three"},
    ]

    async def awaited() -> list[dict[str, Any]]:
        await db.execute("INSERT INTO t (v) VALUES ('four')")
        return await db.fetch_all("SELECT v FROM t ORDER BY id")

    assert [row["v"] for row in asyncio.run(awaited())] == ["one", "two", "three", "four"]
    assert db.fetch_one("SELECT count(*) AS n FROM t") == {"n": 4}, "after the loop closed, still the same database"
    assert db.close() is None
    assert not db.is_connected


def test_connect_without_await_is_false_when_the_database_cannot_be_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    db = DatabaseManager(f"sqlite:///{tmp_path / 'a_file' / 'app.db'}", project_migrations_dir=False)
    with caplog.at_level(logging.WARNING, logger="ia_modules.database"):
        assert db.connect() is False
    assert any("connect() failed" in message for message in warnings_of(caplog))
    good = DatabaseManager(f"sqlite:///{tmp_path / 'app.db'}", project_migrations_dir=False)
    assert good.connect() is True
    good.close()


def test_a_failing_statement_raises_the_database_error() -> None:
    db = DatabaseManager("sqlite:///:memory:", project_migrations_dir=False)
    with pytest.raises(DatabaseError, match="no such table: missing"):
        db.execute("INSERT INTO missing VALUES (1)")
    db.close()


# On a running event loop (a step's run): the call blocks it, and the first one of each site says so.


async def test_on_a_running_loop_the_call_completes_and_warns_once_per_call_site(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ia_modules.database")
    for value in ("a", "b", "c"):
        assert db.execute("INSERT INTO t (v) VALUES (?)", (value,)) == 1  # site-insert
    rows = db.fetch_all("SELECT v FROM t ORDER BY id")  # site-fetch
    assert rows == [{"v": "a"}, {"v": "b"}, {"v": "c"}]
    assert await db.fetch_all("SELECT v FROM t ORDER BY id") == rows
    assert warnings_of(caplog) == [
        f"{SHOWN}:{line_of('site-insert')}: db.execute(...) called without await blocks the event loop; "
        "write `await db.execute(...)`",
        f"{SHOWN}:{line_of('site-fetch')}: db.fetch_all(...) called without await blocks the event loop; "
        "write `await db.fetch_all(...)`",
    ]


async def test_connect_and_close_without_await_on_a_running_loop() -> None:
    db = DatabaseManager("sqlite:///:memory:", project_migrations_dir=False)
    connected = db.connect()
    assert connected is True
    db.execute("CREATE TABLE t (v TEXT)")
    assert await db.fetch_all("SELECT v FROM t") == []
    assert db.close() is None
    assert not db.is_connected


class GuardedWriterStep(Step):
    """Writes as the guide writes, through ``self.get_db()``; a failure propagates (a step failure)."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        db = self.get_db()
        db.execute("INSERT INTO t (v) VALUES (?)", (data["text"],))  # site-step
        return {"written": db.fetch_one("SELECT count(*) AS n FROM t")["n"]}


def pipeline_of(step_class: str, module: str = __name__) -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "writer",
            "steps": [{"id": "writer", "step_class": step_class, "module": module}],
            "flow": {"start_at": "writer", "paths": []},
        }
    )


def services_with(db: DatabaseManager) -> ServiceRegistry:
    services = ServiceRegistry()
    services.register("database", db)
    return services


async def test_a_step_s_calls_without_await_write_before_the_run_ends(db: DatabaseManager) -> None:
    pipeline = pipeline_of("GuardedWriterStep")
    first = await pipeline.run({"text": "one"}, services_with(db))
    second = await pipeline.run({"text": "two"}, services_with(db))
    assert (first.status, first["writer"], second["writer"]) == ("success", {"written": 1}, {"written": 2})
    assert await db.fetch_all("SELECT v FROM t ORDER BY id") == [{"v": "one"}, {"v": "two"}]


async def test_the_guide_s_writer_step_writes_its_row(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE processed_data (content TEXT, metadata TEXT, processed_at TIMESTAMP)")
    result = await pipeline_of("DatabaseWriterStep", "tests.guide_samples.database_samples").run(
        {"transformed_text": "HELLO"}, services_with(db)
    )
    assert result["writer"] == {"database_write": "success", "table": "processed_data", "record_count": 1,
                                "status": "success"}  # fmt: skip
    rows = await db.fetch_all("SELECT content, metadata, processed_at FROM processed_data")
    assert [(row["content"], row["metadata"]) for row in rows] == [("HELLO", str({"transformed_text": "HELLO"}))]
    assert str(rows[0]["processed_at"]).startswith("20")


# IA_SYNC_DB_CALLS=error refuses such calls.


async def test_the_error_setting_fails_the_step_with_the_await_form(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IA_SYNC_DB_CALLS", "error")
    result = await pipeline_of("GuardedWriterStep").run({"text": "one"}, services_with(db))
    assert result.status == "failed"
    assert result.error is not None and result.error["step"] == "writer"
    assert result.error["type"] == "UnawaitedCallError"
    assert result.error["message"] == (
        f"{SHOWN}:{line_of('site-step')}: db.execute(...) called without await blocks the event loop; "
        "write `await db.execute(...)` (IA_SYNC_DB_CALLS=error)"
    )
    assert await db.fetch_all("SELECT v FROM t") == [], "nothing was written"


async def test_the_error_setting_and_the_guide_s_writer_step_report_the_write_failed(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute("CREATE TABLE processed_data (content TEXT, metadata TEXT, processed_at TIMESTAMP)")
    monkeypatch.setenv("IA_SYNC_DB_CALLS", "ERROR")
    step = DatabaseWriterStep("writer", {})
    step.set_services(services_with(db))
    output = await step.run({"transformed_text": "HELLO"})
    assert output["status"] == "failed"
    assert "write `await db.execute(...)`" in output["error"]
    assert await db.fetch_all("SELECT * FROM processed_data") == []


async def test_an_invalid_setting_is_named(db: DatabaseManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_SYNC_DB_CALLS", "sometimes")
    with pytest.raises(DatabaseError, match=r"IA_SYNC_DB_CALLS='sometimes' is not a valid setting: expected warn or"):
        db.execute("INSERT INTO t (v) VALUES ('x')")


# Where a call without await cannot run.


async def test_inside_its_own_transaction_a_call_without_await_is_refused(db: DatabaseManager) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (v) VALUES ('in')")
        with pytest.raises(DatabaseError, match=r"inside `async with db.transaction\(\) as tx`.*await tx.execute"):
            db.execute("INSERT INTO t (v) VALUES ('out')")
    assert await db.fetch_all("SELECT v FROM t") == [{"v": "in"}]


class Rollback(Exception):
    pass


async def test_a_call_without_await_never_slips_into_another_task_s_transaction(db: DatabaseManager) -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (v) VALUES ('rolled back')")
            inside.set()
            await release.wait()
            raise Rollback

    task = asyncio.create_task(holder())
    await inside.wait()
    with pytest.raises(DatabaseError, match="another task has a transaction open"):
        db.execute("INSERT INTO t (v) VALUES ('outside')")
    release.set()
    with pytest.raises(Rollback):
        await task
    assert await db.fetch_all("SELECT v FROM t") == []


async def test_from_a_thread_the_call_runs_on_the_loop_that_uses_the_database(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ia_modules.database")

    def in_a_thread() -> list[dict[str, Any]]:
        db.execute("INSERT INTO t (v) VALUES ('thread')")
        return db.fetch_all("SELECT v FROM t")

    assert await asyncio.to_thread(in_a_thread) == [{"v": "thread"}]
    assert warnings_of(caplog) == [], "no event loop was blocked"


# Awaited, or handed on to be awaited: the coroutine, as before, and no warning.


def rows_of(db: DatabaseManager) -> Any:
    return db.fetch_all("SELECT v FROM t ORDER BY id")  # site-forwarded


async def test_awaited_and_handed_on_calls_stay_coroutines(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ia_modules.database")
    pending = db.execute("INSERT INTO t (v) VALUES ('later')")
    assert inspect.iscoroutine(pending)
    assert await pending == 1
    tasks = []
    tasks.append(db.execute("INSERT INTO t (v) VALUES ('gathered')"))
    await asyncio.gather(*tasks)
    one, two = await asyncio.gather(db.fetch_one("SELECT 1 AS n"), db.fetch_one("SELECT 2 AS n"))
    assert (one, two) == ({"n": 1}, {"n": 2})
    await asyncio.gather(*[db.execute("INSERT INTO t (v) VALUES (?)", (f"list {i}",)) for i in range(2)])
    await asyncio.gather(*(db.execute("INSERT INTO t (v) VALUES (?)", (f"gen {i}",)) for i in range(2)))
    assert await maybe_await(db.execute("INSERT INTO t (v) VALUES ('maybe')")) == 1
    task = asyncio.create_task(db.fetch_one("SELECT count(*) AS n FROM t"))
    assert await task == {"n": 7}
    assert await asyncio.wait_for(db.fetch_one("SELECT count(*) AS n FROM t"), 5) == {"n": 7}
    count = lambda: db.fetch_one("SELECT count(*) AS n FROM t")  # noqa: E731
    assert await count() == {"n": 7}
    assert [row["v"] for row in await rows_of(db)][:2] == ["later", "gathered"]
    assert warnings_of(caplog) == []
    rows = rows_of(db)  # not awaited: the value a plain function returns is run where its caller wants a result
    assert len(rows) == 7
    assert warnings_of(caplog) == [
        f"{SHOWN}:{line_of('site-forwarded')}: db.fetch_all(...) called without await blocks the event loop; "
        "write `await db.fetch_all(...)`"
    ]
