"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from ia_modules.pipeline.services import current_execution_id


@pytest.fixture
def run_id() -> Any:
    """Set the run in progress, as the runner does. Each async test runs in its own task, in a copy of the
    context, so the id never leaks into other tests."""

    def start(value: str) -> None:
        current_execution_id.set(value)

    return start
