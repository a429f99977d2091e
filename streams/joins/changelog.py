"""Rebuilding join state from the pipeline's compacted changelog topic, for partitions a worker takes over."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.joins.store import JoinStore
from streams.kafka.cluster import bootstrap_servers
from streams.kafka.security import PLAINTEXT, KafkaSecurity

logger = logging.getLogger(__name__)


async def restore_joins(
    broker: str, store: JoinStore, partitions: list[int], *, security: KafkaSecurity = PLAINTEXT
) -> int:
    """Read the changelog partitions to their end into ``store``; returns the records read."""
    tps = [TopicPartition(store.topic, p) for p in partitions]
    for partition in partitions:
        store.drop(partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker), enable_auto_commit=False, group_id=None, **security.client_kwargs()
    )
    await consumer.start()
    read = 0
    try:
        ends = await consumer.end_offsets(tps)
        # Only partitions with records are read (Tansu takes 0.5 s to say where an empty one begins). They are
        # assigned and sent to their beginning with no await in between: a position reset that the assignment
        # starts on its own could otherwise land after the seek and skip what is there.
        remaining = {tp for tp in tps if ends[tp] > 0}
        consumer.assign(list(remaining))
        if remaining:
            await consumer.seek_to_beginning(*remaining)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    store.apply(tp.partition, record.key or b"", record.value)
                    read += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError:
        logger.exception("restoring join state from %s failed", store.topic)
        raise
    finally:
        await consumer.stop()
    return read
