"""Reading a topic's records from given positions until enough came or the topic went quiet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.cluster import bootstrap_servers
from streams.kafka.security import PLAINTEXT, KafkaSecurity

TOPIC_POLL_S = 0.5
"""How often a reader looks for a topic that does not exist yet."""


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:  # the topic may be newer than the client's metadata
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def end_offsets(broker: str, topic: str, *, security: KafkaSecurity = PLAINTEXT) -> dict[int, int]:
    """Where ``topic``'s partitions end now: read from here to see only what comes next."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(broker), group_id=None, **security.client_kwargs())
    try:
        await consumer.start()  # inside: a broker that does not answer still gets the client closed
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_record_batches(
    broker: str,
    topic: str,
    *,
    start: dict[int, int] | str = "end",
    limit: int | None = None,
    idle_s: float = 10.0,
    security: KafkaSecurity = PLAINTEXT,
    waiting: Callable[[], None] | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Decoded records of ``topic`` from ``start`` (``"beginning"``, ``"end"`` or offsets by partition), a batch
    as each fetch brings them (a live reader shows each at once), until ``limit`` came or ``idle_s`` passed without
    a new one. A topic that does not exist yet is waited for, within ``idle_s``; once it does, all of it is new,
    so ``"end"`` reads it from its beginning (``waiting`` is called once when it starts waiting)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker), group_id=None, enable_auto_commit=False, **security.client_kwargs()
    )
    count = 0
    try:
        await consumer.start()
        idle_since = time.monotonic()
        tps = await topic_partitions(consumer, topic)
        if not tps and waiting is not None:
            waiting()
        while not tps:
            if time.monotonic() - idle_since >= idle_s:
                return
            await asyncio.sleep(TOPIC_POLL_S)
            tps = await topic_partitions(consumer, topic)
            if tps and start == "end":
                start = "beginning"
        consumer.assign(tps)
        if start == "beginning":
            await consumer.seek_to_beginning(*tps)
        elif start == "end":
            await consumer.seek_to_end(*tps)
        else:
            assert isinstance(start, dict)
            for tp in tps:
                consumer.seek(tp, start.get(tp.partition, 0))
        while limit is None or count < limit:
            left = idle_s - (time.monotonic() - idle_since)
            if left <= 0:
                return
            fetched = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            records = [orjson.loads(r.value or b"null") for batch in fetched.values() for r in batch]
            if not records:
                continue
            idle_since = time.monotonic()
            if limit is not None:
                records = records[: limit - count]
            count += len(records)
            yield records
    finally:
        await consumer.stop()
