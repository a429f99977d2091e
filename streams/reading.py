"""Reading a topic's records from given positions until enough came or the topic went quiet."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from .cluster import bootstrap_servers


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:  # the topic may be newer than the client's metadata
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def end_offsets(broker: str, topic: str) -> dict[int, int]:
    """Where ``topic``'s partitions end now: read from here to see only what comes next."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), group_id=None)
    try:
        await consumer.start()  # inside: a broker that does not answer still gets the client closed
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_records(
    broker: str,
    topic: str,
    *,
    start: dict[int, int] | str = "end",
    limit: int | None = None,
    idle_s: float = 10.0,
) -> AsyncIterator[dict[str, Any]]:
    """Decoded records of ``topic`` from ``start`` (``"beginning"``, ``"end"`` or offsets by partition), until
    ``limit`` came or ``idle_s`` passed without a new one."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), group_id=None, enable_auto_commit=False)
    count = 0
    try:
        await consumer.start()
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        if start == "beginning":
            await consumer.seek_to_beginning(*tps)
        elif start == "end":
            await consumer.seek_to_end(*tps)
        else:
            assert isinstance(start, dict)
            for tp in tps:
                consumer.seek(tp, start.get(tp.partition, 0))
        idle_since = time.monotonic()
        while limit is None or count < limit:
            left = idle_s - (time.monotonic() - idle_since)
            if left <= 0:
                return
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batch.values():
                for record in records:
                    idle_since = time.monotonic()
                    yield orjson.loads(record.value or b"null")
                    count += 1
                    if limit is not None and count >= limit:
                        return
    finally:
        await consumer.stop()
