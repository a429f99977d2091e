"""Text PostgreSQL cannot store (NUL) in the sink's rows: escaped losslessly on the way in, restored on the way
out (``dlq list``, ``dlq replay``), and nothing done to rows that hold no NUL; and the route a finished run
carries, should the database refuse its row anyway (streams/sink/results.py, streams/sink/dead_letters.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ia_modules.pipeline.compiler import compile_pipeline
from ia_modules.pipeline.loader import load_plan
from ia_modules.pipeline.services import ServiceRegistry
from ia_modules.pipeline.wire import dead_letter, result_record, run_error
from streams.envelope import Envelope, partition_for
from streams.kafka.records import InputRecord
from streams.sink.checkpoint import Produced
from streams.sink.dead_letters import LETTER_BY_ID, list_letters, payload_of, replay_emission, replay_letters
from streams.sink.results import (
    MARK,
    FinishedRun,
    letter_row,
    read_json,
    read_text,
    run_row,
    stored_json,
    stored_text,
)
from streams.stage_runner import StageRunner
from streams.topology import build_topology
from tests.unit.kafka_stand_ins import Journal, StandInProducer

ROOT = Path(__file__).resolve().parents[2]
NUL = "\0"


def strings_in(value: Any) -> list[str]:
    """Every string of a JSON value, keys included, at any depth."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *strings_in(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def storable(encoded: str) -> bool:
    """What PostgreSQL's jsonb takes: no NUL in any string (the JSON parsed, so ``\\u0000`` text is fine)."""
    return not any(NUL in s for s in strings_in(orjson.loads(encoded)))


# -- JSON columns -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "clean",
    [
        '{"a":1}',
        '{"text":"café \\"quoted\\" line\\nbreak \\u00e9 \\\\ back"}',
        '{"u":"\\u0001\\u001f"}',
        '{"cjk":"漢字 ☃ \U0001f600"}',
    ],
)
def test_json_without_nul_or_the_mark_is_stored_as_it_is(clean: str) -> None:
    assert stored_json(clean) is clean
    assert read_json(clean) == orjson.loads(clean)


def test_nul_in_keys_and_values_at_any_depth_is_stored_without_nul_and_read_back_as_it_was() -> None:
    value = {
        "a\0b": "x\0y",
        "list": ["\0", "\0\0", {"deep\0key": [[["v\0"]]]}],
        "\0": {"\0": "\0"},
        "plain": "no nul",
    }
    stored = stored_json(dumps(value))
    assert "\\u0000" not in stored and storable(stored)
    assert read_json(stored) == value
    assert orjson.loads(stored)["plain"] == "no nul" and orjson.loads(stored)["a" + MARK + "0b"] == "x" + MARK + "0y"


def test_nesting_deeper_than_python_or_orjson_would_walk_is_escaped_all_the_same() -> None:
    depth = 3000
    encoded = '{"k\\u0000":' * depth + '"v\\u0000"' + "}" * depth
    stored = stored_json(encoded)
    assert "\\u0000" not in stored
    assert stored.count(MARK + "0") == depth + 1
    # deeper than orjson reads (1024): read_json's text replacement, checked on the text
    restored = stored.replace(MARK + "0", "\\u0000").replace(MARK + "e", MARK)
    assert restored == encoded


@pytest.mark.parametrize(
    "text",
    [MARK, MARK + "0", MARK + "e", MARK + NUL, NUL + "0", NUL + "e", MARK + MARK + "0", "e" + MARK + "0" + NUL + MARK],
)
def test_the_mark_itself_and_pairs_that_look_like_the_escapes_survive(text: str) -> None:
    value = {text: [text, {"k": text}]}
    stored = stored_json(dumps(value))
    assert storable(stored)
    assert read_json(stored) == value
    assert read_text(stored_text(text)) == text


def test_the_mark_and_nul_written_as_json_escapes_by_another_producer_are_escaped_too() -> None:
    raw = '{"k":"\\uE000\\u0000\\ue000x", "\\uE000\\u0030": 1}'
    stored = stored_json(raw)
    assert storable(stored)
    assert read_json(stored) == orjson.loads(raw) == {"k": MARK + NUL + MARK + "x", MARK + "0": 1}


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul() -> None:
    text_only = '["\\\\u0000 is six characters here", "\\\\\\\\u0000"]'
    assert stored_json(text_only) == text_only
    value = {"path": "C:\\u0000", "nul after backslash": "\\\0"}
    stored = stored_json(dumps(value))
    assert storable(stored) and read_json(stored) == value
    assert orjson.loads(stored)["path"] == "C:\\u0000", "left as it was"


json_text = st.text(alphabet=st.sampled_from(["\0", MARK, "0", "e", "\\", '"', "u", "a", "é", "\n"]), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_value_round_trips_and_is_storable(value: Any) -> None:
    stored = stored_json(dumps(value))
    assert storable(stored)
    assert read_json(stored) == value
    if not any(NUL in s or MARK in s for s in strings_in(value)):
        assert stored == dumps(value)


@settings(max_examples=300, deadline=None)
@given(json_text)
def test_any_text_round_trips_without_nul(text: str) -> None:
    stored = stored_text(text)
    assert stored is not None and NUL not in stored
    assert read_text(stored) == text
    assert stored_text(None) is None and read_text(None) is None


def test_clean_text_is_the_same_object() -> None:
    text = "nothing to escape, not even \\u0000"
    assert stored_text(text) is text and read_text(text) is text


# -- the rows -----------------------------------------------------------------------------------------------------


def record_with_nul() -> dict[str, Any]:
    return result_record(
        run_id="0b7a5c8e-1d2f-5a3b-9c4d-5e6f7a8b9c0d", pipeline="p", pipeline_version="1\0", status="failed",
        outputs={"out\0": ["\0"]}, error=run_error("ValueError", "bad \0 value", step="s", attempts=2),
        trace=orjson.Fragment(orjson.dumps([{"step": "s", "status": "failed", "error": "bad \0"}])),
        input=orjson.Fragment(b'{"name\\u0000":"a\\u0000b","n":1}'),
        source={"topic": "ia.p.input", "partition": 1, "offset": 5, "timestamp": 1_700_000_000_000},
    )  # fmt: skip


def test_a_run_row_holds_no_nul_and_reads_back_as_the_record() -> None:
    record = record_with_nul()
    row = run_row(FinishedRun(record, 1_700_000_000_100))
    assert not any(NUL in value for value in row if isinstance(value, str))
    assert not any("\\u0000" in value for value in row if isinstance(value, str))
    assert read_text(row[2]) == "1\0"
    assert read_json(row[4]) == {"name\0": "a\0b", "n": 1}
    assert read_json(row[5]) == {"out\0": ["\0"]}
    assert read_json(row[6]) == [{"step": "s", "status": "failed", "error": "bad \0"}]
    assert read_json(row[7])["message"] == "bad \0 value"


def test_a_clean_run_row_is_what_it_was_before_escaping_existed() -> None:
    record = result_record(
        run_id="0b7a5c8e-1d2f-5a3b-9c4d-5e6f7a8b9c0d", pipeline="p", pipeline_version="1", status="success",
        outputs={"x": "é"}, error=None, trace=[], input={"n": "line\nbreak"},
        source={"topic": "ia.p.input", "partition": 1, "offset": 5, "timestamp": None},
    )  # fmt: skip
    row = run_row(FinishedRun(record, 1_700_000_000_100))
    assert row[4:8] == (orjson.dumps(record["input"]).decode(), orjson.dumps({"x": "é"}).decode(), "[]", None)


def step_failed_letter_with_nul() -> dict[str, Any]:
    envelope = Envelope(
        run_id="0b7a5c8e-1d2f-5a3b-9c4d-5e6f7a8b9c0d", pipeline="p", version="1", key="cust\0" + MARK,
        input={"order": "5\0x", "k\0": MARK + "0"}, resume_at="check",
        source={"topic": "ia.p.input", "partition": 1, "offset": 5, "timestamp": 1}, started_ms=1,
    )  # fmt: skip
    return dead_letter(
        "step_failed", run_id=envelope.run_id, pipeline="p",
        error=run_error("RuntimeError", "order 5\0x cannot be checked yet", step="check", attempts=1,
                        traceback="Traceback...\nRuntimeError: order 5\0x"),
        input=envelope.input, envelope=envelope.as_dict(), source=envelope.source, created_ms=2,
    )  # fmt: skip


def stored_letter_row(letter_id: int, letter: dict[str, Any]) -> dict[str, Any]:
    """The row ``dlq list`` and ``dlq replay`` read, as the sink stored it."""
    columns = ("run_id", "pipeline", "step", "attempts", "error_type", "error_message")
    row = dict(zip(columns, letter_row(letter)[: len(columns)], strict=True))
    return {**row, "id": letter_id, "kind": letter["kind"], "created_at": "2026-01-02 03:04:05",
            "replayed_at": None, "payload": letter_row(letter)[7]}  # fmt: skip


def test_a_letter_row_holds_no_nul_and_its_payload_reads_back_as_the_letter() -> None:
    letter = step_failed_letter_with_nul()
    row = letter_row(letter)
    assert not any(NUL in value for value in row if isinstance(value, str))
    assert storable(row[7])
    assert [read_text(value) for value in row[4:7]] == [
        "RuntimeError", "order 5\0x cannot be checked yet", "Traceback...\nRuntimeError: order 5\0x"
    ]  # fmt: skip
    assert payload_of({"payload": row[7]}) == letter
    assert payload_of({"payload": row[7].encode()}) == letter
    assert payload_of({"payload": letter}) == letter, "a letter already read is taken as it is"


class StoredLetters:
    """The two queries of DatabaseManager that listing and replaying use, on rows as the sink stored them."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.marked: list[int] = []

    async def fetch_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    async def fetch_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        assert sql == LETTER_BY_ID
        return next((dict(r) for r in self.rows if r["id"] == params[1]), None)

    async def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self.marked.append(params[0])


async def test_dlq_list_shows_the_letter_and_its_error_as_they_were_produced() -> None:
    letter = step_failed_letter_with_nul()
    [listed] = await list_letters(cast(Any, StoredLetters([stored_letter_row(1, letter)])), "p")
    assert listed["error_message"] == "order 5\0x cannot be checked yet"
    assert listed["payload"] == letter and listed["replayable"]


async def test_dlq_replay_produces_the_envelope_with_its_nul_intact() -> None:
    plan = load_plan(ROOT / "pipelines" / "custom_processing.json")
    topology = build_topology(plan)
    letter = step_failed_letter_with_nul()
    letter["envelope"]["pipeline"] = letter["pipeline"] = plan.id
    letter["resume_at"] = letter["envelope"]["resume_at"] = "data_cleaner"
    db = StoredLetters([stored_letter_row(4, letter)])
    producer = StandInProducer(Journal())
    [outcome] = await replay_letters(cast(Any, db), cast(Any, producer), plan.id, topology, 4)
    assert outcome.problem is None and db.marked == [4]
    [handed] = producer.handed
    [record] = handed.records
    replayed = Envelope.decode(record.value, plan.id)
    assert replayed.input == {"order": "5\0x", "k\0": MARK + "0"}
    assert record.key == ("cust\0" + MARK).encode()
    assert handed.partition == partition_for(record.key, topology.partitions)
    assert replay_emission(payload_of(stored_letter_row(4, letter)), topology).value == record.value


# -- the route of a finished run's dead letter --------------------------------------------------------------------


async def test_a_finished_run_carries_its_pipelines_dead_letters_its_partition_and_key() -> None:
    plan = compile_pipeline(
        {"steps": [{"id": "echo", "step_class": "CaptureStep", "module": "tests.unit.sample_steps"}],
         "flow": {"start_at": "echo", "paths": []}, "stream": {"key": "{{ pipeline_input.customer_id }}"}},
        "echo.json", "echo",
    )  # fmt: skip
    runner = StageRunner.build(plan, ServiceRegistry(), "cluster-a")
    event = {"customer_id": "cust\0 7", "text": "Package arrived.\0"}
    key = event["customer_id"].encode()
    partition = partition_for(key, runner.topology.partitions)
    out = Produced()
    await runner.on_input(InputRecord(runner.topology.input_topics[0], partition, 3, 1, key, orjson.dumps(event)), out)
    [run] = out.runs
    assert run.dead_letters is runner.letters and run.dead_letters.topic == runner.topology.dlq_topic
    assert (run.partition, run.key) == (partition, "cust\0 7")
    refused = Produced()
    run.dead_letters.row_refused(run, "pipeline_runs refused the run's row: no", refused)
    [sent] = refused.sends
    assert (sent.topic, sent.partition, sent.key) == (runner.topology.dlq_topic, partition, key)
    assert sent.headers == (("ia-run-id", run.record["run_id"].encode()),)
    letter = orjson.loads(sent.value or b"")
    assert refused.letters == [letter]
    assert (
        letter["kind"] == "internal_error" and letter["error"]["message"] == "pipeline_runs refused the run's row: no"
    )
    assert orjson.loads(base64.b64decode(letter["raw"]))["input"] == event
