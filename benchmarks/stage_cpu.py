"""CPU per event of the stage runner, in memory: no broker, no Kafka client, only the work each hop does.

    .venv/bin/python -m benchmarks.stage_cpu [--events 20000] [--rounds 5] [--profile PATH]

The streaming benchmark's worker is CPU-bound in Python, so this isolates what the runtime adds per event: the
bench pipeline's three hops through ``StageRunner`` (envelopes decoded and encoded, steps run by the kernel,
join state, the result record), each emission routed straight back in, against the raw chain's three hops
(orjson decode, the same transform, orjson encode), and against the same work written by hand for this one
pipeline (``specialised_hops``: every copy, normalisation, trace entry and envelope the runner makes, nothing
generic), which is checked first to give the runner's result records. All get the same synthetic ~1 KB events;
rounds alternate and the best of each counts. Records go through in batches of 2,000 per hop, as in the worker (one
event's three hops back to back would keep everything in the CPU's caches and flatter the runner). The
garbage collector is set up as the worker sets it (frozen after set-up, the same thresholds).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from benchmarks.bench_steps import TRIVIAL_HOPS
from benchmarks.specialised_hops import SpecialisedHops
from benchmarks.throughput.events import BENCH_PIPELINE, PARTITIONS, synthetic_events
from ia_modules.pipeline.core import Pipeline
from streams.joins.store import JoinStore
from streams.kafka.producer import Emission, Sent
from streams.kafka.records import InputRecord
from streams.metrics.catalog import WorkerMetrics
from streams.metrics.instruments import CounterChild
from streams.process.serve import GC_THRESHOLDS
from streams.sink.checkpoint import Checkpoint, Committer, Produced
from streams.stage_runner import StageRunner
from streams.topology import build_topology


def raw_hops(values: list[bytes]) -> int:
    """The raw chain's work: three decode-transform-encode hops per event; returns the bytes produced."""
    produced = 0
    first, second, third = TRIVIAL_HOPS
    for value in values:
        message = orjson.dumps(first(orjson.loads(value)))
        message = orjson.dumps(second(orjson.loads(message)))
        produced += len(message) + len(orjson.dumps(third(orjson.loads(message))))
    return produced


def specialised_hops(hops: SpecialisedHops, records: list[InputRecord], stage_topic: str) -> list[bytes]:
    """The hand-written hops over ``records`` in batches of 2,000 per hop, as the runner gets them."""
    results: list[bytes] = []
    for first in range(0, len(records), 2000):
        batch = records[first : first + 2000]
        branched = [InputRecord(stage_topic, r.partition, r.offset, r.timestamp, r.key, hops.start(r)) for r in batch]
        joined = [r._replace(value=hops.branch(r)) for r in branched]
        results.extend(hops.finish(r) for r in joined)
    return results


def comparable(result: bytes) -> dict[str, Any]:
    """A result record without what differs between two runs of the same event (times)."""
    record: dict[str, Any] = orjson.loads(result)
    for entry in record["trace"]:
        entry.pop("started_at")
        entry.pop("duration_ms")
    return record


class _NoBroker:
    """The producer and consumer a ``Committer`` talks to, with nothing behind them: every send is acknowledged
    at once, every commit succeeds."""

    class _Batch:
        def __init__(self) -> None:
            self.count = 0

        def append(self, **_: Any) -> object:
            self.count += 1
            return self

        def record_count(self) -> int:
            return self.count

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()

    def create_batch(self) -> _NoBroker._Batch:
        return self._Batch()

    async def send_batch(self, batch: _NoBroker._Batch, topic: str, partition: int) -> asyncio.Future[None]:
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None

    def pause(self, *partitions: TopicPartition) -> None:
        return None

    def resume(self, *partitions: TopicPartition) -> None:
        return None


async def _handed_over(emissions: list[Emission]) -> Sent:
    """What ``SendQueue.submit`` gives the committer for a batch, the broker acknowledging at once."""
    return Sent(len(emissions))


class InMemoryWorker:
    """The worker's stage runner with emissions routed straight back in, as a broker would deliver them.

    With ``commit``, each batch is then made durable as the worker does it, by a ``Committer`` (no results sink)
    over a producer and consumer with nothing behind them (``_NoBroker``): acknowledgements, finished runs let
    go, offsets committed. With ``metrics`` (implies ``commit``), the stage runner gets the pipeline's series,
    the committer the worker's (produce latency, runs by status, run duration, end-to-end latency, commit
    duration), and each batch is counted as the worker counts it (records consumed per topic, records per batch,
    batch duration): what ``IA_METRICS=1`` adds to the worker's work."""

    def __init__(self, pipeline: Pipeline, metrics: WorkerMetrics | None = None, commit: bool = False) -> None:
        plan = pipeline.plan
        self.topology = build_topology(plan, fuse=True)
        expected = {node: len(plan.graph.incoming[node]) for node in self.topology.joins}
        self.store = JoinStore(self.topology.joins_topic, expected)
        series = metrics.pipeline(plan, "chains") if metrics is not None else None
        self.runner = StageRunner(
            plan, self.topology, pipeline.steps_for(None), self.store, "bench-cluster", metrics=series
        )
        self.stage_topics = set(self.topology.stage_topics())
        self.metrics = metrics
        self.broker = _NoBroker()
        self.committer = Committer(self.broker, self.broker, None, metrics) if commit or metrics else None
        self.consumed: dict[str, CounterChild] = {}
        if metrics is not None:
            for topic in [*self.topology.input_topics, *self.stage_topics]:
                self.consumed[topic] = metrics.consumed(plan.id, topic)
        self.offsets: dict[str, int] = {}
        self.records = 0
        self.bytes = 0
        self.results: list[bytes] = []
        self.keep_results = False

    async def run(self, keyed: list[tuple[bytes, int, bytes]], batch: int = 2000) -> int:
        """Run the events in batches as the worker does: a batch of input records, then the batch of
        envelopes that emitted, and so on until every run ended."""
        input_topic = self.topology.input_topics[0]
        outputs = 0
        for first in range(0, len(keyed), batch):
            records = [
                InputRecord(input_topic, partition, offset, 0, key, value)
                for offset, (key, partition, value) in enumerate(keyed[first : first + batch], first)
            ]
            produced = await self._batch(records, self.runner.on_input)
            while produced.sends:
                records = []
                for emission in produced.sends:
                    self.records += 1
                    self.bytes += len(emission.value or b"")
                    if emission.topic in self.stage_topics:
                        at = self.offsets.get(emission.topic, 0)
                        self.offsets[emission.topic] = at + 1
                        records.append(
                            InputRecord(emission.topic, emission.partition, at, 0, emission.key, emission.value)
                        )
                    elif emission.topic == self.topology.output_topic:
                        outputs += 1
                        if self.keep_results:
                            self.results.append(emission.value or b"")
                for write in [*produced.join_state, *produced.join_markers]:
                    self.records += 1
                    self.bytes += len(write.value or b"")
                produced = await self._batch(records, self.runner.on_envelope)
        return outputs

    async def _batch(
        self, records: list[InputRecord], run: Callable[[InputRecord, Produced], Awaitable[None]]
    ) -> Produced:
        """Run a batch of records; with a committer, make what they produced durable as the worker does."""
        if self.committer is None or not records:
            return await self._run(records, run)
        started = time.perf_counter()
        checkpoint = Checkpoint(await self._run(records, run))
        per_partition: dict[TopicPartition, int] = {}  # what the consumer's fetch gives the worker, made here
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            checkpoint.offsets[tp] = record.offset + 1
            per_partition[tp] = per_partition.get(tp, 0) + 1
        checkpoint.consumed = len(records)
        checkpoint.submitted = time.perf_counter()
        if self.metrics is not None:
            self._batch_observed(per_partition, checkpoint.submitted - started)
        self.broker.assigned.update(checkpoint.offsets)
        sent = asyncio.ensure_future(_handed_over(checkpoint.produced.to_send()))
        await self.committer.commit(checkpoint, sent)
        return checkpoint.produced

    def _batch_observed(self, per_partition: dict[TopicPartition, int], seconds: float) -> None:
        """What ``Worker._run_partition`` and ``Worker._process`` record: records consumed per partition (on its
        topic's counter), the batch's size and duration."""
        assert self.metrics is not None
        for tp, consumed in per_partition.items():
            self.consumed[tp.topic].value += consumed
        self.metrics.batch(sum(per_partition.values()), seconds)

    @staticmethod
    async def _run(records: list[InputRecord], run: Callable[[InputRecord, Produced], Awaitable[None]]) -> Produced:
        """What a batch of records produced, collected as the worker collects a partition's."""
        produced = Produced()
        for record in records:
            await run(record, produced)
        return produced


async def main(arguments: argparse.Namespace) -> None:
    events = synthetic_events(arguments.events)
    keyed = [(r.key, r.partition, r.value) for r in events]
    values = [r.value for r in events]
    pipeline = await Pipeline.load(BENCH_PIPELINE)
    assert pipeline.plan.model.stream.partitions == PARTITIONS
    worker = InMemoryWorker(pipeline)
    input_topic, stage_topic = worker.topology.input_topics[0], worker.topology.stage_topics()[0]
    records = [InputRecord(input_topic, p, offset, 0, key, value) for offset, (key, p, value) in enumerate(keyed)]
    hops = SpecialisedHops(worker.runner.cluster_id)
    await check_specialised(pipeline, hops, keyed[:500], records[:500], stage_topic)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    best = {"raw": float("inf"), "runner": float("inf"), "specialised": float("inf")}
    for _ in range(arguments.rounds):
        clock = time.perf_counter()
        raw_hops(values)
        best["raw"] = min(best["raw"], time.perf_counter() - clock)
        clock = time.perf_counter()
        specialised_hops(hops, records, stage_topic)
        best["specialised"] = min(best["specialised"], time.perf_counter() - clock)
        worker = InMemoryWorker(pipeline)
        profiler = cProfile.Profile() if arguments.profile else None
        clock = time.perf_counter()
        if profiler:
            profiler.enable()
        outputs = await worker.run(keyed)
        if profiler:
            profiler.disable()
            profiler.dump_stats(arguments.profile)
        best["runner"] = min(best["runner"], time.perf_counter() - clock)
        assert outputs == len(keyed), f"{outputs} results for {len(keyed)} events"
    count = len(keyed)
    raw_us, runner_us = best["raw"] / count * 1e6, best["runner"] / count * 1e6
    specialised_us = best["specialised"] / count * 1e6
    print(f"{count:,} events, best of {arguments.rounds} rounds")
    print(f"  raw hops      {raw_us:7.1f} us/event   3 records, {raw_hops(values[:1]):,} bytes for the first event")
    print(f"  specialised   {specialised_us:7.1f} us/event   the runner's work written for this pipeline")
    print(
        f"  stage runner  {runner_us:7.1f} us/event   {worker.records / count:.2f} records, "
        f"{worker.bytes / count:,.0f} bytes per event"
    )
    print(f"  runner - raw  {runner_us - raw_us:7.1f} us/event")
    print(f"  runner - specialised {runner_us - specialised_us:7.1f} us/event (what being generic costs)")


async def check_specialised(
    pipeline: Pipeline,
    hops: SpecialisedHops,
    keyed: list[tuple[bytes, int, bytes]],
    records: list[InputRecord],
    stage_topic: str,
) -> None:
    """The hand-written hops give the runner's result records (times aside), or the comparison means nothing."""
    worker = InMemoryWorker(pipeline)
    worker.keep_results = True
    await worker.run(keyed)
    expected = {record["run_id"]: record for record in map(comparable, worker.results)}
    got = [comparable(result) for result in specialised_hops(hops, records, stage_topic)]
    assert len(got) == len(expected) == len(keyed), f"{len(got)} and {len(expected)} results for {len(keyed)}"
    for record in got:
        assert record == expected[record["run_id"]], f"{record} != {expected[record['run_id']]}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the last runner round here")
    asyncio.run(main(parser.parse_args()))
