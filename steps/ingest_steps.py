"""Sensor reading ingest: validate a record, look up its sensor's calibration from an unreliable reference
service (retried), calibrate the readings or, when the lookup failed for good, mark the record for manual
review, then summarise the readings.

The lookup's unreliability is deterministic fault injection: the event says how many attempts fail
(``transient_failures``), so the retry and ``on_error: "continue"`` paths of a pipeline can be exercised and
tested with exact, repeatable outcomes.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import config_float, config_int, fingerprint, is_number

_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
DEFAULT_UNITS = ("C", "%RH", "kPa", "ppm", "lux")


class InvalidRecordError(ValueError):
    """A record that can never be ingested as it is: retrying will not help."""


class TransientUpstreamError(RuntimeError):
    """The reference service did not answer this time; the same request may succeed when retried."""


def _record_of(step: Step, data: Mapping[str, Any]) -> Mapping[str, Any]:
    record = data.get("record")
    if not isinstance(record, Mapping) or not isinstance(record.get("readings"), list):
        raise ValueError(f"step '{step.name}': input 'record' (a validated record with readings) is missing")
    return record


class ReadingValidatorStep(Step):
    """Check a raw sensor record and normalise it, or raise :class:`InvalidRecordError` listing every problem.

    A record needs ``record_id`` (``[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}``), ``sensor_id``, ``site``, a ``unit``
    from config ``units``, ``readings`` (1 to config ``max_readings`` finite numbers) and ``recorded_at`` (ISO
    8601 with a time zone, normalised to UTC); ``transient_failures``, if present, must be a non-negative
    integer. Returns ``record``.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        units = self.config.get("units", list(DEFAULT_UNITS))
        if not isinstance(units, list) or not units or not all(isinstance(unit, str) for unit in units):
            raise ValueError(f"step '{name}': config 'units' must be a non-empty list of unit names")
        self.units: tuple[str, ...] = tuple(units)
        self.max_readings = config_int(name, "max_readings", self.config.get("max_readings", 1000), minimum=1)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        problems: list[str] = []
        record_id = data.get("record_id")
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            problems.append(f"record_id {record_id!r} is not a valid id")
        for field in ("sensor_id", "site"):
            value = data.get(field)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{field} must be a non-empty string")
        unit = data.get("unit")
        if unit not in self.units:
            problems.append(f"unit {unit!r} is not one of {', '.join(self.units)}")
        readings = data.get("readings")
        if not isinstance(readings, list) or not readings:
            problems.append("readings must be a non-empty list of numbers")
        elif len(readings) > self.max_readings:
            problems.append(f"readings has {len(readings)} values, more than {self.max_readings}")
        else:
            bad = [index for index, value in enumerate(readings) if not is_number(value)]
            if bad:
                shown = ", ".join(f"[{index}]={readings[index]!r}" for index in bad[:5])
                problems.append(f"readings must be finite numbers: {shown}")
        recorded_at = self._timestamp(data.get("recorded_at"), problems)
        failures = data.get("transient_failures", 0)
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            problems.append(f"transient_failures must be a non-negative integer, got {failures!r}")
        if problems:
            raise InvalidRecordError(f"step '{self.name}': invalid record {record_id!r}: " + "; ".join(problems))
        values: list[Any] = readings if isinstance(readings, list) else []
        record = {
            "record_id": record_id,
            "sensor_id": str(data["sensor_id"]).strip(),
            "site": str(data["site"]).strip(),
            "unit": unit,
            "readings": [float(value) for value in values],
            "recorded_at": recorded_at,
        }
        return {"record": record, "status": "success"}

    @staticmethod
    def _timestamp(value: Any, problems: list[str]) -> str | None:
        if not isinstance(value, str):
            problems.append("recorded_at must be an ISO 8601 timestamp")
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"recorded_at {value!r} is not an ISO 8601 timestamp")
            return None
        if moment.tzinfo is None:
            problems.append(f"recorded_at {value!r} has no time zone")
            return None
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CalibrationLookupStep(Step):
    """Look up the sensor's calibration (``offset`` and ``scale``) in the reference table of config
    ``calibrations``; sensors not in it get the identity calibration and ``calibration_known`` false.

    The reference service is modelled as unreliable: the first N attempts of a run raise
    :class:`TransientUpstreamError`, N being the event's field named by config ``failures_field`` (default
    ``transient_failures``). Attempts are counted per run id (``services.get("execution_id")``; a digest of the
    input without one) in a bounded table (config ``max_tracked_runs``, default 10,000, oldest dropped first); a
    run's entry is dropped when it succeeds, and an entry untouched for ``reset_after_s`` (default 60 s, far longer
    than any retry backoff) starts counting afresh, so a run replayed later fails as the first time did. With
    N >= the step's ``retry.max_attempts`` the lookup fails for good.
    Returns ``calibration``, ``calibration_known``, ``attempts`` and ``status`` ``"ok"``.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        table = self.config.get("calibrations", {})
        if not isinstance(table, Mapping):
            raise ValueError(f"step '{name}': config 'calibrations' must map sensor ids to calibrations")
        self.calibrations: dict[str, dict[str, float]] = {}
        for sensor, entry in table.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"step '{name}': calibration of {sensor!r} must be an object")
            self.calibrations[str(sensor)] = {
                "offset": config_float(name, f"calibrations.{sensor}.offset", entry.get("offset", 0.0)),
                "scale": config_float(name, f"calibrations.{sensor}.scale", entry.get("scale", 1.0)),
            }
        self.failures_field = str(self.config.get("failures_field", "transient_failures"))
        self.max_tracked_runs = config_int(
            name, "max_tracked_runs", self.config.get("max_tracked_runs", 10_000), minimum=1
        )
        self.reset_after_s = config_float(name, "reset_after_s", self.config.get("reset_after_s", 60.0))
        #: run key -> (failed attempts so far, monotonic time of the last one)
        self._attempts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        record = _record_of(self, data)
        planned = data.get(self.failures_field, 0)
        if isinstance(planned, bool) or not isinstance(planned, int) or planned < 0:
            raise ValueError(
                f"step '{self.name}': '{self.failures_field}' must be a non-negative integer, got {planned!r}"
            )
        key = self._run_key(data)
        attempt = self._next_attempt(key)
        if attempt <= planned:
            raise TransientUpstreamError(
                f"calibration service unavailable for sensor {record.get('sensor_id')!r} "
                f"(attempt {attempt}; this record's service outage lasts {planned} attempt(s))"
            )
        self._attempts.pop(key, None)
        sensor = str(record.get("sensor_id"))
        known = sensor in self.calibrations
        calibration = self.calibrations.get(sensor, {"offset": 0.0, "scale": 1.0})
        return {
            "calibration": {"sensor_id": sensor, **calibration},
            "calibration_known": known,
            "attempts": attempt,
            "status": "ok",
        }

    def _run_key(self, data: Mapping[str, Any]) -> str:
        execution_id = self.services.get("execution_id") if self.services is not None else None
        return str(execution_id) if execution_id else f"input:{fingerprint(data, 32)}"

    def _next_attempt(self, key: str) -> int:
        """Count one more attempt for ``key`` and return its number (1 for the first)."""
        now = time.monotonic()
        failed, last = self._attempts.pop(key, (0, now))
        if now - last > self.reset_after_s:
            failed = 0
        attempt = failed + 1
        self._attempts[key] = (attempt, now)
        while len(self._attempts) > self.max_tracked_runs:
            self._attempts.popitem(last=False)
        return attempt


class ApplyCalibrationStep(Step):
    """Calibrate the record's readings: ``reading * scale + offset``, rounded to config ``decimals`` (4).
    Takes inputs ``record`` and ``calibration``; returns ``calibrated`` and ``review_required`` false."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.decimals = config_int(name, "decimals", self.config.get("decimals", 4), minimum=0)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        record = _record_of(self, data)
        calibration = data.get("calibration")
        if not isinstance(calibration, Mapping):
            raise ValueError(f"step '{self.name}': input 'calibration' is missing")
        scale, offset = float(calibration["scale"]), float(calibration["offset"])
        readings = [round(value * scale + offset, self.decimals) for value in record["readings"]]
        return {
            "calibrated": {"readings": readings, "unit": record.get("unit"), "scale": scale, "offset": offset},
            "review_required": False,
            "status": "success",
        }


class MarkForReviewStep(Step):
    """Handle a record whose calibration lookup failed for good: keep the raw readings and open a review item
    saying why. Takes inputs ``record`` and ``error`` (the failed step's ``{"type", "message"}``); returns
    ``review`` and ``review_required`` true."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        record = _record_of(self, data)
        error = data.get("error")
        if isinstance(error, Mapping):
            error_type, message = str(error.get("type", "Error")), str(error.get("message", ""))
        elif error is not None:
            error_type, message = "Error", str(error)
        else:
            raise ValueError(f"step '{self.name}': input 'error' is missing: nothing failed, nothing to review")
        review = {
            "queue": "calibration_review",
            "record_id": record.get("record_id"),
            "sensor_id": record.get("sensor_id"),
            "reason": f"calibration lookup failed ({error_type}): {message}",
            "error_type": error_type,
            "raw_readings_kept": len(record["readings"]),
        }
        return {"review": review, "review_required": True, "status": "success"}


DEFAULT_PLAUSIBLE_RANGES: dict[str, list[float]] = {
    "C": [-40.0, 85.0],
    "%RH": [0.0, 100.0],
    "kPa": [80.0, 110.0],
    "ppm": [250.0, 5000.0],
    "lux": [0.0, 120000.0],
}


class SummariseReadingsStep(Step):
    """Summarise a record's readings, calibrated when calibration succeeded and raw otherwise: count, min, max,
    mean, median, population stdev, and the readings outside the unit's plausible range (config
    ``plausible_ranges``). Takes inputs ``record``, ``calibrated`` and ``review`` (one of them null); returns
    ``summary`` and ``review_required``."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        ranges = self.config.get("plausible_ranges", DEFAULT_PLAUSIBLE_RANGES)
        if not isinstance(ranges, Mapping) or not all(
            isinstance(bounds, list) and len(bounds) == 2 and all(is_number(b) for b in bounds)
            for bounds in ranges.values()
        ):
            raise ValueError(f"step '{name}': config 'plausible_ranges' must map units to [low, high]")
        self.ranges: dict[str, tuple[float, float]] = {
            unit: (float(bounds[0]), float(bounds[1])) for unit, bounds in ranges.items()
        }

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        record = _record_of(self, data)
        calibrated = data.get("calibrated")
        review = data.get("review")
        if isinstance(calibrated, Mapping):
            values = [float(value) for value in calibrated["readings"]]
        elif isinstance(review, Mapping):
            values = [float(value) for value in record["readings"]]
        else:
            raise ValueError(f"step '{self.name}': needs either 'calibrated' readings or a 'review' item")
        low, high = self.ranges.get(str(record.get("unit")), (-math.inf, math.inf))
        outside = [index for index, value in enumerate(values) if not low <= value <= high]
        summary = {
            "record_id": record.get("record_id"),
            "sensor_id": record.get("sensor_id"),
            "site": record.get("site"),
            "unit": record.get("unit"),
            "recorded_at": record.get("recorded_at"),
            "calibrated": isinstance(calibrated, Mapping),
            "count": len(values),
            "min": round(min(values), 4),
            "max": round(max(values), 4),
            "mean": round(statistics.fmean(values), 4),
            "median": round(statistics.median(values), 4),
            "stdev": round(statistics.pstdev(values), 4),
            "out_of_range": outside,
            "review_reason": review.get("reason") if isinstance(review, Mapping) else None,
        }
        return {"summary": summary, "review_required": isinstance(review, Mapping), "status": "success"}
