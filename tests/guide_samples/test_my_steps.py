"""The developer guide's "Test Structure" sample (tests/test_my_steps.py), copied from the guide unchanged: it
must pass as written. Its imports resolve here as in the guide (``steps.my_custom_steps`` is shipped)."""
# fmt: off
# ruff: noqa: F401, I001

# tests/test_my_steps.py
import pytest
import tempfile
from unittest.mock import Mock, AsyncMock

from ia_modules.pipeline.services import ServiceRegistry
from steps.my_custom_steps import DataTransformStep, DatabaseWriterStep

@pytest.fixture
def mock_service_registry():
    """Provide mock service registry"""
    services = ServiceRegistry()

    # Mock database
    mock_db = Mock()
    mock_db.execute = Mock()
    services.register('database', mock_db)

    # Mock HTTP client
    mock_http = AsyncMock()
    services.register('http', mock_http)

    return services

@pytest.mark.asyncio
async def test_data_transform_step():
    """Test data transformation step"""
    step = DataTransformStep("transform_test", {
        'transform_type': 'uppercase',
        'field_name': 'text'
    })

    input_data = {'text': 'hello world'}
    result = await step.work(input_data)

    assert result['transformed_text'] == 'HELLO WORLD'
    assert result['original_text'] == 'hello world'
    assert result['status'] == 'success'

@pytest.mark.asyncio
async def test_database_writer_step(mock_service_registry):
    """Test database writer step"""
    step = DatabaseWriterStep("db_writer", {'table_name': 'test_table'})
    step.set_services(mock_service_registry)

    input_data = {'transformed_text': 'test content'}
    result = await step.work(input_data)

    # Verify database was called
    mock_db = mock_service_registry.get('database')
    mock_db.execute.assert_called_once()

    assert result['status'] == 'success'
    assert result['table'] == 'test_table'
