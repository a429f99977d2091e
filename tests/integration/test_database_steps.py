"""The guide's DatabaseWriterStep and PersistentAnalysisStep writing real rows through the real DatabaseManager,
on SQLite and PostgreSQL, alone and inside a pipeline run; their tables come from an app migration directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ia_modules.database import DatabaseManager
from ia_modules.pipeline.runner import run_pipeline
from ia_modules.pipeline.services import ServiceRegistry
from steps.database_steps import DatabaseWriterStep, PersistentAnalysisStep

pytestmark = pytest.mark.integration

TABLES_POSTGRESQL = """
CREATE TABLE processed_data (
    id BIGSERIAL PRIMARY KEY,
    content TEXT NOT NULL,
    metadata JSONB NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE analysis_results (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    input_summary TEXT,
    analysis_data JSONB NOT NULL,
    confidence_score DOUBLE PRECISION,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX analysis_results_step_created_idx ON analysis_results (step_name, created_at DESC);
"""

TABLES_SQLITE = """
CREATE TABLE processed_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL
);
CREATE TABLE analysis_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    input_summary TEXT,
    analysis_data TEXT NOT NULL,
    confidence_score REAL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX analysis_results_step_created_idx ON analysis_results (step_name, created_at DESC);
"""


@pytest.fixture
async def app_db(db_url: str, tmp_path: Path) -> Any:
    """A manager on a fresh database with the steps' tables applied from an app migration directory."""
    migrations = tmp_path / "app_migrations"
    migrations.mkdir()
    (migrations / "V001__step_tables.sql").write_text(TABLES_POSTGRESQL)
    (migrations / "V001__step_tables.sqlite.sql").write_text(TABLES_SQLITE)
    db = DatabaseManager(db_url, project_migrations_dir=False)
    assert await db.initialize(apply_schema=True, app_migration_paths=[str(migrations)])
    try:
        yield db
    finally:
        await db.close()


def services_with(db: DatabaseManager) -> ServiceRegistry:
    services = ServiceRegistry()
    services.register("database", db)
    return services


async def test_database_writer_step_inserts_a_row(app_db: DatabaseManager) -> None:
    step = DatabaseWriterStep("db_writer", {"table_name": "processed_data"})
    step.set_services(services_with(app_db))
    result = await step.run({"transformed_text": "HELLO WORLD", "customer_id": 7})
    assert result == {"database_write": "success", "table": "processed_data", "record_count": 1, "status": "success"}
    rows = await app_db.fetch_all("SELECT content, metadata, processed_at FROM processed_data")
    assert len(rows) == 1
    assert rows[0]["content"] == "HELLO WORLD"
    assert json.loads(rows[0]["metadata"]) == {"customer_id": 7, "transformed_text": "HELLO WORLD"}
    assert str(rows[0]["processed_at"]).startswith("20")


async def test_database_writer_reports_a_missing_table_as_the_guide_does(app_db: DatabaseManager) -> None:
    step = DatabaseWriterStep("db_writer", {"table_name": "no_such_table"})
    step.set_services(services_with(app_db))
    result = await step.run({"transformed_text": "x"})
    assert result["status"] == "failed" and "no_such_table" in result["error"]


def test_table_names_from_config_are_refused_unless_identifiers() -> None:
    with pytest.raises(ValueError, match="invalid table_name"):
        DatabaseWriterStep("db_writer", {"table_name": "x; DROP TABLE y"})
    with pytest.raises(ValueError, match="invalid table_name"):
        PersistentAnalysisStep("analysis", {"table_name": 'a" OR 1=1 --'})


async def test_persistent_analysis_stores_and_compares_with_history(app_db: DatabaseManager) -> None:
    services = services_with(app_db)
    pipeline = {
        "name": "analysis",
        "steps": [{"id": "analysis", "step_class": "PersistentAnalysisStep", "module": "steps.database_steps"}],
        "flow": {"start_at": "analysis", "paths": []},
    }
    first = await run_pipeline(pipeline, {"values": [10, 11, 9, 10]}, services)
    second = await run_pipeline(pipeline, {"values": [10, 30, 2, 50]}, services)
    assert first.status == "success" and second.status == "success"
    assert first["analysis"]["database_stored"] is True
    assert first["analysis"]["historical_comparison"] == {"comparison": "no_history"}
    comparison = second["analysis"]["historical_comparison"]
    assert comparison["history_size"] == 1
    assert comparison["historical_average"] == first["analysis"]["analysis_result"]["score"]
    rows = await app_db.fetch_all("SELECT execution_id, step_name, confidence_score FROM analysis_results ORDER BY id")
    assert [row["execution_id"] for row in rows] == [first.run_id, second.run_id]
    assert {row["step_name"] for row in rows} == {"analysis"}


async def test_transform_then_write_in_a_pipeline_run(app_db: DatabaseManager) -> None:
    pipeline = {
        "name": "write",
        "steps": [
            {"id": "transform", "step_class": "DataTransformStep", "module": "steps.transform"},
            {
                "id": "db_writer",
                "step_class": "DatabaseWriterStep",
                "module": "steps.database_steps",
                "config": {"table_name": "processed_data", "raise_on_error": True},
            },
        ],
        "flow": {"start_at": "transform", "paths": [{"from": "transform", "to": "db_writer"}]},
    }
    services = services_with(app_db)
    results = [await run_pipeline(pipeline, {"text": text}, services) for text in ("one", "two", "three")]
    assert [result.status for result in results] == ["success"] * 3
    rows = await app_db.fetch_all("SELECT content FROM processed_data ORDER BY id")
    assert [row["content"] for row in rows] == ["ONE", "TWO", "THREE"]
