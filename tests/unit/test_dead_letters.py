"""streams/sink/dead_letters.py: the dead letters a pipeline makes (one per kind, in the shape of
``ia_modules.pipeline.wire.dead_letter``), what goes on the dead-letter topic, and replaying them.

``DeadLetters`` appends each letter to ``Produced.letters`` (for the ``dead_letters`` table) and its record to
``Produced.sends`` (for ``ia.<p>.dlq``). Replay is handed a database and a producer; here they are stand-ins.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.kernel import RunState, StepFailure
from ia_modules.pipeline.wire import dead_letter, run_error, run_id_for, source_of
from streams.envelope import Envelope, partition_for
from streams.kafka.producer import Emission
from streams.kafka.records import InputRecord
from streams.sink import dead_letters as dead_letters_module
from streams.sink.checkpoint import Produced
from streams.sink.dead_letters import (
    LETTER_BY_ID,
    LETTERS_TO_REPLAY,
    MARK_REPLAYED,
    DeadLetters,
    ReplayOutcome,
    list_letters,
    replay_emission,
    replay_letters,
    replay_problem,
)
from streams.topology import Topology, build_topology
from tests.unit.kafka_stand_ins import Journal, StandInProducer
from tests.unit.sample_steps import MODULE

NOW_MS = 1_795_000_000_000
DLQ = "ia.shop.dlq"
CLUSTER = "cluster-a"
SOURCE = source_of("ia.shop.input", 3, 42, 1_700_000_000_000)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letters_module, "now_ms", lambda: NOW_MS)


def pipeline() -> Pipeline:
    """load -> check -> enrich."""
    step = {"step_class": "ConstStep", "module": MODULE}
    return Pipeline.from_dict(
        {
            "steps": [{"id": "load", **step}, {"id": "check", **step}, {"id": "enrich", **step}],
            "flow": {
                "start_at": "load",
                "paths": [{"from": "load", "to": "check"}, {"from": "check", "to": "enrich"}],
            },
            "stream": {"id": "shop", "partitions": 6},
        }
    )


def letters(max_bytes: int = 1_000_000) -> DeadLetters:
    return DeadLetters("shop", DLQ, CLUSTER, max_bytes)


def resume_envelope(input_value: dict[str, Any] | None = None) -> Envelope:
    return Envelope(
        run_id="run-1",
        pipeline="shop",
        version="1.0.0",
        key="cust-7",
        input=input_value or {"text": "hi"},
        resume_at="check",
        outputs={"load": {"n": 1}},
        trace_json=b'[{"step":"load","status":"ok"}]',
        source=SOURCE,
        started_ms=NOW_MS - 50,
    )


def failure(input_value: dict[str, Any] | None = None) -> StepFailure:
    return StepFailure("check", "ValueError", "bad value", 3, "Traceback...\nValueError: bad value", input_value or {})


def the_one(out: Produced) -> tuple[dict[str, Any], Emission]:
    [letter] = out.letters
    [emission] = out.sends
    assert out.join_state == [] and out.join_markers == [] and out.runs == []
    return letter, emission


# -- each kind ---------------------------------------------------------------------------------------------------------


def test_step_failed_holds_the_run_to_resume_at_the_failed_step() -> None:
    run = RunState(pipeline().plan, "run-1", {"text": "hi"})
    resume = resume_envelope()
    out = Produced()
    letters().step_failed(run, resume, failure({"n": 1, "text": "hi"}), 4, out)
    letter, emission = the_one(out)
    assert letter == dead_letter(
        "step_failed",
        run_id="run-1",
        pipeline="shop",
        error=failure().as_error(),
        input={"n": 1, "text": "hi"},
        envelope=resume.as_dict(),
        source=SOURCE,
        created_ms=NOW_MS,
    )
    assert letter["kind"] == "step_failed" and letter["step"] == "check" and letter["resume_at"] == "check"
    assert letter["attempts"] == 3
    assert letter["error"] == {"type": "ValueError", "message": "bad value", "traceback": failure().traceback}
    assert letter["envelope"]["outputs"] == {"load": {"n": 1}} and letter["envelope"]["resume_at"] == "check"
    assert "raw" not in letter and "key" not in letter
    assert emission == Emission(DLQ, 4, b"cust-7", orjson.dumps(letter), (("ia-run-id", b"run-1"),))


def test_run_failed_has_the_run_error_and_nothing_to_resume_from() -> None:
    run = RunState(pipeline().plan, "run-1", {"text": "hi"})
    run.fail(run_error("JoinTimeout", "join 'merge' waited 300 s"))
    out = Produced()
    letters().run_failed(run, resume_envelope(), 1, out)
    letter, emission = the_one(out)
    assert letter == dead_letter(
        "run_failed",
        run_id="run-1",
        pipeline="shop",
        error=run_error("JoinTimeout", "join 'merge' waited 300 s"),
        source=SOURCE,
        created_ms=NOW_MS,
    )
    assert (letter["step"], letter["input"], letter["envelope"], letter["resume_at"]) == (None, None, None, None)
    assert letter["error"]["type"] == "JoinTimeout"
    assert (emission.topic, emission.partition, emission.key) == (DLQ, 1, b"cust-7")
    assert emission.headers == (("ia-run-id", b"run-1"),)


def test_run_failed_without_an_error_says_unknown() -> None:
    out = Produced()
    letters().run_failed(RunState(pipeline().plan, "run-1", {}), resume_envelope(), 0, out)
    letter, _ = the_one(out)
    assert letter["error"] == {"type": "Unknown", "message": "", "traceback": None}


def test_bad_input_keeps_the_record_its_position_and_its_key() -> None:
    record = InputRecord("ia.shop.input", 3, 42, 1_700_000_000_000, b"cust-9", b"{not json")
    out = Produced()
    letters().bad_input(record, "invalid JSON: unexpected character", out)
    letter, emission = the_one(out)
    run_id = run_id_for(CLUSTER, "ia.shop.input", 3, 42)
    assert letter == dead_letter(
        "bad_input",
        run_id=run_id,
        pipeline="shop",
        error=run_error("BadInput", "invalid JSON: unexpected character"),
        source=SOURCE,
        created_ms=NOW_MS,
        raw=b"{not json",
        key="cust-9",
    )
    assert base64.b64decode(letter["raw"]) == b"{not json" and letter["key"] == "cust-9"
    assert letter["error"]["type"] == "BadInput" and letter["step"] is None
    assert emission == Emission(DLQ, 3, b"cust-9", orjson.dumps(letter), (("ia-run-id", run_id.encode()),))


def test_bad_input_without_a_key_is_keyed_by_its_run_id_and_keeps_empty_bytes() -> None:
    record = InputRecord("ia.shop.input", 0, 7, 1_700_000_000_000, None, None)
    out = Produced()
    letters().bad_input(record, "empty message (null value)", out)
    letter, emission = the_one(out)
    run_id = run_id_for(CLUSTER, "ia.shop.input", 0, 7)
    assert letter["key"] == run_id and emission.key == run_id.encode()
    assert letter["raw"] == ""


def test_internal_error_names_the_last_line_of_the_traceback_and_keeps_it_whole() -> None:
    trace = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'resume_at'\n"
    record = InputRecord("ia.shop.check", 5, 8, 1_700_000_000_000, b"cust-1", b"\x00\xff")
    out = Produced()
    letters().internal_error(record, trace, out)
    letter, emission = the_one(out)
    assert letter["kind"] == "internal_error"
    assert letter["error"] == {"type": "InternalError", "message": "KeyError: 'resume_at'", "traceback": trace}
    assert base64.b64decode(letter["raw"]) == b"\x00\xff"
    assert letter["source"] == source_of("ia.shop.check", 5, 8, 1_700_000_000_000)
    assert (emission.partition, emission.key) == (5, b"cust-1")


# -- too large ---------------------------------------------------------------------------------------------------------


def test_a_letter_over_the_limit_drops_envelope_and_input_and_says_so() -> None:
    big = {"text": "x" * 5_000}
    run = RunState(pipeline().plan, "run-1", big)
    out = Produced()
    letters(max_bytes=4_000).step_failed(run, resume_envelope(big), failure(big), 2, out)
    letter, emission = the_one(out)
    assert letter["envelope"] is None and letter["input"] is None
    assert letter["omitted"]["fields"] == ["envelope", "input"]
    assert letter["omitted"]["bytes"] > 10_000
    assert letter["error"]["message"] == "bad value" and letter["step"] == "check" and letter["run_id"] == "run-1"
    assert emission.value is not None and len(emission.value) <= 4_000
    assert orjson.loads(emission.value) == letter


def test_a_bad_input_over_the_limit_drops_its_bytes() -> None:
    record = InputRecord("ia.shop.input", 0, 1, 1_700_000_000_000, b"k", b"[" * 6_000)
    out = Produced()
    letters(max_bytes=4_000).bad_input(record, "an event must be a JSON object, not list", out)
    letter, emission = the_one(out)
    assert letter["raw"] is None and letter["omitted"]["fields"] == ["raw"]
    assert letter["error"]["message"] == "an event must be a JSON object, not list"
    assert emission.value is not None and orjson.loads(emission.value) == letter


def test_a_letter_within_the_limit_omits_nothing() -> None:
    out = Produced()
    letters(max_bytes=4_000).step_failed(
        RunState(pipeline().plan, "run-1", {}), resume_envelope(), failure({"n": 1}), 0, out
    )
    letter, _ = the_one(out)
    assert "omitted" not in letter and letter["input"] == {"n": 1}


# -- replay ------------------------------------------------------------------------------------------------------------


def step_failed_letter(resume_at: str = "check", replay: int = 0) -> dict[str, Any]:
    envelope = resume_envelope()
    envelope.resume_at = resume_at
    envelope.replay = replay
    return dead_letter(
        "step_failed",
        run_id="run-1",
        pipeline="shop",
        error=run_error("ValueError", "bad value", step=resume_at, attempts=3),
        input={},
        envelope=envelope.as_dict(),
        source=SOURCE,
        created_ms=NOW_MS,
    )


def topology() -> Topology:
    """Unfused: each step has its own stage topic."""
    return build_topology(pipeline().plan, fuse=False)


def test_replay_puts_the_envelope_on_the_topic_of_the_stage_holding_the_step() -> None:
    shop = topology()
    emission = replay_emission(step_failed_letter("enrich", replay=1), shop)
    assert emission.topic == shop.stages[shop.stage_of["enrich"]].topic == "ia.shop.enrich"
    assert emission.key == b"cust-7" and emission.partition == partition_for(b"cust-7", 6)
    assert emission.headers == (("ia-run-id", b"run-1"),)
    assert emission.value is not None
    replayed = Envelope.decode(emission.value, "shop")
    assert (replayed.run_id, replayed.resume_at, replayed.replay, replayed.replay_from) == (
        "run-1",
        "enrich",
        2,
        "enrich",
    )
    assert replayed.outputs == {"load": {"n": 1}} and replayed.input == {"text": "hi"}


def test_what_cannot_be_replayed_says_why() -> None:
    shop = topology()
    letter = step_failed_letter()
    assert replay_problem({}, letter, shop) is None
    assert replay_problem({"replayed_at": "2026-01-02 03:04:05"}, letter) == "already replayed at 2026-01-02 03:04:05"
    bad_input = dead_letter(
        "bad_input", run_id="r", pipeline="shop", error=run_error("BadInput", "invalid JSON"), source=None, created_ms=0
    )
    assert replay_problem({}, bad_input) == "not replayable (bad_input): invalid JSON"
    gone = step_failed_letter("removed_step")
    assert replay_problem({}, gone, shop) == "step 'removed_step' is no longer in the pipeline"


@dataclass
class StandInDatabase:
    """DatabaseManager.fetch_all / fetch_one / execute, over rows of the dead_letters table."""

    journal: Journal
    rows: list[dict[str, Any]]
    executed: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    async def fetch_all(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        if sql == LETTERS_TO_REPLAY:
            return [dict(r) for r in self.rows if r["replayed_at"] is None]
        return [dict(r) for r in self.rows]

    async def fetch_one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        assert sql == LETTER_BY_ID
        return next((dict(r) for r in self.rows if r["id"] == params[1]), None)

    async def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self.executed.append((sql, params))
        self.journal.append(("mark replayed", params[0]))


def row(letter_id: int, letter: dict[str, Any], replayed_at: str | None = None) -> dict[str, Any]:
    return {
        "id": letter_id,
        "kind": letter["kind"],
        "step": letter["step"],
        "payload": orjson.dumps(letter).decode(),
        "replayed_at": replayed_at,
    }


async def test_replay_marks_each_letter_replayed_only_once_its_envelope_was_acknowledged() -> None:
    journal = Journal()
    bad = dead_letter(
        "bad_input", run_id="r-bad", pipeline="shop", error=run_error("BadInput", "nope"), source=None, created_ms=0
    )
    db = StandInDatabase(journal, [row(1, step_failed_letter()), row(2, bad), row(3, step_failed_letter("enrich"))])
    producer = StandInProducer(journal)
    outcomes = await replay_letters(cast(Any, db), cast(Any, producer), "shop", topology(), None)
    assert outcomes == [
        ReplayOutcome(1, "run-1", "ia.shop.check"),
        ReplayOutcome(2, "r-bad", None, "not replayable (bad_input): nope"),
        ReplayOutcome(3, "run-1", "ia.shop.enrich"),
    ]
    assert [e[0] for e in journal] == ["send", "ack", "mark replayed", "send", "ack", "mark replayed"]
    assert [params for _, params in db.executed] == [(1,), (3,)]
    assert {sql for sql, _ in db.executed} == {MARK_REPLAYED}


async def test_replay_of_one_letter_that_does_not_exist_says_so() -> None:
    db = StandInDatabase(Journal(), [])
    outcomes = await replay_letters(cast(Any, db), cast(Any, StandInProducer()), "shop", topology(), 9)
    assert outcomes == [ReplayOutcome(9, None, None, "no dead letter 9 of pipeline shop")]


async def test_a_letter_whose_replay_was_not_acknowledged_is_not_marked() -> None:
    journal = Journal()
    db = StandInDatabase(journal, [row(1, step_failed_letter())])
    producer = StandInProducer(journal, auto_acknowledge=False)

    async def refuse(batch: Any, topic: str, *, partition: int) -> Any:
        future = await StandInProducer.send_batch(producer, batch, topic, partition=partition)
        producer.acknowledge(producer.handed[-1], error=ConnectionError("broker down"))
        return future

    producer.send_batch = refuse  # type: ignore[method-assign]
    with pytest.raises(ConnectionError, match="broker down"):
        await replay_letters(cast(Any, db), cast(Any, producer), "shop", topology(), 1)
    assert db.executed == []


async def test_list_letters_says_which_can_be_replayed_and_why_not() -> None:
    rows = [row(2, step_failed_letter(), replayed_at="2026-01-02 03:04:05"), row(1, step_failed_letter())]
    listed = await list_letters(cast(Any, StandInDatabase(Journal(), rows)), "shop")
    assert [(r["id"], r["replayable"]) for r in listed] == [(2, False), (1, True)]
    assert listed[0]["not_replayable"] == "already replayed at 2026-01-02 03:04:05"
    assert "not_replayable" not in listed[1]
