"""How deeply an event may nest (``IA_MAX_JSON_DEPTH``), measured where it comes in: an event at the limit runs, one
level deeper is refused (publish names its line, the worker files a ``bad_input`` letter naming its depth and the
limit, and no run starts); what the worker wraps around an event at the limit stays within what orjson writes.
And a run whose records cannot be encoded (orjson's ``Recursion limit reached``) ends failed once, under its own
run id, never as a success whose join state was not written; an internal error on an envelope is filed under the
run the envelope carries."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.loader import load_plan
from ia_modules.pipeline.services import ServiceRegistry
from ia_modules.pipeline.wire import DEFAULT_MAX_JSON_DEPTH, json_depth, parse_event, run_id_for
from streams.envelope import Envelope
from streams.kafka.records import InputRecord
from streams.settings import Settings, settings_problems
from streams.sink.checkpoint import Produced
from streams.stage_runner import StageRunner
from streams.worker import Worker, WorkerOptions, _Route
from tests.unit.test_stage_runner import ROOT, InMemoryTopics

ORJSON_DEPTH = 254
"""The deepest nesting orjson.dumps writes; one more raises ``Recursion limit reached``."""


def nested(levels: int, **fields: Any) -> bytes:
    """An event (an object) that nests ``levels`` deep: its ``deep`` field holds arrays and objects in turn.
    Written by hand, as orjson would refuse to write one deeper than it can."""
    inner = b"1"
    for level in range(levels - 1):
        inner = b'{"a":' + inner + b"}" if level % 2 else b"[" + inner + b"]"
    head = orjson.dumps(fields)[:-1]
    return head + (b"," if fields else b"") + b'"deep":' + inner + b"}"


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


# -- measuring ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b'"text"', 0),
        (b"{}", 1),
        (b"[1, 2]", 1),
        (b'{"a": [1, {"b": null}]}', 3),
        (b"[[], [[]], {}]", 3),
        (b'{"a": "}]]{{[[ \\" {{[[", "b": {}}', 2),  # brackets in strings, an escaped quote among them
        (b'{"\\\\": [1]}', 2),  # a string ending in an escaped backslash
    ],
)
def test_json_depth_counts_nested_objects_and_arrays_and_not_brackets_in_strings(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth
    assert json_depth(nested(depth + 1)) == depth + 1


def test_orjson_writes_the_depth_the_limit_leaves_room_for_and_not_one_more() -> None:
    assert json_depth(orjson.dumps(nest(ORJSON_DEPTH))) == ORJSON_DEPTH
    with pytest.raises(orjson.JSONEncodeError, match="Recursion limit reached"):
        orjson.dumps(nest(ORJSON_DEPTH + 1))


def test_an_event_at_the_limit_is_an_event_and_one_level_deeper_is_refused_naming_both() -> None:
    at_limit = nested(DEFAULT_MAX_JSON_DEPTH, seq=1)
    event, problem = parse_event(at_limit, DEFAULT_MAX_JSON_DEPTH)
    assert problem is None and event is not None and event["seq"] == 1
    assert parse_event(nested(DEFAULT_MAX_JSON_DEPTH + 1, seq=2), DEFAULT_MAX_JSON_DEPTH) == (
        None,
        "the event nests 101 levels deep, over the 100 an event may have (IA_MAX_JSON_DEPTH)",
    )
    assert parse_event(nested(4).decode(), 3)[1] == "the event nests 4 levels deep, over the 3 an event may have " + (
        "(IA_MAX_JSON_DEPTH)"
    ), "text is measured as bytes are"


@pytest.mark.parametrize("levels", [300, 1025, 5000])
def test_an_event_deeper_than_orjson_writes_or_reads_is_refused_for_its_depth(levels: int) -> None:
    event, problem = parse_event(nested(levels), DEFAULT_MAX_JSON_DEPTH)
    assert event is None and problem is not None
    assert problem.startswith(f"the event nests {levels} levels deep, over the 100")


def test_many_brackets_side_by_side_are_not_depth() -> None:
    wide = orjson.dumps({"items": [{"tags": ["a", "b"]} for _ in range(500)], "note": "[[[[{{{{" * 50})
    assert json_depth(wide) == 4
    event, problem = parse_event(wide, 4)
    assert problem is None and event is not None and len(event["items"]) == 500


def test_without_a_limit_nothing_is_measured() -> None:
    event, problem = parse_event(nested(300))
    assert problem is None and event is not None


def test_the_setting_defaults_to_the_limit_and_takes_no_less_than_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IA_MAX_JSON_DEPTH", raising=False)
    assert Settings().max_json_depth == DEFAULT_MAX_JSON_DEPTH == 100
    monkeypatch.setenv("IA_MAX_JSON_DEPTH", "40")
    assert Settings().max_json_depth == 40
    monkeypatch.setenv("IA_MAX_JSON_DEPTH", "0")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert settings_problems(raised.value) == [
        "IA_MAX_JSON_DEPTH: Input should be greater than or equal to 1 (got '0')"
    ]


# -- the worker's input ------------------------------------------------------------------------------------------------


def custom_processing(max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> InMemoryTopics:
    topics = InMemoryTopics(Pipeline(load_plan(ROOT / "pipelines" / "custom_processing.json")), fuse=True)
    topics.runner.max_json_depth = max_json_depth
    return topics


def feedback(seq: int, levels: int) -> bytes:
    return nested(levels, customer_id=f"c{seq}", seq=seq, text="Arrived late, but the support team sorted it out.")


async def test_an_event_one_level_too_deep_is_a_bad_input_letter_naming_its_depth_and_starts_no_run() -> None:
    topics = custom_processing()
    events = [feedback(0, 2), feedback(1, DEFAULT_MAX_JSON_DEPTH), feedback(2, DEFAULT_MAX_JSON_DEPTH + 1)]
    await topics.run([*events, feedback(3, 2)])
    [letter] = topics.dead_letters
    assert letter["kind"] == "bad_input" and letter["error"]["type"] == "BadInput"
    assert letter["error"]["message"] == (
        "the event nests 101 levels deep, over the 100 an event may have (IA_MAX_JSON_DEPTH)"
    )
    assert letter["run_id"] == run_id_for("cluster-a", topics.topology.input_topics[0], 0, 2)
    assert base64.b64decode(letter["raw"]) == events[2], "the record is kept as it came"
    assert sorted(record["input"]["seq"] for record in topics.outputs) == [0, 1, 3], "no run for the deep one"
    assert all(record["status"] == "success" for record in topics.outputs)
    assert [letter["run_id"] for letter in topics.letters_for_sink] == [letter["run_id"]]


async def test_the_stage_runner_takes_its_limit_from_the_worker_options() -> None:
    plan = load_plan(ROOT / "pipelines" / "custom_processing.json")
    assert WorkerOptions().max_json_depth == DEFAULT_MAX_JSON_DEPTH
    assert StageRunner.build(plan, ServiceRegistry(), "cluster-a").max_json_depth == DEFAULT_MAX_JSON_DEPTH
    assert StageRunner.build(plan, ServiceRegistry(), "cluster-a", max_json_depth=3).max_json_depth == 3
    topics = custom_processing(max_json_depth=3)
    await topics.run([feedback(0, 3), feedback(1, 4)])
    assert [r["input"]["seq"] for r in topics.outputs] == [0]
    assert topics.dead_letters[0]["error"]["message"].startswith("the event nests 4 levels deep, over the 3 ")


class Echo(Step):
    """Returns its whole input: a step that copies the event into its output."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"echo": data}


class Fails(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("cannot")


def copying(fail: bool) -> Pipeline:
    """a -> b and c (parallel, in stages of their own) -> j: every step copies its input, the join waits in the
    store, and with ``fail`` c fails for good (its dead letter embeds the envelope and the step's input)."""
    step = {"module": __name__}
    return Pipeline.from_dict(
        {
            "steps": [
                {"id": "a", "step_class": "Echo", **step},
                {"id": "b", "step_class": "Echo", **step},
                {"id": "c", "step_class": "Fails" if fail else "Echo", **step},
                {"id": "j", "step_class": "Echo", "inputs": {"whole": "{{ pipeline_input }}"}, **step},
            ],
            "flow": {
                "start_at": "a",
                "paths": [{"from": "a", "to": "b"}, {"from": "a", "to": "c"},
                          {"from": "b", "to": "j"}, {"from": "c", "to": "j"}],
            },
            "outputs": {"j": "{{ j.echo }}", "b": "{{ b }}", "input": "{{ pipeline_input }}"},
            "stream": {"id": "copying"},
        }
    )  # fmt: skip


class Measured(InMemoryTopics):
    """Keeps the deepest record produced (each line of an envelope on its own)."""

    deepest = 0

    def take(self, produced: Produced) -> list[Any]:
        for emission in [*produced.sends, *produced.join_state, *produced.join_markers]:
            for line in (emission.value or b"null").split(b"\n"):
                self.deepest = max(self.deepest, json_depth(line))
        return super().take(produced)


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "step fails"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_what_the_worker_makes_of_an_event_at_the_limit_is_4_levels_deeper_and_orjson_writes_it(
    fuse: bool, fail: bool
) -> None:
    topics = Measured(copying(fail), fuse)
    await topics.run([nested(DEFAULT_MAX_JSON_DEPTH, n=1)])
    [result] = topics.outputs
    assert result["status"] == ("failed" if fail else "success")
    assert (result["error"] or {}).get("type", "RuntimeError") == "RuntimeError"
    assert topics.join_writes > 0 and (not fail or topics.dead_letters[0]["kind"] == "step_failed")
    assert topics.deepest == DEFAULT_MAX_JSON_DEPTH + 4
    assert ORJSON_DEPTH - topics.deepest == 150, "the margin the setting's description gives"


async def test_events_up_to_250_deep_go_through_and_one_deeper_fails_its_run_without_raising() -> None:
    deepest_through = ORJSON_DEPTH - 4
    topics = Measured(copying(False), fuse=True)
    topics.runner.max_json_depth = 1000
    await topics.run([nested(deepest_through, n=1), nested(deepest_through + 1, n=2)])
    through, stopped = sorted(topics.outputs, key=lambda record: record["source"]["offset"])
    assert through["status"] == "success" and topics.deepest == ORJSON_DEPTH
    assert stopped["status"] == "failed" and stopped["error"]["type"] == "RecordNotEncodable"


# -- runs whose records cannot be encoded ------------------------------------------------------------------------------


class Done(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {f"{self.name}_done": True}


class Deep(Step):
    """Returns 253 levels: within what orjson writes, but not once the envelope wraps it."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"deep": nest(ORJSON_DEPTH - 2)}


def branches(left: str = "Done") -> Pipeline:
    """intake -> left and right (parallel, each in a stage of its own) -> decide: the join waits in the store."""
    step = {"module": __name__}
    return Pipeline.from_dict(
        {
            "steps": [
                {"id": "intake", "step_class": "Done", **step},
                {"id": "left", "step_class": left, **step},
                {"id": "right", "step_class": "Done", **step},
                {"id": "decide", "step_class": "Done", **step},
            ],
            "flow": {
                "start_at": "intake",
                "paths": [{"from": "intake", "to": "left"}, {"from": "intake", "to": "right"},
                          {"from": "left", "to": "decide"}, {"from": "right", "to": "decide"}],
            },
            "outputs": {"done": "{{ decide.decide_done }}"},
            "stream": {"id": "branches"},
        }
    )  # fmt: skip


def assert_failed_once_under_its_own_id(topics: InMemoryTopics, run_id: str) -> dict[str, Any]:
    [result] = topics.outputs
    assert (result["run_id"], result["status"]) == (run_id, "failed"), "one result, and no success"
    assert result["error"]["type"] == "RecordNotEncodable"
    assert "could not be encoded as JSON (Recursion limit reached)" in result["error"]["message"]
    assert result["outputs"] is None and result["trace"] == []
    assert [(letter["kind"], letter["run_id"]) for letter in topics.dead_letters] == [("run_failed", run_id)]
    assert [run.record["status"] for run in topics.finished] == ["failed"]
    assert topics.store.waiting() == 0, "the join is closed: the other branch's arrival is ignored"
    return result


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_join_state_that_cannot_be_encoded_fails_the_run_once_under_its_own_id(fuse: bool) -> None:
    """A 1,000-deep field (let in by a limit raised above what orjson writes) in the join state: the run used to
    end ``success`` from the join state held in memory, never written, with an ``internal_error`` letter under
    the id of the branch's envelope record."""
    topics = InMemoryTopics(branches(), fuse)
    topics.runner.max_json_depth = 2000
    await topics.run([nested(1000, order=1)])
    run_id = run_id_for("cluster-a", topics.topology.input_topics[0], 0, 0)
    result = assert_failed_once_under_its_own_id(topics, run_id)
    assert result["input"]["order"] == 1, "the input goes with the result as it came"


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_step_output_too_deep_to_travel_fails_the_run_once_under_its_own_id(fuse: bool) -> None:
    topics = InMemoryTopics(branches(left="Deep"), fuse)
    await topics.run([b'{"order": 2}'])
    assert_failed_once_under_its_own_id(topics, run_id_for("cluster-a", topics.topology.input_topics[0], 0, 0))


async def test_an_internal_error_on_an_envelope_is_filed_under_the_run_it_carries() -> None:
    topics = InMemoryTopics(branches(), fuse=True)
    input_topic = topics.topology.input_topics[0]
    sent = await topics.on_input(InputRecord(input_topic, 0, 5, 1_700_000_000_000, None, b'{"order": 3}'))
    envelope_record = topics._record(next(e for e in sent if e.topic in topics.topology.stage_topics()))
    envelope = Envelope.decode(envelope_record.value, "branches")
    stage_id = run_id_for("cluster-a", envelope_record.topic, envelope_record.partition, envelope_record.offset)
    assert envelope.run_id == run_id_for("cluster-a", input_topic, 0, 5) != stage_id
    out = Produced()
    topics.runner.internal_error(envelope_record, "Traceback ...\nKeyError: 'x'\n", out)
    not_an_envelope = envelope_record._replace(offset=99, value=b"garbage")
    topics.runner.internal_error(not_an_envelope, "Traceback ...\nKeyError: 'y'\n", out)
    an_input = InputRecord(input_topic, 1, 7, 0, b"k", b'{"order": 4}')
    topics.runner.internal_error(an_input, "Traceback ...\nKeyError: 'z'\n", out)
    ours, garbage, event = out.letters
    assert (ours["kind"], ours["run_id"], ours["key"]) == ("internal_error", envelope.run_id, envelope.key)
    assert ours["error"]["message"] == "KeyError: 'x'" and ours["source"]["topic"] == envelope_record.topic
    assert garbage["run_id"] == run_id_for("cluster-a", envelope_record.topic, envelope_record.partition, 99)
    assert (event["run_id"], event["key"]) == (run_id_for("cluster-a", input_topic, 1, 7), "k")
    assert out.sends[0].headers == (("ia-run-id", envelope.run_id.encode()),)


async def test_the_worker_files_an_envelope_it_failed_on_under_its_run_and_drops_what_it_half_produced() -> None:
    topics = InMemoryTopics(branches(), fuse=True)
    sent = await topics.on_input(InputRecord(topics.topology.input_topics[0], 0, 0, 0, None, b'{"order": 5}'))
    envelope_record = topics._record(next(e for e in sent if e.topic in topics.topology.stage_topics()))
    runner = topics.runner

    async def half_then_fail(record: Any, out: Produced) -> None:
        out.sends.append(sent[0])
        raise RuntimeError("a bug of ours")

    runner.on_envelope = half_then_fail  # type: ignore[method-assign]
    worker = Worker([], "kafka://unused:9092", ServiceRegistry())
    stage = topics.topology.stages[topics.topology.stage_of["left"]]
    out = Produced()
    await worker._run_record(_Route(runner, stage, False), envelope_record, out)  # type: ignore[arg-type]
    [letter] = out.letters
    assert (letter["kind"], letter["run_id"]) == (
        "internal_error",
        Envelope.decode(envelope_record.value, "branches").run_id,
    )
    assert [e.topic for e in out.sends] == [topics.topology.dlq_topic], "nothing half-produced goes out"
    assert worker.stats.internal_errors == 1
