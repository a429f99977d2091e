"""The developer guide's "Pipeline Integration Tests" sample (tests/test_pipeline_integration.py), copied from
the guide unchanged: it must pass as written (its step module, ``steps.my_custom_steps``, is shipped)."""
# fmt: off
# ruff: noqa: I001, ASYNC240

# tests/test_pipeline_integration.py
import pytest
import json
import tempfile
from pathlib import Path

from ia_modules.pipeline.runner import run_pipeline_from_json

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
                "config": {
                    "transform_type": "uppercase",
                    "field_name": "message"
                }
            }
        ],
        "flow": {
            "start_at": "transform_step",
            "paths": []
        }
    }

    # Write to temporary file
    with tempfile.NamedTemporaryFile(mode='w', suffix='.json', delete=False) as tmp:
        json.dump(pipeline_config, tmp)
        pipeline_file = tmp.name

    try:
        # Execute pipeline
        result = await run_pipeline_from_json(
            pipeline_file=pipeline_file,
            input_data={'message': 'test message'}
        )

        # Verify results
        assert 'transform_step' in result
        assert result['transform_step']['transformed_text'] == 'TEST MESSAGE'

    finally:
        # Cleanup
        Path(pipeline_file).unlink()
