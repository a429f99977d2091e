"""ia_modules/pipeline/wire.py: the JSON shapes a run leaves behind (run error, result record, dead letter), the
partition key of a run's messages, and what makes an event.

Consumers of the output topic, ``consume``, ``run`` and the ``pipeline_runs`` / ``dead_letters`` tables read these
fields by name, so the tests spell them out.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.wire import (
    DeadLetterKind,
    dead_letter,
    event_key,
    parse_event,
    partition_key,
    result_record,
    run_error,
    source_of,
)
from tests.unit.sample_steps import MODULE

RECORD_FIELDS = ["run_id", "pipeline", "pipeline_version", "status", "outputs", "error", "trace", "input", "source"]


def two_steps(second: str = "CaptureStep", **extra: Any) -> Pipeline:
    return Pipeline.from_dict(
        {
            "version": "3.1.0",
            "steps": [
                {"id": "load", "step_class": "ConstStep", "module": MODULE, "config": {"output": {"n": 2}}},
                {"id": "score", "step_class": second, "module": MODULE, "config": {"message": "no score"}},
            ],
            "flow": {"start_at": "load", "paths": [{"from": "load", "to": "score"}]},
            "stream": {"id": "reviews"},
            **extra,
        }
    )


# -- the run error -----------------------------------------------------------------------------------------------------


def test_run_error_has_every_field_with_nulls_for_what_is_not_known() -> None:
    assert run_error("EndWithFailure", "the flow ended with failure") == {
        "step": None,
        "type": "EndWithFailure",
        "message": "the flow ended with failure",
        "attempts": 0,
        "traceback": None,
    }
    assert run_error("ValueError", "bad", step="score", attempts=3, traceback="Traceback ...") == {
        "step": "score",
        "type": "ValueError",
        "message": "bad",
        "attempts": 3,
        "traceback": "Traceback ...",
    }


# -- the result record -------------------------------------------------------------------------------------------------


async def test_an_in_process_result_record_is_the_wire_result_record() -> None:
    result = await two_steps(outputs={"n": "{{ load.n }}"}).run({"text": "hi"}, run_id="run-1")
    record = result.to_record()
    assert record == result_record(
        run_id="run-1",
        pipeline="reviews",
        pipeline_version="3.1.0",
        status="success",
        outputs={"n": 2},
        error=None,
        trace=result.trace,
        input={"text": "hi"},
        source=None,
    )
    assert list(record) == RECORD_FIELDS
    assert [entry["step"] for entry in record["trace"]] == ["load", "score"]
    assert orjson.loads(orjson.dumps(record)) == record, "the record is JSON as it stands"


async def test_a_failed_run_record_carries_the_run_error_of_the_step() -> None:
    source = source_of("ia.reviews.input", 1, 17, 1_700_000_000_000)
    result = await two_steps("FailStep").run({"text": "hi"}, run_id="run-2", source=source)
    record = result.to_record()
    assert list(record) == RECORD_FIELDS
    assert (record["status"], record["source"]) == ("failed", source)
    error = record["error"]
    assert list(error) == ["step", "type", "message", "attempts", "traceback"]
    assert (error["step"], error["type"], error["message"], error["attempts"]) == ("score", "ValueError", "no score", 1)
    assert "ValueError: no score" in error["traceback"]


def test_source_of_names_the_input_record() -> None:
    assert source_of("t", 2, 9, None) == {"topic": "t", "partition": 2, "offset": 9, "timestamp": None}


# -- dead letters ------------------------------------------------------------------------------------------------------

LETTER_FIELDS = [
    "kind",
    "run_id",
    "pipeline",
    "step",
    "attempts",
    "error",
    "input",
    "envelope",
    "resume_at",
    "source",
    "created_ms",
]


@pytest.mark.parametrize(
    ("kind", "extra_fields"),
    [("step_failed", []), ("run_failed", []), ("bad_input", ["raw", "key"]), ("internal_error", ["raw", "key"])],
)
def test_dead_letter_fields_per_kind(kind: DeadLetterKind, extra_fields: list[str]) -> None:
    error = run_error("ValueError", "bad", step="score", attempts=2, traceback="tb")
    letter = dead_letter(
        kind, run_id="r", pipeline="p", error=error, source=None, created_ms=5, raw=b"\x01raw", key="k"
    )
    assert list(letter) == LETTER_FIELDS + extra_fields
    assert (letter["kind"], letter["run_id"], letter["pipeline"], letter["created_ms"]) == (kind, "r", "p", 5)
    assert (letter["step"], letter["attempts"]) == ("score", 2)
    assert letter["error"] == {"type": "ValueError", "message": "bad", "traceback": "tb"}
    assert letter["resume_at"] is None, "nothing to resume from without an envelope"
    if extra_fields:
        assert base64.b64decode(letter["raw"]) == b"\x01raw" and letter["key"] == "k"


def test_a_step_failed_letter_resumes_at_its_step() -> None:
    envelope = {"run_id": "r", "resume_at": "score"}
    error = run_error("ValueError", "bad", step="score", attempts=3)
    letter = dead_letter(
        "step_failed",
        run_id="r",
        pipeline="p",
        error=error,
        source=None,
        created_ms=5,
        input={"x": 1},
        envelope=envelope,
    )
    assert (letter["resume_at"], letter["envelope"], letter["input"]) == ("score", envelope, {"x": 1})


def test_a_bad_input_letter_without_a_key_is_keyed_by_its_run_id_and_null_bytes_are_empty() -> None:
    letter = dead_letter(
        "bad_input", run_id="r-9", pipeline="p", error=run_error("BadInput", "x"), source=None, created_ms=0
    )
    assert (letter["key"], letter["raw"]) == ("r-9", "")


def test_a_letter_of_an_error_without_attempts_counts_zero() -> None:
    error = run_error("JoinTimeout", "waited")
    error["attempts"] = None  # type: ignore[typeddict-item]
    letter = dead_letter("run_failed", run_id="r", pipeline="p", error=error, source=None, created_ms=0)
    assert letter["attempts"] == 0


# -- the partition key -------------------------------------------------------------------------------------------------


def keyed(key: str | None) -> Pipeline:
    stream: dict[str, Any] = {"id": "reviews"} if key is None else {"id": "reviews", "key": key}
    return Pipeline.from_dict(
        {
            "steps": [{"id": "a", "step_class": "ConstStep", "module": MODULE}],
            "flow": {"start_at": "a"},
            "stream": stream,
        }
    )


@pytest.mark.parametrize(
    ("event", "record_key", "expected"),
    [
        ({"customer_id": "c-1"}, b"record-key", "c-1"),
        ({"customer_id": 42}, None, "42"),
        ({"customer_id": ""}, b"record-key", "record-key"),
        ({"customer_id": None}, b"record-key", "record-key"),
        ({}, b"record-key", "record-key"),
        ({}, b"", "run-1"),
        ({}, None, "run-1"),
    ],
)
def test_partition_key_is_stream_key_then_record_key_then_run_id(
    event: dict[str, Any], record_key: bytes | None, expected: str
) -> None:
    assert partition_key(keyed("{{ pipeline_input.customer_id }}").plan, event, record_key, "run-1") == expected


def test_without_a_stream_key_the_record_key_then_the_run_id() -> None:
    plan = keyed(None).plan
    assert event_key(plan, {"customer_id": "c-1"}) is None
    assert partition_key(plan, {"customer_id": "c-1"}, b"record-key", "run-1") == "record-key"
    assert partition_key(plan, {"customer_id": "c-1"}, None, "run-1") == "run-1"


def test_a_stream_key_may_combine_fields_and_parameters() -> None:
    pipeline = Pipeline.from_dict(
        {
            "parameters": {"region": "eu"},
            "steps": [{"id": "a", "step_class": "ConstStep", "module": MODULE}],
            "flow": {"start_at": "a"},
            "stream": {"id": "reviews", "key": "{{ parameters.region }}/{{ pipeline_input.shop.id }}"},
        }
    )
    assert event_key(pipeline.plan, {"shop": {"id": 7}}) == "eu/7"


def test_an_undecodable_record_key_is_replaced_not_refused() -> None:
    assert partition_key(keyed(None).plan, {}, b"\xffk", "run-1") == "\ufffdk"


# -- events ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1, 2]", "an event must be a JSON object, not list"),
        (b'"text"', "an event must be a JSON object, not str"),
        (b"null", "an event must be a JSON object, not NoneType"),
        (b"3", "an event must be a JSON object, not int"),
    ],
)
def test_parse_event_refuses_what_is_not_an_object(raw: bytes, reason: str) -> None:
    assert parse_event(raw) == (None, reason)


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"a": 1'])
def test_parse_event_says_the_json_is_invalid(raw: bytes) -> None:
    event, reason = parse_event(raw)
    assert event is None
    assert reason is not None and reason.startswith("invalid JSON: ")


def test_parse_event_takes_an_object_from_bytes_or_text() -> None:
    assert parse_event(b'{"text": "hi", "n": [1]}') == ({"text": "hi", "n": [1]}, None)
    assert parse_event('{"text": "h\u00e9"}') == ({"text": "h\u00e9"}, None)
