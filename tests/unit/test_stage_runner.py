"""The streaming stage runner against the in-process runner, with topics replaced by an in-memory queue.

No broker here: these tests check the stage logic (fusing, topic routing, joins through the join store,
dead letters); the integration tests run the same over a real Kafka."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.graph import END
from ia_modules.pipeline.loader import load_plan
from streams.envelope import Envelope, partition_for
from streams.joins.store import JoinStore
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, Emission
from streams.kafka.records import InputRecord
from streams.sink.checkpoint import Produced
from streams.sink.results import FinishedRun
from streams.stage_runner import StageRunner
from streams.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "pipelines").glob("*.json"))


class InMemoryTopics:
    """Routes a runner's emissions back into it in order, like topics would, and keeps what reaches the end."""

    def __init__(self, pipeline: Pipeline, fuse: bool, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.plan = pipeline.plan
        self.topology = build_topology(self.plan, fuse=fuse)
        expected = {node: len(self.plan.graph.incoming[node]) for node in self.topology.joins}
        self.store = JoinStore(self.topology.joins_topic, expected, max_record_bytes)
        steps = pipeline.steps_for(None)
        self.runner = StageRunner(self.plan, self.topology, steps, self.store, "cluster-a", max_record_bytes)
        self.carried: dict[str, int] = {}
        self.outputs: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.offsets: dict[str, int] = {}
        self.join_writes = 0
        self.finished: list[FinishedRun] = []
        self.letters_for_sink: list[dict[str, Any]] = []

    async def on_input(self, record: InputRecord) -> list[Emission]:
        produced = Produced()
        await self.runner.on_input(record, produced)
        return self.take(produced)

    async def on_envelope(self, record: InputRecord) -> list[Emission]:
        produced = Produced()
        await self.runner.on_envelope(record, produced)
        return self.take(produced)

    def take(self, produced: Produced) -> list[Emission]:
        """What a record produced: its records to route on; join writes are counted, rows kept for the sink."""
        self.join_writes += len(produced.join_state) + len(produced.join_markers)
        self.finished.extend(produced.runs)
        self.letters_for_sink.extend(produced.letters)
        return produced.sends

    def _record(self, emission: Emission) -> InputRecord:
        offset = self.offsets.get(emission.topic, 0)
        self.offsets[emission.topic] = offset + 1
        return InputRecord(emission.topic, emission.partition, offset, 1_700_000_000_000, emission.key, emission.value)

    async def run(self, events: list[bytes], partition: int = 0) -> None:
        queue: deque[Emission] = deque()
        for offset, raw in enumerate(events):
            record = InputRecord(self.topology.input_topics[0], partition, offset, 1_700_000_000_000, None, raw)
            queue.extend(await self.on_input(record))
            while queue:
                emission = queue.popleft()
                self.carried[emission.topic] = self.carried.get(emission.topic, 0) + 1
                if emission.topic == self.topology.output_topic:
                    self.outputs.append(orjson.loads(emission.value or b"null"))
                elif emission.topic == self.topology.dlq_topic:
                    self.dead_letters.append(orjson.loads(emission.value or b"null"))
                elif emission.topic in self.topology.stage_topics():
                    queue.extend(await self.on_envelope(self._record(emission)))


def sample_events(pipeline_id: str) -> list[bytes]:
    lines = (ROOT / "pipelines" / f"{pipeline_id}.events.jsonl").read_text().splitlines()
    return [line.encode() for line in lines if line.strip()]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("pipeline_id", SHIPPED)
async def test_every_shipped_pipeline_streams_to_the_same_outputs_as_in_process(pipeline_id: str, fuse: bool) -> None:
    pipeline = Pipeline(load_plan(ROOT / "pipelines" / f"{pipeline_id}.json"))
    events = sample_events(pipeline_id)
    topics = InMemoryTopics(pipeline, fuse)
    await topics.run(events)
    assert len(topics.outputs) == len(events), "every event gets exactly one result record"
    by_offset = {record["source"]["offset"]: record for record in topics.outputs}
    for offset, raw in enumerate(events):
        expected = await pipeline.run(json.loads(raw))
        streamed = by_offset[offset]
        assert (streamed["status"], streamed["outputs"]) == (expected.status, expected.outputs), raw
    assert topics.store.waiting() == 0, "no join is left waiting"
    stage_topics = topics.topology.stage_topics()
    assert sum(topics.carried.get(topic, 0) for topic in stage_topics) > 0, "routing went over stage topics"
    failed = [r for r in topics.outputs if r["status"] == "failed"]
    assert len(topics.dead_letters) >= len(failed)


async def test_unfused_every_step_has_its_own_stage_topic() -> None:
    plan = load_plan(ROOT / "pipelines" / "custom_processing.json")
    fused, unfused = build_topology(plan, fuse=True), build_topology(plan, fuse=False)
    assert len(unfused.stages) == len(plan.steps) > len(fused.stages)
    assert fused.stages["data_loader"].steps == ("data_loader", "data_cleaner", "quality_checker")
    assert unfused.stage_topics() == [f"ia.custom_processing.{step}" for step in plan.steps]


async def test_a_bad_input_becomes_a_dead_letter_with_its_bytes_and_nothing_else_is_lost() -> None:
    pipeline = Pipeline(load_plan(ROOT / "pipelines" / "custom_processing.json"))
    topics = InMemoryTopics(pipeline, fuse=True)
    good = b'{"customer_id": "c1", "text": "A short but perfectly clear sentence about shipping."}'
    await topics.run([b"not json", b"[1, 2]", good])
    assert [letter["kind"] for letter in topics.dead_letters] == ["bad_input", "bad_input"]
    first, second = topics.dead_letters
    assert first["error"]["message"].startswith("invalid JSON: ")
    assert second["error"]["message"] == "an event must be a JSON object, not list"
    assert orjson.loads(__import__("base64").b64decode(second["raw"])) == [1, 2]
    assert [record["source"]["offset"] for record in topics.outputs] == [2]


async def test_an_event_written_over_several_lines_travels_every_hop_as_the_same_object() -> None:
    """The envelope is three lines, so an event's own bytes go into it only when they are one line; an
    event pretty-printed over several lines is encoded again. Either way every hop and the result see it."""
    pipeline = Pipeline(load_plan(ROOT / "pipelines" / "custom_processing.json"))
    topics = InMemoryTopics(pipeline, fuse=True)
    event = {"customer_id": "c1", "text": "Arrived late, but the support team sorted it out within the hour."}
    pretty, spaced = (
        json.dumps(event, indent=2).encode(),
        b'  { "customer_id" : "c1",  "text": ' + json.dumps(event["text"]).encode() + b" }  ",
    )
    assert b"\n" in pretty and b"\n" not in spaced
    await topics.run([pretty, spaced])
    expected = await pipeline.run(event)
    assert topics.carried[topics.topology.stages["output_formatter"].topic] == 2, "both went through three hops"
    for record in topics.outputs:
        assert (record["status"], record["outputs"], record["input"]) == (expected.status, expected.outputs, event)


async def test_a_step_that_fails_for_good_writes_a_dead_letter_that_resumes_at_it() -> None:
    pipeline = Pipeline(load_plan(ROOT / "pipelines" / "resilient_ingest.json"))
    topics = InMemoryTopics(pipeline, fuse=True)
    events = sample_events("resilient_ingest")
    await topics.run(events)
    step_letters = [letter for letter in topics.dead_letters if letter["kind"] == "step_failed"]
    failed_runs = {r["run_id"] for r in topics.outputs if r["status"] == "failed"}
    assert step_letters and {letter["run_id"] for letter in step_letters} == failed_runs
    letter = step_letters[0]
    envelope = Envelope.decode(orjson.dumps(letter["envelope"]), "resilient_ingest")
    assert envelope.resume_at == letter["step"] and letter["error"]["traceback"].startswith("Traceback")
    assert all(entry["step"] != letter["step"] for entry in envelope.trace())


async def test_a_join_that_waits_too_long_fails_its_run_and_the_run_still_ends() -> None:
    pipeline = Pipeline(load_plan(ROOT / "pipelines" / "order_enrichment.json"))
    topics = InMemoryTopics(pipeline, fuse=True)
    event = sample_events("order_enrichment")[0]
    record = InputRecord(topics.topology.input_topics[0], 0, 0, 1_700_000_000_000, None, event)
    emissions = await topics.on_input(record)
    start_topic = topics.topology.start.topic
    while [e.topic for e in emissions] == [start_topic]:  # forwarded to the partition its key maps to
        emissions = await topics.on_envelope(topics._record(emissions[0]))
    # deliver only the first branch's envelope: the join waits for the other one
    branches = [e for e in emissions if e.topic in topics.topology.stage_topics()]
    assert len(branches) == 2
    await topics.on_envelope(topics._record(branches[0]))
    assert topics.store.waiting() == 1
    produced = Produced()
    await topics.runner.expire_joins(0.0, produced)
    expired = produced.sends
    results = [orjson.loads(e.value or b"") for e in expired if e.topic == topics.topology.output_topic]
    assert len(results) == 1 and results[0]["status"] == "failed"
    assert results[0]["error"]["type"] == "JoinTimeout"
    assert any(e.topic == topics.topology.dlq_topic for e in expired)
    assert topics.store.waiting() == 0
    assert END in topics.topology.needed_outputs


class Flaky(Step):
    """Fails while ``Flaky.broken`` is set: a fault that is fixed before the run is replayed."""

    broken = True

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        if Flaky.broken:
            raise RuntimeError("the pricing service is down")
        return {"price": 42}


class Constant(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {f"{self.name}_done": True}


def replay_of(letter: dict[str, Any]) -> bytes:
    """What ``ia-modules dlq replay`` puts back on the stage topic."""
    envelope = dict(letter["envelope"])
    envelope["replay"] = envelope.get("replay", 0) + 1
    envelope["replay_from"] = letter["resume_at"]
    return orjson.dumps(envelope)


def replay_pipeline(conditional: bool) -> Pipeline:
    """intake -> pricing and risk -> decide; ``conditional``: risk's path is never taken (its skip is carried
    to the join in the run's envelope), else both branches run (the join waits in the join store)."""
    step = {"module": __name__}
    never = {"type": "expression", "config": {"source": "pipeline_input.order", "operator": "equals", "value": -1}}
    return Pipeline.from_dict(
        {
            "steps": [
                {"id": "intake", "step_class": "Constant", **step},
                {"id": "pricing", "step_class": "Flaky", **step},
                {"id": "risk", "step_class": "Constant", **step},
                {"id": "decide", "step_class": "Constant", **step},
            ],
            "flow": {
                "start_at": "intake",
                "paths": [
                    {"from": "intake", "to": "pricing"},
                    {"from": "intake", "to": "risk", **({"condition": never} if conditional else {})},
                    {"from": "pricing", "to": "decide"},
                    {"from": "risk", "to": "decide"},
                ],
            },
            "outputs": {
                "price": "{{ pricing.price }}",
                "risk": "{{ risk.risk_done }}",
                "done": "{{ decide.decide_done }}",
            },
            "stream": {"id": "replayed"},
        }
    )


@pytest.mark.parametrize("conditional", [False, True], ids=["parallel", "conditional"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_run_replayed_from_its_dead_letter_keeps_the_branches_that_did_not_fail(
    fuse: bool, conditional: bool
) -> None:
    topics = InMemoryTopics(replay_pipeline(conditional), fuse)
    Flaky.broken = True
    await topics.run([b'{"order": 1}'])
    [failed] = topics.outputs
    assert failed["status"] == "failed" and failed["error"]["step"] == "pricing"
    [letter] = [letter for letter in topics.dead_letters if letter["kind"] == "step_failed"]
    assert (topics.join_writes == 0) is conditional, "a skipped branch's token travels in the envelope"
    Flaky.broken = False
    stage_topic = topics.topology.stages[topics.topology.stage_of["pricing"]].topic
    partition = partition_for(letter["envelope"]["key"].encode(), topics.topology.partitions)
    queue = deque(await topics.on_envelope(InputRecord(stage_topic, partition, 99, 0, None, replay_of(letter))))
    while queue:
        emission = queue.popleft()
        if emission.topic == topics.topology.output_topic:
            topics.outputs.append(orjson.loads(emission.value or b"null"))
        elif emission.topic in topics.topology.stage_topics():
            queue.extend(await topics.on_envelope(topics._record(emission)))
    assert len(topics.outputs) == 2
    again = topics.outputs[1]
    assert again["run_id"] == failed["run_id"]
    assert again["status"] == "success" and again["error"] is None
    assert again["outputs"] == {"price": 42, "risk": None if conditional else True, "done": True}
    assert [e["step"] for e in again["trace"]].count("risk") == 1, "the branch that did not fail ran once"


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_conditional_fan_in_keeps_no_join_state_and_parallel_branches_do(fuse: bool) -> None:
    conditional = InMemoryTopics(Pipeline(load_plan(ROOT / "pipelines" / "custom_processing.json")), fuse)
    await conditional.run(sample_events("custom_processing"))
    assert conditional.join_writes == 0, "the branch not taken is carried to the join, not stored"
    parallel = InMemoryTopics(Pipeline(load_plan(ROOT / "pipelines" / "order_enrichment.json")), fuse)
    events = sample_events("order_enrichment")
    await parallel.run(events)
    assert parallel.join_writes >= len(events), "branches in different stages meet in the join store"
    assert parallel.store.waiting() == conditional.store.waiting() == 0
    assert conditional.store.empty, "nothing for the join-timeout sweep to do: it does not stall the worker"
    assert not parallel.store.empty, "the fired joins' markers are kept until the sweep purges them"


class Echo(Step):
    """Returns its own marker and the input's ``n``: enough to see which steps ran and what they saw."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {self.name: data.get("n"), "seen": sorted(k for k in data if k != "n")}


def _when(operator: str, value: int) -> dict[str, Any]:
    return {"type": "expression", "config": {"source": "pipeline_input.n", "operator": operator, "value": value}}


GRAPHS: dict[str, list[dict[str, Any]]] = {
    # a three-way fork whose third path is taken only for n > 5: the skip travels with both live branches
    "three_way_join": [
        {"from": "a", "to": "b"},
        {"from": "a", "to": "c"},
        {"from": "a", "to": "d", "condition": _when("greater_than", 5)},
        {"from": "b", "to": "j"},
        {"from": "c", "to": "j"},
        {"from": "d", "to": "j"},
    ],
    # two conditional last steps: the end node is the join, and the token not taken is carried to it
    "conditional_ends": [
        {"from": "a", "to": "b", "condition": _when("greater_than", 5)},
        {"from": "a", "to": "c", "condition": _when("less_than_or_equal", 5)},
    ],
    # a fork inside a branch of another fork, each with a branch not taken
    "nested_forks": [
        {"from": "a", "to": "b", "condition": _when("greater_than", 2)},
        {"from": "a", "to": "c", "condition": _when("less_than_or_equal", 2)},
        {"from": "b", "to": "d", "condition": _when("greater_than", 7)},
        {"from": "b", "to": "e", "condition": _when("less_than_or_equal", 7)},
        {"from": "d", "to": "f"},
        {"from": "e", "to": "f"},
        {"from": "f", "to": "j"},
        {"from": "c", "to": "j"},
    ],
}


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
async def test_carried_and_stored_join_tokens_give_the_in_process_results(graph: str, fuse: bool) -> None:
    paths = GRAPHS[graph]
    steps = sorted({p["from"] for p in paths} | {p["to"] for p in paths})
    pipeline = Pipeline.from_dict(
        {
            "steps": [{"id": s, "step_class": "Echo", "module": __name__} for s in steps],
            "flow": {"start_at": "a", "paths": paths},
            "stream": {"id": graph},
        }
    )
    events = [orjson.dumps({"n": n}) for n in range(10)]
    topics = InMemoryTopics(pipeline, fuse)
    await topics.run(events)
    assert len(topics.outputs) == len(events) and not topics.dead_letters
    for record in topics.outputs:
        expected = await pipeline.run(record["input"])
        assert (record["status"], record["outputs"]) == (expected.status, expected.outputs), record["input"]
        ran = sorted(e["step"] for e in record["trace"] if e["status"] == "ok")
        assert ran == sorted(e["step"] for e in expected.trace if e["status"] == "ok"), record["input"]
        assert sorted(e["step"] for e in record["trace"]) == steps, "every step has one trace entry"
    assert topics.store.waiting() == 0, "every join fired"
