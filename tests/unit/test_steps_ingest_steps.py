"""Unit tests of steps/ingest_steps.py: validation, calibration lookup (transient failures per run), review, summary.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from ia_modules.pipeline.services import ServiceRegistry, current_execution_id
from steps.ingest_steps import (
    ApplyCalibrationStep,
    CalibrationLookupStep,
    InvalidRecordError,
    MarkForReviewStep,
    ReadingValidatorStep,
    SummariseReadingsStep,
    TransientUpstreamError,
)
from tests.unit.step_helpers import READING, validated


async def test_validator_normalises_record() -> None:
    record = await validated()
    assert record == {
        "record_id": "rd-1",
        "sensor_id": "temp-a1",
        "site": "plant-a",
        "unit": "C",
        "readings": [20.0, 21.5, 150.0],
        "recorded_at": "2024-09-03T10:00:00Z",
    }


async def test_validator_raises_on_malformed_records() -> None:
    bad = {
        "record_id": "",
        "sensor_id": "s",
        "site": "",
        "unit": "F",
        "readings": [1, "n/a", True],
        "recorded_at": "2024-09-03T10:00:00",
        "transient_failures": -1,
    }
    with pytest.raises(InvalidRecordError) as info:
        await ReadingValidatorStep("validate").work(bad)
    message = str(info.value)
    for expected in (
        "record_id '' is not a valid id",
        "site must be a non-empty string",
        "unit 'F' is not one of C, %RH, kPa, ppm, lux",
        "[1]='n/a', [2]=True",
        "has no time zone",
        "transient_failures must be a non-negative integer",
    ):
        assert expected in message
    with pytest.raises(InvalidRecordError, match="readings must be a non-empty list"):
        await ReadingValidatorStep("validate").work({**READING, "readings": []})


LOOKUP_CONFIG = {"calibrations": {"temp-a1": {"offset": -0.5, "scale": 1.0}}}


async def test_calibration_lookup_fails_the_first_n_attempts_of_a_run(run_id: Any) -> None:
    step = CalibrationLookupStep("lookup", LOOKUP_CONFIG)
    step.set_services(ServiceRegistry())
    data = {"record": await validated(), "transient_failures": 2}
    run_id("run-a")
    for attempt in (1, 2):
        with pytest.raises(TransientUpstreamError, match=f"attempt {attempt}; .* lasts 2 attempt"):
            await step.work(data)
    result = await step.work(data)
    assert result == {
        "calibration": {"sensor_id": "temp-a1", "offset": -0.5, "scale": 1.0},
        "calibration_known": True,
        "attempts": 3,
        "status": "ok",
    }
    assert step._attempts == {}  # dropped on success
    # a new run of the same record starts again from the first attempt
    run_id("run-b")
    with pytest.raises(TransientUpstreamError, match="attempt 1;"):
        await step.work(data)


async def test_calibration_lookup_counts_runs_separately_and_bounded(run_id: Any) -> None:
    step = CalibrationLookupStep("lookup", {**LOOKUP_CONFIG, "max_tracked_runs": 2})
    step.set_services(ServiceRegistry())
    data = {"record": await validated(), "transient_failures": 5}
    for name in ("r1", "r2", "r1", "r3"):
        run_id(name)
        with pytest.raises(TransientUpstreamError):
            await step.work(data)
    assert list(step._attempts) == ["r1", "r3"]  # r2 was the oldest entry and was dropped
    assert step._attempts["r1"][0] == 2


async def test_calibration_lookup_forgets_stale_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("steps.ingest_steps.time.monotonic", lambda: clock[0])
    step = CalibrationLookupStep("lookup", {**LOOKUP_CONFIG, "reset_after_s": 60})
    data = {"record": await validated(), "transient_failures": 1}
    with pytest.raises(TransientUpstreamError):
        await step.work(data)  # no services: keyed by the input
    clock[0] += 61
    with pytest.raises(TransientUpstreamError, match="attempt 1;"):
        await step.work(data)
    clock[0] += 0.05
    assert (await step.work(data))["attempts"] == 2


async def test_calibration_lookup_unknown_sensor_and_bad_input() -> None:
    step = CalibrationLookupStep("lookup", LOOKUP_CONFIG)
    result = await step.work({"record": await validated(sensor_id="hum-x")})
    assert result["calibration"] == {"sensor_id": "hum-x", "offset": 0.0, "scale": 1.0}
    assert result["calibration_known"] is False and result["attempts"] == 1
    with pytest.raises(ValueError, match="'transient_failures' must be a non-negative integer"):
        await step.work({"record": await validated(), "transient_failures": "2"})
    with pytest.raises(ValueError, match="input 'record'"):
        await step.work({})
    with pytest.raises(ValueError, match=r"calibrations\.s\.scale"):
        CalibrationLookupStep("lookup", {"calibrations": {"s": {"scale": "big"}}})


async def test_apply_calibration() -> None:
    result = await ApplyCalibrationStep("apply", {"decimals": 2}).work(
        {"record": await validated(), "calibration": {"offset": -0.5, "scale": 1.01}}
    )
    assert result["calibrated"] == {"readings": [19.7, 21.21, 151.0], "unit": "C", "scale": 1.01, "offset": -0.5}
    assert result["review_required"] is False
    with pytest.raises(ValueError, match="'calibration' is missing"):
        await ApplyCalibrationStep("apply").work({"record": await validated()})


async def test_mark_for_review() -> None:
    error = {"type": "TransientUpstreamError", "message": "calibration service unavailable"}
    result = await MarkForReviewStep("review").work({"record": await validated(), "status": "failed", "error": error})
    assert result["review_required"] is True
    assert result["review"] == {
        "queue": "calibration_review",
        "record_id": "rd-1",
        "sensor_id": "temp-a1",
        "reason": "calibration lookup failed (TransientUpstreamError): calibration service unavailable",
        "error_type": "TransientUpstreamError",
        "raw_readings_kept": 3,
    }
    with pytest.raises(ValueError, match="'error' is missing"):
        await MarkForReviewStep("review").work({"record": await validated()})


async def test_summarise_calibrated_and_raw_readings() -> None:
    record = await validated()
    calibrated = await SummariseReadingsStep("sum").work(
        {"record": record, "calibrated": {"readings": [19.5, 21.0, 149.5]}, "review": None}
    )
    summary = calibrated["summary"]
    assert (summary["count"], summary["min"], summary["max"], summary["median"]) == (3, 19.5, 149.5, 21.0)
    assert summary["mean"] == round((19.5 + 21.0 + 149.5) / 3, 4)
    assert summary["out_of_range"] == [2]  # 149.5 C is above the plausible 85 C
    assert summary["calibrated"] is True and calibrated["review_required"] is False

    raw = await SummariseReadingsStep("sum").work(
        {"record": record, "calibrated": None, "review": {"reason": "lookup failed"}}
    )
    assert raw["summary"]["calibrated"] is False and raw["summary"]["max"] == 150.0
    assert raw["summary"]["review_reason"] == "lookup failed" and raw["review_required"] is True
    with pytest.raises(ValueError, match="needs either 'calibrated' readings or a 'review' item"):
        await SummariseReadingsStep("sum").work({"record": record})


def test_run_ids_set_by_tests_do_not_leak() -> None:
    assert current_execution_id.get() is None
