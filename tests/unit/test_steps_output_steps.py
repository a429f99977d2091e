"""Unit tests of steps/output_steps.py: OutputFormatterStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from steps.output_steps import OutputFormatterStep

RECORD = {"name": "boots", "scores": [1, 2], "meta": {"ok": True, "note": None}}


async def test_formatter_json_is_canonical() -> None:
    result = await OutputFormatterStep("fmt", {"format": "json"}).work({"processed_data": RECORD})
    assert result["formatted_output"] == json.dumps(RECORD, sort_keys=True)
    assert json.loads(result["formatted_output"]) == RECORD
    assert result["record_count"] == 1


async def test_formatter_text_flattens_fields() -> None:
    result = await OutputFormatterStep("fmt", {"format": "text"}).work({"processed_data": RECORD})
    assert result["formatted_output"] == "name: boots\nscores.0: 1\nscores.1: 2\nmeta.ok: true\nmeta.note: "


async def test_formatter_csv_has_union_header_and_a_row_per_record() -> None:
    records = [{"a": 1, "b": "x,y"}, {"a": 2, "c": {"d": 3}}]
    result = await OutputFormatterStep("fmt", {"format": "CSV"}).work({"processed_data": records})
    rows = list(csv.reader(io.StringIO(result["formatted_output"])))
    assert rows == [["a", "b", "c.d"], ["1", "x,y", ""], ["2", "", "3"]]
    assert result["record_count"] == 2
    assert result["format"] == "csv"


async def test_formatter_rejects_unknown_format_and_missing_data() -> None:
    with pytest.raises(ValueError, match="step 'fmt': config 'format' must be one of json, text, csv, got 'xml'"):
        OutputFormatterStep("fmt", {"format": "xml"})
    with pytest.raises(ValueError, match="'processed_data' is missing"):
        await OutputFormatterStep("fmt").work({})
