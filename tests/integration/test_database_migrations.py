"""The migration runner on real SQLite files and a real PostgreSQL: every rule in docs/database.md's Migrations."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ia_modules.database import DatabaseError, DatabaseManager, MigrationError, MigrationSource
from ia_modules.database.manager import default_project_migrations_dir
from ia_modules.database.migrations import parse_directory

pytestmark = pytest.mark.integration

# The developer guide's "Custom Migration", exactly as the guide prints it (written for SQLite).
GUIDE_V003 = """-- migrations/V003__add_pipeline_results_table.sql

-- Create table for storing pipeline execution results
CREATE TABLE IF NOT EXISTS pipeline_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    input_data TEXT,  -- JSON
    output_data TEXT, -- JSON
    execution_time_ms INTEGER,
    status TEXT CHECK (status IN ('success', 'failed', 'partial')) DEFAULT 'success',
    error_message TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- Create indexes for performance
CREATE INDEX IF NOT EXISTS idx_pipeline_results_execution_id ON pipeline_results(execution_id);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_pipeline_name ON pipeline_results(pipeline_name);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_status ON pipeline_results(status);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_created_at ON pipeline_results(created_at);

-- Create trigger for updated_at
CREATE TRIGGER IF NOT EXISTS update_pipeline_results_updated_at
    AFTER UPDATE ON pipeline_results
    FOR EACH ROW
    BEGIN
        UPDATE pipeline_results SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
    END;
"""

# Its PostgreSQL equivalent: the trigger's function is plpgsql with a $$ body holding ';' and '?'.
GUIDE_V003_POSTGRESQL = """-- V003 for PostgreSQL: the guide's pipeline_results table, updated_at trigger in plpgsql.
CREATE TABLE IF NOT EXISTS pipeline_results (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    input_data TEXT,  -- JSON
    output_data TEXT, -- JSON
    execution_time_ms INTEGER,
    status TEXT CHECK (status IN ('success', 'failed', 'partial')) DEFAULT 'success',
    error_message TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_pipeline_results_execution_id ON pipeline_results(execution_id);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_pipeline_name ON pipeline_results(pipeline_name);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_status ON pipeline_results(status);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_created_at ON pipeline_results(created_at);

CREATE OR REPLACE FUNCTION pipeline_results_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- why? because updated_at must follow every change; statements end with ';'
    NEW.updated_at := CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$;

CREATE TRIGGER update_pipeline_results_updated_at
    BEFORE UPDATE ON pipeline_results
    FOR EACH ROW EXECUTE FUNCTION pipeline_results_touch();
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def manager(url: str, project: Path | None = None) -> DatabaseManager:
    return DatabaseManager(url, project_migrations_dir=project if project is not None else False)


async def recorded(db: DatabaseManager) -> list[tuple[str, int, str]]:
    rows = await db.fetch_all("SELECT scope, version, name FROM ia_schema_migrations ORDER BY scope, version")
    return [(row["scope"], int(row["version"]), row["name"]) for row in rows]


async def table_exists(db: DatabaseManager, name: str) -> bool:
    if db.dialect == "sqlite":
        row = await db.fetch_one("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    else:
        row = await db.fetch_one("SELECT count(*) AS n FROM pg_tables WHERE tablename = ?", (name,))
    return bool(row and row["n"])


async def test_files_apply_in_numeric_order_not_name_order(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "ordered"
    write(app, "V10__add_column.sql", "ALTER TABLE b ADD COLUMN extra TEXT;")
    write(app, "V2__create_b.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));")
    write(app, "V1__create_a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);")
    async with manager(db_url) as db:
        report = await db.migrate([app])
        assert [m.version for m in report.applied] == [1, 2, 10]
        await db.execute("INSERT INTO a (id) VALUES (?)", (1,))
        await db.execute("INSERT INTO b (id, a_id, extra) VALUES (?, ?, ?)", (1, 1, "x"))


async def test_project_and_app_scopes_keep_equal_versions_apart(db_url: str, tmp_path: Path) -> None:
    project = tmp_path / "project_migrations"
    write(project, "V001__project_table.sql", "CREATE TABLE from_project (id INTEGER);")
    app = tmp_path / "my_app"
    write(app, "V001__app_table.sql", "CREATE TABLE from_app (id INTEGER);")
    other = tmp_path / "elsewhere"
    write(other, "V001__other_table.sql", "CREATE TABLE from_other (id INTEGER);")
    async with manager(db_url, project) as db:
        assert await db.initialize(apply_schema=True, app_migration_paths=[str(app), MigrationSource(other, "extra")])
        assert await recorded(db) == [
            ("app:my_app", 1, "V001__app_table.sql"),
            ("extra", 1, "V001__other_table.sql"),
            ("project", 1, "V001__project_table.sql"),
        ]
        assert [m.scope for m in db.last_migration_report.applied] == ["project", "app:my_app", "extra"]  # type: ignore[union-attr]


async def test_second_run_applies_nothing(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, "V1__t.sql", "CREATE TABLE t (id INTEGER);")
    write(app, "V2__seed.sql", "INSERT INTO t (id) VALUES (1);")
    async with manager(db_url) as db:
        first = await db.migrate([app])
        second = await db.migrate([app])
        assert (len(first.applied), first.already_applied) == (2, 0)
        assert (second.applied, second.already_applied) == ([], 2)
        assert await db.fetch_all("SELECT id FROM t") == [{"id": 1}]
    async with manager(db_url) as again:  # a new process sees the same
        assert (await again.migrate([app])).applied == []


async def test_changed_applied_file_is_an_error_naming_it_and_nothing_else_applies(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    edited = write(app, "V1__t.sql", "CREATE TABLE t (id INTEGER);")
    async with manager(db_url) as db:
        await db.migrate([app])
        write(app, "V1__t.sql", "CREATE TABLE t (id INTEGER, added TEXT);")
        write(app, "V2__u.sql", "CREATE TABLE u (id INTEGER);")
        with pytest.raises(MigrationError, match="was changed after it was applied") as info:
            await db.migrate([app])
        assert str(edited) in str(info.value)
        assert not await table_exists(db, "u")
        # Line endings alone are not a change.
        write(app, "V1__t.sql", "CREATE TABLE t (id INTEGER);".replace("\n", "\r\n"))
        edited.write_bytes(b"CREATE TABLE t (id INTEGER);")
        (app / "V2__u.sql").unlink()
        assert (await db.migrate([app])).applied == []


async def test_failing_file_rolls_back_entirely_and_is_named(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, "V1__ok.sql", "CREATE TABLE kept (id INTEGER);")
    broken = write(
        app,
        "V2__broken.sql",
        "CREATE TABLE half (id INTEGER);\nINSERT INTO half (id) VALUES (1);\nINSERT INTO no_such_table VALUES (2);\n",
    )
    write(app, "V3__later.sql", "CREATE TABLE later (id INTEGER);")
    async with manager(db_url) as db:
        with pytest.raises(MigrationError, match="rolled back") as info:
            await db.migrate([app])
        message = str(info.value)
        assert str(broken) in message and "no_such_table" in message
        if db.dialect == "postgresql":
            assert "at line 3" in message
        assert not await table_exists(db, "half")
        assert not await table_exists(db, "later")
        assert await table_exists(db, "kept")
        assert await recorded(db) == [("app:app", 1, "V1__ok.sql")]
        write(app, "V2__broken.sql", "CREATE TABLE half (id INTEGER);\nINSERT INTO half (id) VALUES (1);\n")
        report = await db.migrate([app])
        assert [m.version for m in report.applied] == [2, 3]


async def test_concurrent_runners_apply_each_file_once(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    slow = "SELECT pg_sleep(0.3);" if db_url.startswith("postgresql") else ""
    write(app, "V1__create.sql", f"CREATE TABLE runs (id INTEGER PRIMARY KEY);\n{slow}")
    for version in range(2, 7):
        write(app, f"V{version}__row.sql", f"INSERT INTO runs (id) VALUES ({version});")
    runners = [manager(db_url) for _ in range(3)]
    try:
        reports = await asyncio.gather(*(runner.migrate([app]) for runner in runners))
        applied = sorted(m.version for report in reports for m in report.applied)
        assert applied == [1, 2, 3, 4, 5, 6]
        assert await runners[0].fetch_all("SELECT id FROM runs ORDER BY id") == [{"id": i} for i in range(2, 7)]
        assert len(await recorded(runners[0])) == 6
    finally:
        for runner in runners:
            await runner.close()


async def test_guide_v003_as_written_on_sqlite_and_plpgsql_variant_on_postgres(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "migrations_guide"
    write(app, "V003__add_pipeline_results_table.sql", GUIDE_V003)
    write(app, "V003__add_pipeline_results_table.postgresql.sql", GUIDE_V003_POSTGRESQL)
    async with manager(db_url) as db:
        report = await db.migrate([app])
        expected = "V003__add_pipeline_results_table" + (".postgresql" if db.dialect == "postgresql" else "") + ".sql"
        assert [m.name for m in report.applied] == [expected]
        await db.execute(
            "INSERT INTO pipeline_results (execution_id, pipeline_name, status, updated_at) VALUES (?, ?, ?, ?)",
            ("run-1", "guide", "success", "2000-01-01 00:00:00"),
        )
        await db.execute("UPDATE pipeline_results SET status = ? WHERE execution_id = ?", ("partial", "run-1"))
        row = await db.fetch_one("SELECT status, updated_at FROM pipeline_results WHERE execution_id = ?", ("run-1",))
        assert row is not None and row["status"] == "partial"
        assert str(row["updated_at"]) > "2001"  # the trigger moved it to now
        with pytest.raises(DatabaseError, match=r"(?i)check"):
            await db.execute("UPDATE pipeline_results SET status = ? WHERE execution_id = ?", ("bogus", "run-1"))


async def test_a_literal_question_mark_in_a_file_is_kept(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, "V1__q.sql", "CREATE TABLE q (s TEXT);\nINSERT INTO q (s) VALUES ('who? what?');")
    async with manager(db_url) as db:
        await db.migrate([app])
        assert await db.fetch_all("SELECT s FROM q") == [{"s": "who? what?"}]


async def test_project_schema_applies_on_both_dialects(db_url: str) -> None:
    async with DatabaseManager(db_url) as db:
        assert db.project_migrations_dir == default_project_migrations_dir()
        assert await db.initialize()
        assert (await recorded(db))[0][:2] == ("project", 1)
        run_id = "6f1c3a52-8c1e-5d7b-9a8e-0c6b8f6a1d2e"
        await db.execute(
            "INSERT INTO pipeline_runs (run_id, pipeline, pipeline_version, status, input, output, trace, error,"
            " source_topic, source_partition, source_offset, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                "text_quality",
                "2.0.0",
                "success",
                '{"text": "hi"}',
                '{"final": 1}',
                "[]",
                None,
                "ia.t.input",
                0,
                42,
                1.5,
            ),
        )
        row = await db.fetch_one(
            "SELECT pipeline, status, source_offset FROM pipeline_runs WHERE run_id = ?", (run_id,)
        )
        assert row == {"pipeline": "text_quality", "status": "success", "source_offset": 42}
        await db.execute(
            "INSERT INTO dead_letters (run_id, pipeline, step, attempts, error_type, error_message)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, "text_quality", "scorer", 3, "ValueError", "bad input"),
        )
        letter = await db.fetch_one("SELECT id, replayed FROM dead_letters WHERE run_id = ?", (run_id,))
        assert letter is not None and not letter["replayed"]
        await db.execute("UPDATE dead_letters SET replayed_at = CURRENT_TIMESTAMP WHERE id = ?", (letter["id"],))
        assert (await db.fetch_one("SELECT replayed FROM dead_letters WHERE id = ?", (letter["id"],)) or {})["replayed"]
        with pytest.raises(DatabaseError, match=r"(?i)check"):
            await db.execute(
                "INSERT INTO pipeline_runs (run_id, pipeline, status) VALUES (?, ?, ?)",
                ("6f1c3a52-8c1e-5d7b-9a8e-0c6b8f6a1d2f", "p", "weird"),
            )
        assert (await db.migrate()).applied == []


async def test_guide_app_path_that_is_the_project_directory_is_not_applied_twice(db_url: str) -> None:
    async with DatabaseManager(db_url) as db:
        report = await db.migrate([default_project_migrations_dir(), "./migrations"])
        assert [scope for scope, _ in report.sources] == ["project", "app:migrations"] or len(report.sources) == 1
        assert {m.scope for m in report.applied} == {"project"}
        assert len(report.applied) == len({m.version for m in report.applied}), "each project file once"


async def test_missing_app_directory_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with manager("sqlite:///:memory:") as db:
        report = await db.migrate([tmp_path / "custom_migrations"])
        assert report.applied == []
    assert "custom_migrations does not exist" in caplog.text


async def test_apply_schema_false_only_connects(tmp_path: Path) -> None:
    async with DatabaseManager(f"sqlite:///{tmp_path / 'x.db'}") as db:
        assert await db.initialize(apply_schema=False) is True
        assert not await table_exists(db, "ia_schema_migrations")


async def test_badly_named_sql_file_is_an_error(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, "V1__fine.sql", "SELECT 1;")
    bad = write(app, "V2_single_underscore.sql", "SELECT 2;")
    write(app, "README.md", "not SQL, ignored")
    async with manager("sqlite:///:memory:") as db:
        with pytest.raises(MigrationError, match="not a migration file name") as info:
            await db.migrate([app])
        assert str(bad) in str(info.value)


async def test_two_files_with_one_version_is_an_error_naming_both(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app, "V1__first.sql", "SELECT 1;")
    write(app, "V01__second.sql", "SELECT 1;")
    async with manager("sqlite:///:memory:") as db:
        with pytest.raises(MigrationError, match=r"V01__second\.sql.*V1__first\.sql"):
            await db.migrate([app])


async def test_two_app_paths_with_the_same_directory_name_need_a_scope(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "migrations", tmp_path / "b" / "migrations"
    write(first, "V1__x.sql", "SELECT 1;")
    write(second, "V1__y.sql", "SELECT 1;")
    async with manager("sqlite:///:memory:") as db:
        with pytest.raises(MigrationError, match="same scope 'app:migrations'"):
            await db.migrate([first, second])
        report = await db.migrate([first, MigrationSource(second, scope="app:b")])
        assert [m.scope for m in report.applied] == ["app:migrations", "app:b"]


def test_dialect_variants_replace_the_plain_file_only_on_their_database() -> None:
    entries = [
        (Path("V1__base.sql"), b"plain"),
        (Path("V2__data.sql"), b"plain 2"),
        (Path("V2__data.sqlite.sql"), b"sqlite 2"),
        (Path("V3__pg_only.postgresql.sql"), b"pg 3"),
        (Path("notes.txt"), b"ignored"),
    ]
    on_sqlite = parse_directory("s", entries, "sqlite")
    on_postgres = parse_directory("s", entries, "postgresql")
    assert [(m.version, m.sql) for m in on_sqlite] == [(1, "plain"), (2, "sqlite 2")]
    assert [(m.version, m.sql) for m in on_postgres] == [(1, "plain"), (2, "plain 2"), (3, "pg 3")]
    with pytest.raises(MigrationError, match="not UTF-8"):
        parse_directory("s", [(Path("V1__x.sql"), b"\xff\xfe bad")], "sqlite")


def test_no_sql_is_built_from_data_in_the_runner() -> None:
    """The runner's statements are constants with ? parameters (scope, names and checksums are never spliced)."""
    import inspect

    from ia_modules.database import migrations

    source = inspect.getsource(migrations)
    assert 'f"INSERT' not in source and 'f"SELECT' not in source and ".format(" not in source


async def test_logs_name_what_was_applied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ia_modules.database.migrations")
    app = tmp_path / "app"
    write(app, "V7__seven.sql", "CREATE TABLE seven (id INTEGER);")
    async with manager("sqlite:///:memory:") as db:
        await db.migrate([app])
    assert "V7__seven.sql" in caplog.text and "version 7" in caplog.text
