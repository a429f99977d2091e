"""Unit tests of steps/robust.py: RobustProcessingStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from steps.robust import RobustProcessingStep


async def test_robust_processing_extracts_validated_fields() -> None:
    step = RobustProcessingStep("robust", {"required_fields": ["id", "amount"], "field_types": {"note": "string"}})
    result = await step.work({"id": 3, "amount": 12.5, "note": "paid", "extra": True})
    assert result["status"] == "success" and result["errors"] == []
    body = result["result"]
    assert body["record"] == {"id": 3, "amount": 12.5, "note": "paid"}
    assert body["numeric_total"] == 15.5
    assert body["numeric_fields"] == ["amount", "id"]
    assert body["text_lengths"] == {"note": 4}


async def test_robust_processing_reports_validation_and_processing_errors() -> None:
    step = RobustProcessingStep("robust", {"required_fields": ["id"], "field_types": {"amount": "number"}})
    assert await step.work({"amount": 1}) == {
        "error": "Required field 'id' missing from input data",
        "error_type": "validation",
        "status": "failed",
    }
    result = await step.work({"id": 1, "amount": "12"})
    assert result["error"] == "Field 'amount' must be of type number, got str"

    class Exploding(RobustProcessingStep):
        def _safe_processing(self, data: Any) -> dict[str, Any]:
            raise KeyError("boom")

    result = await Exploding("robust").work({"id": 1})
    assert result == {"error": "KeyError: 'boom'", "error_type": "processing", "status": "failed"}
    with pytest.raises(ValueError, match="field_types"):
        RobustProcessingStep("robust", {"field_types": {"a": "date"}})
