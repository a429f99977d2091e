"""streams/sink/checkpoint.py: the order in which a fetched batch's work becomes durable, holding it while the
database is away, and the dead letter of a run whose row the database refuses.

``Committer`` is handed a producer, a consumer and a results sink; here they are stand-ins that record what they
are asked in one journal (tests/unit/kafka_stand_ins.py), so each test reads the order of events across them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from ia_modules.pipeline.compiler import PipelinePlan, compile_pipeline
from ia_modules.pipeline.wire import dead_letter, run_error
from streams.kafka.producer import Emission, SendQueue
from streams.metrics import WorkerMetrics, render
from streams.metrics.exposition import families_registry
from streams.metrics.reading import Page
from streams.sink import checkpoint as checkpoint_module
from streams.sink.checkpoint import (
    INITIAL_RETRY_DELAY_S,
    MAX_RETRY_DELAY_S,
    Checkpoint,
    Committer,
    Produced,
    RecordPart,
)
from streams.sink.dead_letters import DeadLetters
from streams.sink.results import FinishedRun
from tests.unit.kafka_stand_ins import Journal, StandInConsumer, StandInProducer, StandInSink

IN_0 = TopicPartition("ia.p.in", 0)
IN_1 = TopicPartition("ia.p.in", 1)
STAGE_0 = TopicPartition("ia.p.stage.b", 0)
OUT = "ia.p.out"
JOINS = "ia.p.joins"
DLQ = "ia.p.dlq"


def finished(run_id: str) -> FinishedRun:
    return FinishedRun({"run_id": run_id, "pipeline": "p", "status": "success"}, 1_700_000_000_000)


def letter(run_id: str) -> dict[str, Any]:
    return {"kind": "step_failed", "run_id": run_id, "pipeline": "p"}


def checkpoint(
    offsets: dict[TopicPartition, int],
    *,
    runs: tuple[str, ...] = (),
    letters: tuple[str, ...] = (),
    partial: bool = False,
    fired: bool = False,
) -> Checkpoint:
    """A batch that produced a result per run, a dead letter per letter, maybe join state and a join marker."""
    produced = Produced()
    produced.sends = [Emission(OUT, 0, r.encode(), f"result {r}".encode()) for r in runs]
    produced.sends += [Emission(DLQ, 0, r.encode(), f"letter {r}".encode()) for r in letters]
    if partial:
        produced.join_state = [Emission(JOINS, 0, b"j-partial", b"partial")]
    if fired:
        produced.join_markers = [Emission(JOINS, 0, b"j-fired", b"marker")]
    produced.runs = [finished(r) for r in runs]
    produced.letters = [letter(r) for r in letters]
    return Checkpoint(produced, dict(offsets), consumed=sum(offsets.values()))


class Clock:
    """``time.monotonic`` as streams.sink.checkpoint reads it, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(
        checkpoint_module, "time", SimpleNamespace(monotonic=clock, perf_counter=time.perf_counter, time=time.time)
    )
    return clock


@dataclass
class Parts:
    journal: Journal
    producer: StandInProducer
    consumer: StandInConsumer
    sink: StandInSink
    committer: Committer


@pytest.fixture
def make() -> Callable[..., Parts]:
    def build(
        assigned: tuple[TopicPartition, ...] = (IN_0, IN_1),
        with_sink: bool = True,
        metrics: WorkerMetrics | None = None,
    ) -> Parts:
        journal = Journal()
        producer = StandInProducer(journal)
        consumer = StandInConsumer(journal, set(assigned))
        sink = StandInSink(journal)
        committer = Committer(cast(Any, producer), cast(Any, consumer), cast(Any, sink) if with_sink else None, metrics)
        return Parts(journal, producer, consumer, sink, committer)

    return build


# -- Produced ----------------------------------------------------------------------------------------------------------


def test_produced_extend_keeps_each_kind_in_order() -> None:
    first = checkpoint({}, runs=("r1",), letters=("l1",), partial=True, fired=True).produced
    second = checkpoint({}, runs=("r2",), letters=("l2",), partial=True, fired=True).produced
    merged = Produced()
    merged.extend(first)
    merged.extend(second)
    assert merged.sends == [*first.sends, *second.sends]
    assert merged.join_state == [*first.join_state, *second.join_state]
    assert merged.join_markers == [*first.join_markers, *second.join_markers]
    assert merged.runs == [*first.runs, *second.runs]
    assert merged.letters == [*first.letters, *second.letters]


def test_to_send_is_the_sends_then_the_join_state_but_never_the_markers() -> None:
    produced = checkpoint({}, runs=("r1",), partial=True, fired=True).produced
    assert produced.to_send() == [*produced.sends, *produced.join_state]
    assert not set(produced.join_markers) & set(produced.to_send())
    only_sends = checkpoint({}, runs=("r1",)).produced
    assert only_sends.to_send() == only_sends.sends


@pytest.mark.parametrize("kind", ["sends", "join_state", "join_markers", "runs", "letters"])
def test_produced_is_true_when_anything_of_any_kind_is_in_it(kind: str) -> None:
    produced = Produced()
    assert not produced
    getattr(produced, kind).append(object())
    assert produced


def test_a_record_part_takes_back_only_what_its_record_added_and_not_join_state() -> None:
    out = checkpoint({}, runs=("before",), letters=("before-letter",), partial=True).produced
    earlier = (list(out.sends), list(out.runs), list(out.letters))
    part = RecordPart(out)
    added = checkpoint({}, runs=("mine",), letters=("my-letter",), partial=True, fired=True).produced
    out.extend(added)
    part.replace()
    assert (out.sends, out.runs, out.letters) == earlier
    assert out.join_state == [*checkpoint({}, partial=True).produced.join_state, *added.join_state]
    assert out.join_markers == added.join_markers, "a join's state changes stand"


# -- the commit order --------------------------------------------------------------------------------------------------


async def test_commit_sends_waits_for_acknowledgements_then_markers_then_rows_then_offsets(
    make: Callable[..., Parts],
) -> None:
    parts = make()
    work = checkpoint({IN_0: 11, IN_1: 4}, runs=("r1",), letters=("r2",), partial=True, fired=True)
    await parts.committer.commit(work)
    assert parts.journal == [
        ("send", f"{OUT}:0", (b"result r1",)),
        ("send", f"{DLQ}:0", (b"letter r2",)),
        ("send", f"{JOINS}:0", (b"partial",)),
        ("ack", f"{OUT}:0"),
        ("ack", f"{DLQ}:0"),
        ("ack", f"{JOINS}:0"),
        ("send", f"{JOINS}:0", (b"marker",)),
        ("ack", f"{JOINS}:0"),
        ("write", ("r1",), ("r2",)),
        ("commit", {"ia.p.in:0": 11, "ia.p.in:1": 4}),
    ]
    assert parts.consumer.paused == set()
    assert parts.committer.stats.produced == 4
    assert (parts.committer.stats.rows_written, parts.committer.stats.letters_written) == (1, 1)


async def test_nothing_after_the_sends_happens_until_the_broker_acknowledged_them(make: Callable[..., Parts]) -> None:
    parts = make()
    parts.producer.auto_acknowledge = False
    committing = asyncio.ensure_future(parts.committer.commit(checkpoint({IN_0: 3}, runs=("r1",), fired=True)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert parts.journal.kinds() == ["send"], "no marker, row or commit before the acknowledgement"
    assert not committing.done()
    parts.producer.acknowledge_all()  # the result; then the marker is sent, and waits in turn
    for _ in range(5):
        await asyncio.sleep(0)
    assert parts.journal.kinds() == ["send", "ack", "send"]
    assert parts.journal[-1] == ("send", f"{JOINS}:0", (b"marker",))
    parts.producer.acknowledge_all()
    await committing
    assert parts.journal.kinds() == ["send", "ack", "send", "ack", "write", "commit"]


async def test_a_failed_send_raises_and_nothing_later_is_written_or_committed(make: Callable[..., Parts]) -> None:
    parts = make()
    parts.producer.auto_acknowledge = False
    committing = asyncio.ensure_future(parts.committer.commit(checkpoint({IN_0: 3}, runs=("r1",), fired=True)))
    for _ in range(5):
        await asyncio.sleep(0)
    parts.producer.acknowledge(parts.producer.handed[0], error=RuntimeError("NotLeaderForPartition"))
    with pytest.raises(RuntimeError, match="NotLeaderForPartition"):
        await committing
    assert parts.journal.kinds() == ["send", "failed"]
    assert parts.consumer.committed == {}


async def test_sends_already_handed_to_the_producer_are_awaited_not_sent_again(make: Callable[..., Parts]) -> None:
    parts = make()
    work = checkpoint({IN_0: 8}, runs=("r1",), fired=True)
    sent = SendQueue(cast(Any, parts.producer)).submit(work.produced.to_send())
    await parts.committer.commit(work, sent)
    assert parts.producer.sent_values(OUT, 0) == [b"result r1"]
    assert parts.journal.kinds() == ["send", "ack", "send", "ack", "write", "commit"]
    assert parts.committer.stats.produced == 2


async def test_sends_already_handed_over_must_be_acknowledged_before_the_markers_go(
    make: Callable[..., Parts],
) -> None:
    parts = make()
    parts.producer.auto_acknowledge = False
    work = checkpoint({IN_0: 8}, runs=("r1",), fired=True)
    sent = SendQueue(cast(Any, parts.producer)).submit(work.produced.to_send())
    committing = asyncio.ensure_future(parts.committer.commit(work, sent))
    for _ in range(5):
        await asyncio.sleep(0)
    assert parts.journal.kinds() == ["send"] and not committing.done()
    parts.producer.acknowledge_all()
    for _ in range(5):
        await asyncio.sleep(0)
    assert parts.journal.kinds() == ["send", "ack", "send"]
    parts.producer.acknowledge_all()
    await committing
    assert parts.journal.kinds() == ["send", "ack", "send", "ack", "write", "commit"]


async def test_without_a_results_sink_the_offsets_are_committed_after_the_acknowledgements(
    make: Callable[..., Parts],
) -> None:
    parts = make(with_sink=False)
    await parts.committer.commit(checkpoint({IN_0: 2}, runs=("r1",)))
    assert parts.journal.kinds() == ["send", "ack", "commit"]
    assert parts.committer.database_state == "none"


async def test_only_offsets_of_partitions_still_assigned_are_committed(make: Callable[..., Parts]) -> None:
    parts = make(assigned=(IN_0,))
    await parts.committer.commit(checkpoint({IN_0: 5, IN_1: 9}, runs=("r1",)))
    assert parts.journal.of("commit") == [("commit", {"ia.p.in:0": 5})]


async def test_a_refused_commit_is_counted_and_does_not_raise(make: Callable[..., Parts]) -> None:
    parts = make()
    parts.consumer.commit_error = CommitFailedError("the group rebalanced")
    await parts.committer.commit(checkpoint({IN_0: 5}, runs=("r1",)))
    assert parts.committer.stats.commits_failed == 1
    assert parts.sink.rows == ["r1"]
    assert not parts.committer.holding


# -- metrics -----------------------------------------------------------------------------------------------------------


def scraped(metrics: WorkerMetrics) -> Page:
    return Page.parse(render(families_registry(metrics)).decode())


async def test_runs_count_once_their_rows_are_written_and_the_sink_says_when_it_fails(
    make: Callable[..., Parts], clock: Clock
) -> None:
    metrics = WorkerMetrics()
    metrics.pipeline(_one_step_plan("p"), "chains")
    parts = make(metrics=metrics)
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 11}, runs=("r1", "r2"), letters=("r3",)))
    page = scraped(metrics)
    assert page.total("ia_runs_total") == 0, "held while the database is away: not durable yet"
    assert page.total("ia_dead_letters_total", kind="step_failed") == 1, "a letter counts once acknowledged"
    assert page.total("ia_sink_up", sink="postgres") == 0, "down once a write failed"
    assert page.total("ia_sink_rows_total") == 0

    clock.now += INITIAL_RETRY_DELAY_S
    parts.sink.reachable = True
    await parts.committer.retry_if_due()
    page = scraped(metrics)
    assert page.total("ia_runs_total", pipeline="p", status="success") == 2
    assert page.total("ia_sink_up", sink="postgres") == 1
    assert page.total("ia_sink_rows_total", table="pipeline_runs", status="written") == 2
    assert page.total("ia_sink_rows_total", table="dead_letters", status="written") == 1
    assert page.total("ia_sink_last_success_timestamp_seconds") > 1.7e9
    assert page.total("ia_sink_flush_seconds_count") == 1
    assert page.total("ia_commit_duration_seconds_count") == 1


async def test_without_a_results_sink_runs_count_once_acknowledged_and_no_sink_series_exist(
    make: Callable[..., Parts],
) -> None:
    metrics = WorkerMetrics()
    metrics.pipeline(_one_step_plan("p"), "chains")
    parts = make(with_sink=False, metrics=metrics)
    await parts.committer.commit(checkpoint({IN_0: 2}, runs=("r1",)))
    page = scraped(metrics)
    assert page.total("ia_runs_total", status="success") == 1
    assert not [sample for sample in page.samples if sample.name.startswith("ia_sink_")]


def _one_step_plan(pipeline: str) -> PipelinePlan:
    raw = {"name": pipeline, "steps": [{"id": "s", "module": "tests.unit.sample_steps", "step_class": "ConstStep"}],
           "flow": {"start_at": "s", "paths": []}}  # fmt: skip
    return compile_pipeline(raw, f"{pipeline}.json")


# -- the database away -------------------------------------------------------------------------------------------------


async def test_an_unreachable_database_holds_the_offsets_pauses_and_commits_nothing(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make(assigned=(IN_0, IN_1, STAGE_0))
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 11}, runs=("r1",), letters=("r2",), fired=True))
    assert parts.journal.kinds() == ["send", "send", "ack", "ack", "send", "ack", "unreachable", "pause"]
    assert parts.journal[-1] == ("pause", ("ia.p.in:0", "ia.p.in:1", "ia.p.stage.b:0"))
    assert parts.consumer.committed == {}
    assert parts.committer.holding
    assert parts.committer.database_state == "unreachable"
    assert parts.committer.stats.outages == 1


async def test_retry_waits_for_the_backoff_then_writes_commits_the_held_offsets_and_resumes(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 11}, runs=("r1",), letters=("r2",)))
    parts.journal.clear()

    clock.now += INITIAL_RETRY_DELAY_S / 2
    parts.sink.reachable = True
    await parts.committer.retry_if_due()
    assert parts.journal == [], "not before the backoff has passed"

    clock.now += INITIAL_RETRY_DELAY_S / 2
    await parts.committer.retry_if_due()
    assert parts.journal == [
        ("write", ("r1",), ("r2",)),
        ("commit", {"ia.p.in:0": 11}),
        ("resume", ("ia.p.in:0", "ia.p.in:1")),
    ]
    assert not parts.committer.holding
    assert parts.consumer.paused == set()
    assert parts.committer.database_state == "ok"

    parts.journal.clear()
    await parts.committer.retry_if_due()
    assert parts.journal == [], "nothing held, nothing to retry"


async def test_the_backoff_doubles_while_the_database_stays_away_up_to_its_cap(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 1}, runs=("r1",)))
    waited = []
    delay = INITIAL_RETRY_DELAY_S
    for _ in range(8):
        parts.journal.clear()
        clock.now += delay - 0.01
        await parts.committer.retry_if_due()
        assert parts.journal == [], f"tried again before {delay} s"
        clock.now += 0.01
        await parts.committer.retry_if_due()
        assert parts.journal.kinds() == ["unreachable"]
        waited.append(delay)
        delay = min(delay * 2, MAX_RETRY_DELAY_S)
    assert waited == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert parts.committer.stats.outages == 1, "one outage, however many retries"
    assert parts.consumer.committed == {}


async def test_batches_completing_while_held_are_held_too_and_all_go_when_the_database_is_back(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 11}, runs=("r1",)))
    await parts.committer.commit(checkpoint({IN_0: 12, IN_1: 3}, runs=("r2",)))
    assert parts.consumer.committed == {}
    assert parts.journal.of("unreachable") == [("unreachable", ("r1",), ()), ("unreachable", ("r1", "r2"), ())]
    parts.journal.clear()

    parts.sink.reachable = True  # back while a third batch, taken in before the pause, completes
    await parts.committer.commit(checkpoint({IN_1: 4}, runs=("r3",)))
    assert parts.journal[-3:] == [
        ("write", ("r1", "r2", "r3"), ()),
        ("commit", {"ia.p.in:0": 12, "ia.p.in:1": 4}),
        ("resume", ("ia.p.in:0", "ia.p.in:1")),
    ]
    assert parts.sink.rows == ["r1", "r2", "r3"]
    assert not parts.committer.holding


async def test_drop_forgets_what_is_held_for_partitions_revoked(make: Callable[..., Parts], clock: Clock) -> None:
    parts = make()
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({IN_0: 11}, runs=("r1",), letters=("r2",)))
    parts.committer.drop()
    assert not parts.committer.holding
    parts.sink.reachable = True
    clock.now += MAX_RETRY_DELAY_S
    parts.journal.clear()
    await parts.committer.retry_if_due()
    assert parts.journal == []

    await parts.committer.commit(checkpoint({IN_1: 7}, runs=("r3",)))
    assert parts.journal.of("write") == [("write", ("r3",), ())], "the dropped rows are the next owner's to write"
    assert parts.journal.of("commit") == [("commit", {"ia.p.in:1": 7})]


# -- rows the database refuses -----------------------------------------------------------------------------------------


async def test_a_refused_batch_is_written_row_by_row_and_one_bad_row_holds_nothing_back(
    make: Callable[..., Parts],
) -> None:
    parts = make()
    parts.sink.refused = {"bad"}
    await parts.committer.commit(checkpoint({IN_0: 9}, runs=("r1", "bad", "r3"), letters=("l1",)))
    assert parts.journal.of("refused")[0] == ("refused", ("r1", "bad", "r3"), ("l1",))
    assert [e for e in parts.journal if e[0] in ("write", "refused")][1:] == [
        ("write", ("r1",), ()),
        ("refused", ("bad",), ()),
        ("write", ("r3",), ()),
        ("write", (), ("l1",)),
    ]
    assert parts.journal[-1] == ("commit", {"ia.p.in:0": 9})
    assert parts.sink.rows == ["r1", "r3", "l1"]
    stats = parts.committer.stats
    assert (stats.rows_written, stats.letters_written, stats.rows_rejected) == (2, 1, 1)
    assert parts.consumer.paused == set() and not parts.committer.holding


async def test_a_refused_letter_is_skipped_too(make: Callable[..., Parts]) -> None:
    parts = make()
    parts.sink.refused = {"l-bad"}
    await parts.committer.commit(checkpoint({IN_0: 9}, runs=("r1",), letters=("l-bad", "l2")))
    assert parts.sink.rows == ["r1", "l2"]
    assert parts.committer.stats.rows_rejected == 1
    assert parts.journal[-1] == ("commit", {"ia.p.in:0": 9})


async def test_losing_the_connection_while_writing_row_by_row_is_an_outage(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.refused = {"bad"}
    original = parts.sink.write
    singles = 0

    async def write_then_lose_the_connection(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        nonlocal singles
        if len(runs) == 1:
            singles += 1
            if singles == 2:  # the connection drops once, after the first single row went in
                parts.sink.reachable = False
        await original(runs, letters)

    parts.sink.write = write_then_lose_the_connection  # type: ignore[method-assign]
    await parts.committer.commit(checkpoint({IN_0: 9}, runs=("r1", "bad", "r3")))
    assert parts.committer.holding and parts.consumer.paused == {IN_0, IN_1}
    assert parts.consumer.committed == {}

    parts.sink.reachable = True
    clock.now += INITIAL_RETRY_DELAY_S
    await parts.committer.retry_if_due()
    assert parts.consumer.committed == {IN_0: 9}
    assert parts.consumer.paused == set()
    assert parts.sink.rows == ["r1", "r1", "r3"], "the rows again (r1 twice: the sink's upsert makes that harmless)"
    assert parts.committer.stats.rows_rejected == 1, "the bad row, refused once the database was back"


async def test_rows_of_no_consumed_record_are_held_while_the_database_is_away_and_written_when_it_is_back(
    make: Callable[..., Parts], clock: Clock
) -> None:
    """A join-timeout sweep's checkpoint has rows but no offsets: while the database is away its rows are held
    (the consumer paused like any other outage), and the retry writes them and resumes the consumer."""
    parts = make()
    parts.sink.reachable = False
    await parts.committer.commit(checkpoint({}, runs=("timed-out",)))
    assert parts.committer.holding and parts.consumer.paused == {IN_0, IN_1}
    parts.journal.clear()
    clock.now += INITIAL_RETRY_DELAY_S
    parts.sink.reachable = True
    await parts.committer.retry_if_due()
    assert parts.journal == [("write", ("timed-out",), ()), ("resume", ("ia.p.in:0", "ia.p.in:1"))]
    assert not parts.committer.holding and parts.consumer.paused == set()


# -- a run whose row the database refuses becomes a dead letter ----------------------------------------------------


def refusable(run_id: str, key: str = "cust-7", partition: int = 1) -> FinishedRun:
    """A finished run as the stage runner hands it over: with its pipeline's dead letters, partition and key."""
    record = {
        "run_id": run_id, "pipeline": "p", "pipeline_version": "1", "status": "success", "outputs": {"x": "a\0b"},
        "error": None, "trace": [], "input": {"n": 1},
        "source": {"topic": IN_0.topic, "partition": 0, "offset": 4, "timestamp": 1_700_000_000_000},
    }  # fmt: skip
    return FinishedRun(record, 1_700_000_000_500, DeadLetters("p", DLQ, "cluster-1"), partition, key)


def with_refusable_runs(work: Checkpoint) -> Checkpoint:
    work.produced.runs = [refusable(str(run.record["run_id"])) for run in work.produced.runs]
    return work


async def test_a_run_whose_row_is_refused_becomes_an_internal_error_letter_on_its_topic_and_in_the_table(
    make: Callable[..., Parts],
) -> None:
    parts = make()
    parts.sink.refused_runs = {"bad"}
    work = with_refusable_runs(checkpoint({IN_0: 9}, runs=("r1", "bad", "r3"), letters=("l1",)))
    await parts.committer.commit(work)
    before = parts.journal.kinds().index("refused")
    assert parts.journal.kinds()[:before] == ["send", "send", "ack", "ack"], "the batch's result and letter"
    after = parts.journal[before:]
    assert after == [
        ("refused", ("r1", "bad", "r3"), ("l1",)),
        ("write", ("r1",), ()),
        ("refused", ("bad",), ()),
        ("write", ("r3",), ()),
        ("send", f"{DLQ}:1", parts.producer.handed[-1].values),
        ("ack", f"{DLQ}:1"),
        ("write", (), ("l1",)),
        ("write", (), ("bad",)),
        ("commit", {"ia.p.in:0": 9}),
    ], "the rows around it written, its letter produced and acknowledged, every letter written, then the commit"
    [sent] = parts.producer.handed[-1].records
    assert sent.key == b"cust-7" and sent.headers == (("ia-run-id", b"bad"),)
    letter = orjson.loads(sent.value or b"")
    assert letter == parts.sink.letters[-1], "the same letter on the topic and in the table"
    assert set(letter) == set(dead_letter("internal_error", run_id="x", pipeline="p", error=run_error("T", ""),
                                          source=None, created_ms=0, raw=b""))  # fmt: skip
    assert [letter[name] for name in ("kind", "run_id", "pipeline", "key")] == ["internal_error", "bad", "p", "cust-7"]
    assert letter["error"]["type"] == "RowRefused"
    assert letter["error"]["message"] == (
        "pipeline_runs refused the run's row (SQLSTATE 22001): value too long for type character varying(64)"
    )
    assert letter["source"] == {"topic": IN_0.topic, "partition": 0, "offset": 4, "timestamp": 1_700_000_000_000}
    assert orjson.loads(base64.b64decode(letter["raw"])) == refusable("bad").record, "the refused row's record"
    stats = parts.committer.stats
    assert (stats.rows_written, stats.letters_written, stats.rows_rejected) == (2, 2, 1)
    assert parts.consumer.paused == set() and not parts.committer.holding


async def test_a_refused_row_whose_letter_row_is_refused_too_still_has_its_letter_on_the_topic_logged_once(
    make: Callable[..., Parts], caplog: pytest.LogCaptureFixture
) -> None:
    parts = make()
    parts.sink.refused = {"bad"}  # its run and its letter
    await parts.committer.commit(with_refusable_runs(checkpoint({IN_0: 9}, runs=("r1", "bad"))))
    assert [orjson.loads(v or b"")["run_id"] for v in parts.producer.sent_values(DLQ, 1)] == ["bad"]
    assert parts.sink.rows == ["r1"]
    refusals = [r for r in caplog.records if r.name == checkpoint_module.__name__ and r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[0] for r in refusals] == ["dead_letters refused a letter of run bad"]
    assert parts.journal[-1] == ("commit", {"ia.p.in:0": 9})


async def test_a_refused_rows_letter_is_produced_once_though_the_database_goes_away_before_it_is_written(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.refused_runs = {"bad"}
    original = parts.sink.write

    lost = False

    async def lose_the_connection_at_the_letter(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        nonlocal lost
        if letters and letters[0]["run_id"] == "bad" and not lost:  # once, when its letter row is first written
            lost = True
            parts.sink.reachable = False
        await original(runs, letters)

    parts.sink.write = lose_the_connection_at_the_letter  # type: ignore[method-assign]
    await parts.committer.commit(with_refusable_runs(checkpoint({IN_0: 9}, runs=("r1", "bad"))))
    assert parts.committer.holding and parts.consumer.committed == {}
    parts.sink.reachable = True
    clock.now += INITIAL_RETRY_DELAY_S
    await parts.committer.retry_if_due()
    assert len(parts.producer.sent_values(DLQ, 1)) == 1, "not produced again"
    assert parts.sink.rows == ["r1", "bad"]
    assert parts.consumer.committed == {IN_0: 9} and not parts.committer.holding


async def test_losing_the_connection_before_every_run_was_tried_produces_no_letter_yet(
    make: Callable[..., Parts], clock: Clock
) -> None:
    parts = make()
    parts.sink.refused_runs = {"bad"}
    original = parts.sink.write

    lost = False

    async def lose_the_connection_after_the_refusal(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        nonlocal lost
        if [run.record["run_id"] for run in runs] == ["r3"] and not lost:
            lost = True
            parts.sink.reachable = False
        await original(runs, letters)

    parts.sink.write = lose_the_connection_after_the_refusal  # type: ignore[method-assign]
    await parts.committer.commit(with_refusable_runs(checkpoint({IN_0: 9}, runs=("r1", "bad", "r3"))))
    assert parts.committer.holding and parts.producer.sent_values(DLQ, 1) == []
    parts.sink.reachable = True
    clock.now += INITIAL_RETRY_DELAY_S
    await parts.committer.retry_if_due()
    assert len(parts.producer.sent_values(DLQ, 1)) == 1
    assert parts.sink.rows == ["r1", "r1", "r3", "bad"]
    assert parts.consumer.committed == {IN_0: 9}
