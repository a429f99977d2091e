"""The worker: one consumer group over every pipeline's input and stage topics, stages run in batches.

For each batch it runs the records (in order per partition; with a stage's ``concurrency`` above 1, in order
per key) and hands what they emitted to the producer; then, while it runs the next batches, it waits for the
broker's acknowledgements, writes the markers of joins that fired and the results sink's rows, and only then
commits the batch's offsets: at least once, end to end, with up to ``BATCHES_COMPLETING`` batches completing
behind the one running, in order.
Partitions are co-assigned across a pipeline's topics (range assignment over equal partition counts), so a
run's join state is always local.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.services import ServiceRegistry
from ia_modules.pipeline.wire import DEFAULT_MAX_JSON_DEPTH
from streams.joins.changelog import restore_joins
from streams.kafka.admin import ensure_topics, topic_specs
from streams.kafka.clients import worker_consumer, worker_producer
from streams.kafka.cluster import bootstrap_servers, cluster_id
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, SendQueue, Sent
from streams.kafka.records import now_ms
from streams.kafka.security import PLAINTEXT, KafkaSecurity
from streams.metrics.catalog import WorkerMetrics
from streams.metrics.gauges import refresh_gauges
from streams.metrics.instruments import CounterChild
from streams.sink.checkpoint import Checkpoint, Committer, Produced, RecordPart
from streams.sink.results import ResultsSink
from streams.stage_runner import StageRunner
from streams.topology import Stage

logger = logging.getLogger(__name__)

YIELD_EVERY = 64
"""Records run between two yields to the event loop, so that the batch before is acknowledged, its rows
written and its offsets committed while this one runs (and heartbeats and fetches go on)."""

BATCHES_COMPLETING = 2
"""Batches whose acknowledgements, rows and commit may still be outstanding while the next one runs: the
broker's round trips for one batch overlap the work of the next ones (a crash repeats at most this many
batches plus the one running)."""

FAILED_JOIN_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long a join that fired ``fail`` is kept, for a replay of its run from the dead-letter queue."""


@dataclass
class WorkerOptions:
    """How a worker talks to its broker."""

    app_id: str = "ia-modules"
    topic_prefix: str = "ia"
    fuse: bool = True
    replication_factor: int = 1
    session_timeout_ms: int = 10_000
    batch_max_records: int = 2000
    fetch_max_wait_ms: int = 20
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    security: KafkaSecurity = PLAINTEXT
    """TLS and SASL for every Kafka client of the worker (IA_BROKER_SECURITY_PROTOCOL and the rest)."""


@dataclass
class _Route:
    runner: StageRunner
    stage: Stage
    is_input: bool
    consumed: CounterChild | None = None


@dataclass
class WorkerStats:
    """Counters the worker keeps for its health page and for tests."""

    consumed: int = 0
    batches: int = 0
    internal_errors: int = 0
    started_at: float = field(default_factory=time.time)
    consuming_since: float | None = None


class Worker:
    """Runs every pipeline's stages for the partitions this worker is assigned."""

    def __init__(
        self,
        plans: Iterable[PipelinePlan],
        broker: str,
        services: ServiceRegistry,
        options: WorkerOptions | None = None,
        sink: ResultsSink | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.plans = list(plans)
        self.metrics = metrics
        """The worker's Prometheus series; None records none (``IA_METRICS=0``)."""
        self.broker = broker
        self.services = services
        self.options = options or WorkerOptions()
        self.sink = sink
        self.committer: Committer | None = None
        self.runners: list[StageRunner] = []
        self.routes: dict[str, _Route] = {}
        self.stats = WorkerStats()
        self.cluster_id = ""
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._sends: SendQueue | None = None
        self._completing: deque[asyncio.Task[None]] = deque()
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        """Set once the worker has partitions and is consuming them."""

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topics, start producer and consumer, and join the group."""
        options = self.options
        self.cluster_id = await cluster_id(self.broker, security=options.security)
        metrics = self.metrics
        for plan in self.plans:
            series = metrics.pipeline(plan, "chains" if options.fuse else "none") if metrics is not None else None
            runner = StageRunner.build(
                plan,
                self.services,
                self.cluster_id,
                topic_prefix=options.topic_prefix,
                app_id=options.app_id,
                fuse=options.fuse,
                max_record_bytes=options.max_record_bytes,
                max_json_depth=options.max_json_depth,
                metrics=series,
            )
            topology = runner.topology
            self.runners.append(runner)
            count = metrics.consumed if metrics is not None else lambda pipeline, topic: None
            for topic in topology.input_topics:
                self.routes[topic] = _Route(runner, topology.start, True, count(plan.id, topic))
            for stage in topology.stages.values():
                self.routes[stage.topic] = _Route(runner, stage, False, count(plan.id, stage.topic))
        specs = [spec for runner in self.runners for spec in topic_specs(runner.topology)]
        created = await ensure_topics(self.broker, specs, options.replication_factor, security=options.security)
        if created:
            logger.info("created %d topics", len(created))
        servers = bootstrap_servers(self.broker)
        self._producer = worker_producer(servers, options.max_record_bytes, options.security)
        await self._producer.start()
        self._sends = SendQueue(self._producer)
        self._consumer = worker_consumer(
            servers, options.app_id, options.session_timeout_ms, options.fetch_max_wait_ms, options.security
        )
        self.committer = Committer(self._producer, self._consumer, self.sink, metrics)
        self._consumer.subscribe(topics=list(self.routes), listener=_Rebalance(self))
        await self._consumer.start()

    async def run(self) -> None:
        """Consume until ``stop`` is called; then finish the batch in hand, commit it, and leave the group."""
        assert self._consumer is not None
        try:
            while not self._stopping.is_set():
                fetch = asyncio.ensure_future(self._fetch())
                stopping = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not fetch.done():
                    fetch.cancel()
                    break
                batch = fetch.result()
                if self.stats.consuming_since is None and self._consumer.assignment():
                    async with self._lock:  # the join state of the partitions assigned is restored first
                        self.stats.consuming_since = time.time()
                        self.ready.set()
                if batch:
                    async with self._lock:
                        await self._process(batch)
                elif self._completing or (self.committer is not None and self.committer.holding):
                    async with self._lock:
                        await self._settle()
                        if self.committer is not None:
                            await self.committer.retry_if_due()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Records of runs already in flight (stage topics) first, new events (input topics) with what room is
        left: a backlog of input does not starve the later stages, and the runs in flight stay few."""
        assert self._consumer is not None
        limit = self.options.batch_max_records
        assigned = self._consumer.assignment()
        stages = [tp for tp in assigned if not self.routes[tp.topic].is_input]
        inputs = [tp for tp in assigned if self.routes[tp.topic].is_input]
        batch = await self._consumer.getmany(*stages, timeout_ms=0, max_records=limit) if stages else {}
        taken = sum(len(records) for records in batch.values())
        if taken and taken < limit // 2 and inputs:
            batch.update(await self._consumer.getmany(*inputs, timeout_ms=0, max_records=limit - taken))
        elif not taken:  # nothing in hand: whatever arrives first, on any topic (waiting on inputs alone
            # would leave envelopes that arrive meanwhile idle for the whole wait)
            batch = await self._consumer.getmany(timeout_ms=200, max_records=limit)
        return batch

    async def _shutdown(self) -> None:
        try:
            await self._settle()
        except Exception:
            logger.exception("the last batch could not be completed; its records will be consumed again")
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    @property
    def consuming(self) -> bool:
        return self.stats.consuming_since is not None and bool(self.assignment) and not self._stopping.is_set()

    # -- the hot path ---------------------------------------------------------------------------------------

    @property
    def produced(self) -> int:
        """Records produced and acknowledged so far."""
        return self.committer.stats.produced if self.committer is not None else 0

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Run the batch into a checkpoint and hand what it produced to the producer; the checkpoint is committed
        (``_complete``) while the next batches run, and at most ``BATCHES_COMPLETING`` are left completing."""
        assert self._consumer is not None and self._sends is not None
        owned = self._consumer.assignment()
        work = {tp: records for tp, records in batch.items() if tp in owned and records}
        if not work:
            return
        started = time.perf_counter()
        checkpoint = Checkpoint()
        for produced in await asyncio.gather(*(self._run_partition(tp, records) for tp, records in work.items())):
            checkpoint.produced.extend(produced)
        checkpoint.offsets = {tp: records[-1].offset + 1 for tp, records in work.items()}
        checkpoint.consumed = sum(len(records) for records in work.values())
        checkpoint.submitted = time.perf_counter()
        if self.metrics is not None:
            self.metrics.batch(checkpoint.consumed, checkpoint.submitted - started)
        sent = self._sends.submit(checkpoint.produced.to_send())
        before = self._completing[-1] if self._completing else None
        self._completing.append(asyncio.ensure_future(self._complete(before, checkpoint, sent)))
        while len(self._completing) > BATCHES_COMPLETING:
            await self._completing.popleft()

    async def _complete(
        self, before: asyncio.Task[None] | None, checkpoint: Checkpoint, sent: asyncio.Task[Sent]
    ) -> None:
        """Once the batch ``before`` it is complete, commit this one (in batch order: one commit never overtakes
        another)."""
        assert self.committer is not None
        if before is not None:
            await before  # what completing it raised is raised here too: no later offset is committed
        await self.committer.commit(checkpoint, sent)
        self.stats.consumed += checkpoint.consumed
        self.stats.batches += 1

    async def _settle(self) -> None:
        """Wait until every batch being completed is (raises what completing one raised)."""
        while self._completing:
            await self._completing.popleft()

    async def _run_partition(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> Produced:
        route = self.routes[tp.topic]
        if route.consumed is not None:
            route.consumed.value += len(records)
        if route.stage.concurrency > 1:
            return await self._run_by_key(route, records)
        produced = Produced()
        for index, record in enumerate(records, 1):
            await self._run_record(route, record, produced)
            if not index % YIELD_EVERY:
                await asyncio.sleep(0)
        return produced

    async def _run_by_key(self, route: _Route, records: list[ConsumerRecord[bytes, bytes]]) -> Produced:
        """Up to ``concurrency`` records at once, records with the same key one after the other; what each
        produced is collected on its own (they run interleaved), then in record order."""
        by_key: dict[bytes | None, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            by_key[record.key].append(index)
        results = [Produced() for _ in records]
        gate = asyncio.Semaphore(route.stage.concurrency)

        async def run_key(indexes: list[int]) -> None:
            for index in indexes:
                async with gate:
                    await self._run_record(route, records[index], results[index])

        await asyncio.gather(*(run_key(indexes) for indexes in by_key.values()))
        produced = Produced()
        for result in results:
            produced.extend(result)
        return produced

    async def _run_record(self, route: _Route, record: ConsumerRecord[bytes, bytes], out: Produced) -> None:
        runner = route.runner
        ours = RecordPart(out)
        try:
            if route.is_input:
                await runner.on_input(record, out)
            else:
                await runner.on_envelope(record, out)
        except Exception as exc:  # a fault of ours, not of a step: keep the record, keep consuming
            self.stats.internal_errors += 1
            if runner.metrics is not None:
                runner.metrics.internal_errors.value += 1
            logger.exception("internal error on %s[%d]@%d", record.topic, record.partition, record.offset)
            ours.replace()  # nothing the record half produced goes out: it is kept as it came, in the letter
            runner.internal_error(record, "".join(traceback.format_exception(exc)), out)

    # -- join timeouts ------------------------------------------------------------------------------------------

    async def sweep_joins(self) -> None:
        """Fail the runs whose joins waited past ``stream.join_timeout_s``; forget old fired markers.
        The Faust app calls this on a timer; with no join state held there is nothing to do, and the batches
        completing are not waited for (that would leave the worker idle for their acknowledgements)."""
        if self.committer is None or all(runner.store.empty for runner in self.runners):
            return
        async with self._lock:
            await self._settle()
            checkpoint = Checkpoint()
            for runner in self.runners:
                timeout_s = runner.plan.model.stream.join_timeout_s
                await runner.expire_joins(timeout_s, checkpoint.produced)
                now = now_ms()
                runner.store.purge_fired(
                    now - int(timeout_s * 1000), now - FAILED_JOIN_RETENTION_MS, checkpoint.produced
                )
            if checkpoint.produced:
                await self.committer.commit(checkpoint)

    async def refresh_gauges(self) -> None:
        """Before a scrape: the gauges read from the consumer and the join stores."""
        if self.metrics is not None:
            stores = {runner.plan.id: runner.store for runner in self.runners}
            pipeline_of = {topic: route.runner.plan.id for topic, route in self.routes.items()}
            await refresh_gauges(self.metrics, self._consumer, self.assignment, stores, pipeline_of)

    # -- rebalancing -------------------------------------------------------------------------------------------

    def _partitions_of(self, tps: Iterable[TopicPartition]) -> dict[int, set[int]]:
        """Which partitions of which stage runner (by index in ``runners``) the topic-partitions touch."""
        touched: dict[int, set[int]] = defaultdict(set)
        for tp in tps:
            route = self.routes.get(tp.topic)
            if route is not None:
                touched[self.runners.index(route.runner)].add(tp.partition)
        return touched

    async def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions are revoked: complete the batch in flight (its offsets are committed while they are still
        ours), then forget what is held for them."""
        async with self._lock:
            await self._settle()
            if self.committer is not None:
                self.committer.drop()
            for index, partitions in self._partitions_of(revoked).items():
                for partition in partitions:
                    self.runners[index].store.drop(partition)

    async def restore(self, assigned: Iterable[TopicPartition]) -> None:
        """Rebuild the join state of newly assigned partitions from the changelog, before consuming them."""
        async with self._lock:
            for index, partitions in self._partitions_of(assigned).items():
                await restore_joins(
                    self.broker, self.runners[index].store, sorted(partitions), security=self.options.security
                )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.worker.metrics is not None:
            self.worker.metrics.rebalances.child().value += 1
        await self.worker.restore(assigned)
