"""Unit tests of steps/analysis_steps.py: QualityCheckerStep, AdvancedProcessorStep and StandardProcessorStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import pytest

from steps import text_analysis as ta
from steps.analysis_steps import AdvancedProcessorStep, QualityCheckerStep, StandardProcessorStep
from tests.unit.step_helpers import GOOD_TEXT


async def test_quality_checker_scores_good_text_above_threshold() -> None:
    result = await QualityCheckerStep("qc", {"threshold": 0.8}).work({"cleaned_data": {"text": GOOD_TEXT}})
    assert result["quality_score"] == 1.0
    assert result["passes_threshold"] is True
    assert result["issues"] == []
    assert result["validated_data"] == {"text": GOOD_TEXT, "quality_score": 1.0}
    assert set(result["quality_details"]) == set(ta.QUALITY_WEIGHTS)


async def test_quality_checker_scores_shouting_spam_low_and_says_why() -> None:
    step = QualityCheckerStep("qc", {"threshold": 0.8})
    result = await step.work({"cleaned_data": "BUY NOW!!! BUY NOW!!! CHEAP CHEAP CHEAP!!!"})
    assert 0.0 <= result["quality_score"] < 0.5
    assert result["passes_threshold"] is False
    assert any(issue.startswith("shouting:") for issue in result["issues"])
    assert any(issue.startswith("repetition:") for issue in result["issues"])


async def test_quality_checker_is_monotonic_in_obvious_cases_and_deterministic() -> None:
    step = QualityCheckerStep("qc")
    score = (await step.work({"cleaned_data": GOOD_TEXT}))["quality_score"]
    shouted = (await step.work({"cleaned_data": GOOD_TEXT.upper()}))["quality_score"]
    short = (await step.work({"cleaned_data": "Comfortable boots."}))["quality_score"]
    assert score > shouted and score > short
    assert await step.work({"cleaned_data": GOOD_TEXT}) == await step.work({"cleaned_data": GOOD_TEXT})


async def test_quality_checker_threshold_is_exclusive() -> None:
    result = await QualityCheckerStep("qc", {"threshold": 1.0}).work({"cleaned_data": GOOD_TEXT})
    assert result["quality_score"] == 1.0
    assert result["passes_threshold"] is False


async def test_quality_checker_rejects_missing_input_and_bad_threshold() -> None:
    with pytest.raises(ValueError, match="'cleaned_data' is missing"):
        await QualityCheckerStep("qc").work({"text": GOOD_TEXT})
    with pytest.raises(ValueError, match="'threshold' must be a number"):
        QualityCheckerStep("qc", {"threshold": "high"})


async def test_advanced_processor_computes_keywords_summary_readability_and_tone() -> None:
    text = (
        "The cache layer was rewritten. Cache hits now avoid the database entirely. "
        "Latency improved and the team is happy. Cache invalidation remains the hard part."
    )
    result = await AdvancedProcessorStep("adv").work({"data": {"text": text, "quality_score": 0.93}})
    assert result["processing_type"] == "advanced"
    body = result["result"]
    assert body["keywords"][0] == {"term": "cache", "count": 3}
    assert body["statistics"]["words"] == 25
    assert body["statistics"]["sentences"] == 4
    assert body["summary"] == "Cache hits now avoid the database entirely. Cache invalidation remains the hard part."
    assert body["readability"]["band"] in {"easy", "standard", "difficult", "very_difficult"}
    assert body["tone"]["label"] == "positive"
    assert body["quality_score"] == 0.93


async def test_standard_processor_previews_and_counts() -> None:
    text = "word " * 60
    result = await StandardProcessorStep("std", {"preview_chars": 20}).work({"data": text.strip()})
    assert result["processing_type"] == "standard"
    assert result["result"]["preview"] == "word word word word\u2026"
    assert result["result"]["statistics"] == {"characters": 299, "words": 60, "sentences": 1}
    assert result["result"]["keywords"] == [{"term": "word", "count": 60}]


async def test_processors_reject_missing_data() -> None:
    with pytest.raises(ValueError, match="input 'data' is missing"):
        await AdvancedProcessorStep("adv").work({})
    with pytest.raises(ValueError, match="got int"):
        await StandardProcessorStep("std").work({"data": 3})
