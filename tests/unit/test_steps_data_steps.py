"""Unit tests of steps/data_steps.py: DataLoaderStep and DataCleanerStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import pytest

from steps.data_steps import DataCleanerStep, DataLoaderStep


async def test_loader_takes_first_known_text_field() -> None:
    step = DataLoaderStep("loader", {"source_type": "kafka", "validation_enabled": True})
    result = await step.work({"customer_id": "c1", "body": "Hello there.", "message": "ignored"})
    assert result["loaded_data"] == {
        "text": "Hello there.",
        "source_field": "body",
        "source_type": "kafka",
        "characters": 12,
    }


async def test_loader_prefers_raw_text_input_then_configured_field() -> None:
    step = DataLoaderStep("loader", {"text_field": "comment"})
    assert (await step.work({"comment": "from config", "text": "x"}))["loaded_data"]["text"] == "from config"
    result = await step.work({"comment": "from config", "raw_text": "from inputs"})
    assert result["loaded_data"]["source_field"] == "raw_text"
    assert result["loaded_data"]["text"] == "from inputs"


async def test_loader_rejects_missing_blank_and_non_text() -> None:
    step = DataLoaderStep("loader", {})
    with pytest.raises(ValueError, match="no text: expected one of the fields text, body, content, message"):
        await step.work({"customer_id": "c1"})
    with pytest.raises(ValueError, match="'text' is blank"):
        await step.work({"text": "   "})
    with pytest.raises(ValueError, match="'text' must be text, got int"):
        await step.work({"text": 42})
    with pytest.raises(ValueError, match="more than max_chars 5"):
        await DataLoaderStep("loader", {"max_chars": 5}).work({"text": "too long"})


async def test_loader_without_validation_accepts_anything() -> None:
    step = DataLoaderStep("loader", {"validation_enabled": "false"})
    assert (await step.work({}))["loaded_data"]["text"] == ""
    assert (await step.work({"text": 42}))["loaded_data"]["text"] == "42"


def test_loader_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="validation_enabled"):
        DataLoaderStep("loader", {"validation_enabled": "maybe"})


async def test_cleaner_normalises_unicode_controls_and_whitespace() -> None:
    text = "\ufeffThe  \u201c\uff46\uff55\uff4c\uff4c\u201d\u00a0width\u200b text\t\r\nends\u2014here\x07 "
    raw = {"text": text, "source_field": "text"}
    result = await DataCleanerStep("cleaner").work({"raw_data": raw})
    cleaned = result["cleaned_data"]
    assert cleaned["text"] == 'The "full" width text ends-here'
    assert cleaned["source_field"] == "text"
    assert cleaned["characters"] == len(cleaned["text"])
    report = result["cleaning_report"]
    assert report["control_chars_removed"] == 3  # BOM, zero-width space, bell
    assert report["original_length"] == len(raw["text"])
    assert report["cleaned_length"] == len(cleaned["text"])
    assert report["unicode_changes"] == 8  # 4 full-width letters, 2 curly quotes, a no-break space, a dash


async def test_cleaner_keeps_newlines_when_asked_and_accepts_plain_text() -> None:
    step = DataCleanerStep("cleaner", {"keep_newlines": True})
    result = await step.work({"raw_data": "first   line \n\n\n  second\tline  "})
    assert result["cleaned_data"]["text"] == "first line\nsecond line"


async def test_cleaner_rejects_missing_or_wrong_input() -> None:
    with pytest.raises(ValueError, match="'raw_data' is missing"):
        await DataCleanerStep("cleaner").work({"text": "not mapped"})
    with pytest.raises(ValueError, match="got list"):
        await DataCleanerStep("cleaner").work({"raw_data": ["a"]})
