"""Gauges read when ``/metrics`` is scraped rather than kept up to date on the hot path."""

from __future__ import annotations

from collections.abc import Mapping, Set

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from streams.joins.store import JoinStore
from streams.metrics.catalog import WorkerMetrics, step_label


async def refresh_gauges(
    metrics: WorkerMetrics,
    consumer: AIOKafkaConsumer | None,
    assigned: Set[TopicPartition],
    stores: Mapping[str, JoinStore],
    pipeline_of: Mapping[str, str],
) -> None:
    """Joins waiting per pipeline and join; partitions assigned; and the lag of each (``pipeline_of``: the
    pipeline of each topic): the broker's end offset,
    asked now (it moves while the worker is paused or stuck, when no fetch would tell), minus the consumer's
    position."""
    for pipeline, store in stores.items():
        for node, count in store.waiting_by_node().items():
            metrics.joins_waiting.child(pipeline, step_label(node)).set(count)
    partitions = sorted(assigned)
    metrics.assigned_partitions.child().set(len(partitions))
    lag: dict[tuple[str, ...], float] = {}
    if consumer is not None and partitions:
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            try:
                position = await consumer.position(tp)
                lag[(pipeline_of.get(tp.topic, ""), tp.topic, str(tp.partition))] = max(0, ends[tp] - position)
            except IllegalStateError:  # revoked meanwhile
                continue
    metrics.consumer_lag.replace(lag)
