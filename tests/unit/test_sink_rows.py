"""The ``pipeline_runs`` row of a finished run, as the end stage hands it over: trace and input pre-encoded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from streams.sink.results import FinishedRun, run_row

TRACE = [
    {"step": "a", "status": "skipped", "started_at": None},
    {"step": "b", "status": "ok", "started_at": "2026-11-26T07:00:01.250Z"},
]


def _record(trace: object, input_value: object) -> dict[str, object]:
    return {
        "run_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "x")),
        "pipeline": "p",
        "pipeline_version": "1",
        "status": "success",
        "outputs": {"n": 1},
        "error": None,
        "trace": trace,
        "input": input_value,
        "source": {"topic": "t", "partition": 2, "offset": 7, "timestamp": 1_700_000_000_000},
    }


def test_a_row_from_encoded_trace_and_input_equals_the_row_from_objects() -> None:
    event = {"text": "hi", "n": [1, 2]}
    as_objects = run_row(FinishedRun(_record(TRACE, event), 1_795_000_000_000))
    encoded = _record(orjson.Fragment(orjson.dumps(TRACE)), orjson.Fragment(orjson.dumps(event)))
    as_fragments = run_row(FinishedRun(encoded, 1_795_000_000_000))
    assert as_fragments == as_objects
    started = as_objects[12]
    assert started == datetime(2026, 11, 26, 7, 0, 1, 250_000, tzinfo=UTC), "the first step that started"
    assert orjson.loads(as_objects[6]) == TRACE and orjson.loads(as_objects[4]) == event
