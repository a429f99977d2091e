"""Unit tests of steps/transform.py: DataTransformStep and ConditionalProcessingStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import pytest

from steps.transform import ConditionalProcessingStep, DataTransformStep
from tests.unit.step_helpers import GOOD_TEXT


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        ("uppercase", "HELLO WORLD"),
        ("lowercase", "hello world"),
        ("reverse", "dlroW olleH"),
        ("title", "Hello World"),
        ("none", "Hello World"),
    ],
)
async def test_transform_types(transform: str, expected: str) -> None:
    step = DataTransformStep("t", {"transform_type": transform, "field_name": "msg"})
    result = await step.work({"msg": "Hello World"})
    assert result == {
        "transformed_text": expected,
        "original_text": "Hello World",
        "transform_type": transform,
        "status": "success",
    }


async def test_transform_rejects_unknown_type_missing_and_non_text_fields() -> None:
    with pytest.raises(ValueError, match="step 't': unknown transform_type 'rot13'"):
        DataTransformStep("t", {"transform_type": "rot13"})
    with pytest.raises(ValueError, match="input field 'text' is missing"):
        await DataTransformStep("t").work({"message": "x"})
    with pytest.raises(ValueError, match="must be text, got list"):
        await DataTransformStep("t").work({"text": ["x"]})


async def test_conditional_processing_chooses_by_threshold() -> None:
    step = ConditionalProcessingStep("cond", {"threshold": 0.6})
    high = await step.work({"quality_score": 0.9, "text": GOOD_TEXT})
    assert high["processing_type"] == "high_quality"
    assert high["processed_result"]["algorithm"] == "advanced"
    assert high["processed_result"]["confidence"] == 0.8
    assert high["processed_result"]["keywords"][0] == "hiking"
    low = await step.work({"quality_score": 0.6, "text": "Two sentences here. And another one."})
    assert low["processing_type"] == "standard"
    assert low["processed_result"]["confidence"] == 0.5
    assert (low["processed_result"]["words"], low["processed_result"]["sentences"]) == (6, 2)
    assert low["threshold_used"] == 0.6


async def test_conditional_processing_rejects_non_numeric_score() -> None:
    with pytest.raises(ValueError, match="quality_score must be a number"):
        await ConditionalProcessingStep("cond").work({"quality_score": "high"})
