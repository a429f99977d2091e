"""Trace timestamps: cached per millisecond and per second, and still right across both boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

from ia_modules.pipeline.kernel import _now_iso


def _expected(epoch: float) -> str:
    moment = datetime.fromtimestamp(int(epoch * 1000) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_started_at_is_utc_iso_with_milliseconds_across_millisecond_and_second_boundaries() -> None:
    base = 1_795_000_000.0
    moments = [base + 0.9985, base + 0.9987, base + 0.999, base + 1.0, base + 1.0004, base + 1.001, base + 61.5]
    for epoch in [*moments, *moments]:  # the second pass meets warm caches, in another order of change
        assert _now_iso(epoch) == _expected(epoch), epoch
    assert _now_iso(base + 1.0004) == "2026-11-18T11:06:41.000Z"
