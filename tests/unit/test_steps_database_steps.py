"""Unit tests of steps/database_steps.py: DatabaseWriterStep and PersistentAnalysisStep.

The database is an in-memory SQLite connection behind the DatabaseManager's call shape (sync and async).

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any
from unittest.mock import Mock

import pytest

from steps import text_analysis as ta
from steps.database_steps import DatabaseWriterStep, PersistentAnalysisStep
from tests.unit.step_helpers import GOOD_TEXT, services


class SqliteDatabase:
    """An in-memory SQLite database with the DatabaseManager's call shape (``?`` placeholders, rows as dicts)."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:")
        self.connection.row_factory = sqlite3.Row

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.connection.execute(sql, params)
        self.connection.commit()

    def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(sql, params)]


class AsyncSqliteDatabase(SqliteDatabase):
    """The same with coroutine methods, as the async DatabaseManager has; records that calls were awaited."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = 0

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:  # type: ignore[override]
        self.awaited += 1
        super().execute(sql, params)

    async def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:  # type: ignore[override]
        self.awaited += 1
        return super().fetch_all(sql, params)


PROCESSED_DDL = 'CREATE TABLE "processed" (content TEXT, metadata TEXT, processed_at TEXT)'
ANALYSIS_DDL = (
    "CREATE TABLE analysis_results (execution_id TEXT, step_name TEXT, input_summary TEXT, analysis_data TEXT, "
    "confidence_score REAL, created_at TEXT)"
)


async def test_database_writer_sends_quoted_sql_and_parameters() -> None:
    db = Mock()
    step = DatabaseWriterStep("writer", {"table_name": "analytics.processed"})
    step.set_services(services(database=db))
    result = await step.work({"transformed_text": "HELLO", "id": 7})

    assert result == {
        "database_write": "success",
        "table": "analytics.processed",
        "record_count": 1,
        "status": "success",
    }
    sql, params = db.execute.call_args.args
    assert sql == 'INSERT INTO "analytics"."processed" (content, metadata, processed_at) VALUES (?, ?, ?)'
    assert params[0] == "HELLO"
    assert json.loads(params[1]) == {"id": 7, "transformed_text": "HELLO"}
    assert datetime.fromisoformat(params[2]).utcoffset() is not None  # an ISO UTC timestamp, for the DB only


async def test_database_writer_inserts_into_a_real_table_awaiting_async_db() -> None:
    db = AsyncSqliteDatabase()
    await db.execute(PROCESSED_DDL)
    step = DatabaseWriterStep("writer", {"table_name": "processed"})
    step.set_services(services(database=db))
    await step.work({"transformed_text": "one"})
    await step.work({"transformed_text": "two"})
    rows = await db.fetch_all("SELECT content, metadata FROM processed ORDER BY rowid")
    assert [row["content"] for row in rows] == ["one", "two"]
    assert json.loads(rows[0]["metadata"]) == {"transformed_text": "one"}


@pytest.mark.parametrize(
    "table", ["x; DROP TABLE y", "1table", "a.b.c", 'qu"ote', "", "t" * 64, "spaced name", ["list"]]
)
def test_database_steps_reject_bad_table_names(table: Any) -> None:
    with pytest.raises(ValueError, match=r"step 'writer': invalid table_name") as info:
        DatabaseWriterStep("writer", {"table_name": table})
    assert repr(table) in str(info.value)
    with pytest.raises(ValueError, match=r"step 'writer': invalid table_name"):
        PersistentAnalysisStep("writer", {"table_name": table})


async def test_database_writer_reports_or_raises_db_errors() -> None:
    db = SqliteDatabase()  # no table: the insert fails
    step = DatabaseWriterStep("writer", {"table_name": "missing_table"})
    step.set_services(services(database=db))
    result = await step.work({"transformed_text": "x"})
    assert result["status"] == "failed"
    assert "no such table: missing_table" in result["error"]

    strict = DatabaseWriterStep("writer", {"table_name": "missing_table", "raise_on_error": True})
    strict.set_services(services(database=db))
    with pytest.raises(sqlite3.OperationalError):
        await strict.work({"transformed_text": "x"})


async def test_database_writer_without_db_or_text() -> None:
    step = DatabaseWriterStep("writer")
    assert await step.work({"transformed_text": "x"}) == {"error": "Database service not available", "status": "failed"}
    step.set_services(services(database=Mock()))
    with pytest.raises(ValueError, match="'transformed_text' is missing"):
        await step.work({"text": "x"})


async def test_persistent_analysis_stores_and_compares_with_other_runs(run_id: Any) -> None:
    db = AsyncSqliteDatabase()
    await db.execute(ANALYSIS_DDL)
    step = PersistentAnalysisStep("analysis")
    step.set_services(services(database=db))

    run_id("run-1")
    first = await step.work({"text": GOOD_TEXT})
    assert first["status"] == "success" and first["database_stored"] is True
    assert first["historical_comparison"] == {"comparison": "no_history"}
    analysis = first["analysis_result"]
    assert analysis["kind"] == "text"
    assert analysis["score"] == ta.quality_score(ta.quality_components(GOOD_TEXT))
    assert analysis["confidence"] == round(43 / 53, 4)  # 43 words

    run_id("run-2")
    second = await step.work({"text": "WORST. SERVICE. EVER!!!"})
    comparison = second["historical_comparison"]
    assert comparison["historical_average"] == analysis["score"]
    assert comparison["history_size"] == 1
    assert comparison["performance"] == "below_average"
    assert comparison["improvement"] == round(second["analysis_result"]["score"] - analysis["score"], 4)

    rows = await db.fetch_all("SELECT execution_id, step_name, confidence_score FROM analysis_results")
    assert [(row["execution_id"], row["step_name"]) for row in rows] == [("run-1", "analysis"), ("run-2", "analysis")]
    assert db.awaited >= 4


async def test_persistent_analysis_of_numbers() -> None:
    db = SqliteDatabase()
    db.execute(ANALYSIS_DDL)
    step = PersistentAnalysisStep("analysis")
    step.set_services(services(database=db))
    result = await step.work({"values": [2, 4, 4, 4, 5, 5, 7, 9]})
    analysis = result["analysis_result"]
    assert analysis["metrics"] == {"count": 8, "mean": 5.0, "stdev": 2.0, "min": 2.0, "max": 9.0, "median": 4.5}
    assert analysis["score"] == 0.6  # 1 - 2/5
    assert analysis["confidence"] == round(8 / 18, 4)


async def test_persistent_analysis_errors() -> None:
    step = PersistentAnalysisStep("analysis")
    with pytest.raises(RuntimeError, match="database service is required"):
        await step.work({"text": GOOD_TEXT})
    step.set_services(services(database=SqliteDatabase()))  # no table
    result = await step.work({"text": GOOD_TEXT})
    assert result["status"] == "partial_success" and result["database_stored"] is False
    assert "no such table" in result["database_error"]
    with pytest.raises(ValueError, match="nothing to analyse"):
        await step.work({"other": 1})
    with pytest.raises(ValueError, match="only finite numbers"):
        await step.work({"values": [1, "two"]})
