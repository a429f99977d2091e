"""The developer guide's own tests ("Testing Your Code"), copied as written: they must pass unchanged.

Only the imports of its two test files are merged at the top; the tests and the fixture are verbatim. The last
tests run the guide's "Custom Data Processing Pipeline" as shipped in pipelines/custom_processing.json.
"""

import json
import tempfile
from pathlib import Path
from unittest.mock import AsyncMock, Mock

import pytest

from ia_modules.pipeline.runner import run_pipeline_from_json
from ia_modules.pipeline.services import ServiceRegistry
from steps.my_custom_steps import DatabaseWriterStep, DataTransformStep

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


# --- tests/test_my_steps.py, as in the guide ---------------------------------------------------------------


@pytest.fixture
def mock_service_registry():
    """Provide mock service registry"""
    services = ServiceRegistry()

    # Mock database
    mock_db = Mock()
    mock_db.execute = Mock()
    services.register("database", mock_db)

    # Mock HTTP client
    mock_http = AsyncMock()
    services.register("http", mock_http)

    return services


@pytest.mark.asyncio
async def test_data_transform_step():
    """Test data transformation step"""
    step = DataTransformStep("transform_test", {"transform_type": "uppercase", "field_name": "text"})

    input_data = {"text": "hello world"}
    result = await step.work(input_data)

    assert result["transformed_text"] == "HELLO WORLD"
    assert result["original_text"] == "hello world"
    assert result["status"] == "success"


@pytest.mark.asyncio
async def test_database_writer_step(mock_service_registry):
    """Test database writer step"""
    step = DatabaseWriterStep("db_writer", {"table_name": "test_table"})
    step.set_services(mock_service_registry)

    input_data = {"transformed_text": "test content"}
    result = await step.work(input_data)

    # Verify database was called
    mock_db = mock_service_registry.get("database")
    mock_db.execute.assert_called_once()

    assert result["status"] == "success"
    assert result["table"] == "test_table"


# --- tests/test_pipeline_integration.py, as in the guide ---------------------------------------------------


@pytest.mark.asyncio
async def test_full_pipeline_execution():
    """Test complete pipeline execution"""

    # Create test pipeline configuration
    pipeline_config = {
        "name": "Test Pipeline",
        "version": "1.0",
        "steps": [
            {
                "id": "transform_step",
                "step_class": "DataTransformStep",
                "module": "steps.my_custom_steps",
                "config": {"transform_type": "uppercase", "field_name": "message"},
            }
        ],
        "flow": {"start_at": "transform_step", "paths": []},
    }

    # Write to temporary file
    with tempfile.NamedTemporaryFile(mode="w", suffix=".json", delete=False) as tmp:
        json.dump(pipeline_config, tmp)
        pipeline_file = tmp.name

    try:
        # Execute pipeline
        result = await run_pipeline_from_json(pipeline_file=pipeline_file, input_data={"message": "test message"})

        # Verify results
        assert "transform_step" in result
        assert result["transform_step"]["transformed_text"] == "TEST MESSAGE"

    finally:
        # Cleanup
        Path(pipeline_file).unlink()  # noqa: ASYNC240 (verbatim from the guide)


# --- the guide's "Custom Data Processing Pipeline", as shipped ---------------------------------------------


def _events(name: str) -> list[dict]:
    lines = (PIPELINES / f"{name}.events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def test_custom_processing_routes_good_text_to_advanced_processing():
    text = (
        "The new dashboard is a real improvement. Reports load in under two seconds now, and the export "
        "keeps the column formatting. I would still like a dark mode, but this release made reporting easier."
    )
    result = await run_pipeline_from_json(PIPELINES / "custom_processing.json", {"customer_id": "c1", "text": text})

    assert result.status == "success"
    metadata = result.outputs["processing_metadata"]
    assert metadata["processing_type"] == "advanced"
    assert metadata["quality_score"] > 0.8
    assert metadata["total_records"] == 1
    final = json.loads(result.outputs["final_result"])
    assert final == result["advanced_processor"]["result"]
    assert final["statistics"]["words"] == 34
    assert "standard_processor" not in result


async def test_custom_processing_routes_poor_text_to_standard_processing():
    result = await run_pipeline_from_json(
        PIPELINES / "custom_processing.json", {"customer_id": "c2", "body": "WORST SERVICE EVER!!! NEVER AGAIN!!!"}
    )

    assert result.status == "success"
    metadata = result.outputs["processing_metadata"]
    assert metadata["processing_type"] == "standard"
    assert metadata["quality_score"] <= 0.8
    assert json.loads(result.outputs["final_result"])["preview"] == "WORST SERVICE EVER!!! NEVER AGAIN!!!"


async def test_custom_processing_sample_events_take_both_branches():
    events = _events("custom_processing")
    assert len(events) >= 50
    assert all(event.get("customer_id") for event in events)
    kinds = []
    for event in events:
        result = await run_pipeline_from_json(PIPELINES / "custom_processing.json", event)
        assert result.status == "success", result.error
        kinds.append(result.outputs["processing_metadata"]["processing_type"])
    advanced, standard = kinds.count("advanced"), kinds.count("standard")
    assert advanced + standard == len(events)
    assert min(advanced, standard) >= len(events) // 3
