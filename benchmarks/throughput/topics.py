"""The broker side of a measurement: preload a variant's input topic, count its results as they arrive, read
them all back to check them, and delete the topics afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.throughput.events import PARTITIONS, Record
from streams.kafka.producer import Emission, produce


class OutputReader:
    """Counts the records arriving on a topic (from its beginning), noting when each batch arrived."""

    def __init__(self, broker: str, topic: str, target: int) -> None:
        self.broker = broker
        self.topic = topic
        self.target = target
        self.count = 0
        self.arrivals: list[tuple[float, int]] = []
        self.done = asyncio.Event()
        self.last_arrival = time.time()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=20, max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while self.count < self.target:
                batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
                got = sum(len(records) for records in batch.values())
                if got:
                    self.count += got
                    self.last_arrival = time.time()
                    self.arrivals.append((self.last_arrival, self.count))
            self.done.set()
        finally:
            await consumer.stop()

    def time_at(self, count: int) -> float:
        return next(at for at, seen in self.arrivals if seen >= count)


async def read_all(broker: str, topic: str, idle_s: float = 2.0) -> list[dict[str, Any]]:
    """Every record of ``topic`` from its beginning, decoded, until it has been quiet for ``idle_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    values: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for records in batch.values():
                values.extend(orjson.loads(record.value or b"null") for record in records)
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return values


async def preload(broker: str, topic: str, records: list[Record]) -> float:
    """Put ``records`` on ``topic``; returns events/s of the loading (for information)."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for begin in range(0, len(records), 10_000):
            chunk = records[begin : begin + 10_000]
            await produce(producer, (Emission(topic, r.partition, r.key, r.value) for r in chunk))
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


async def delete_topics(broker: str, names: list[str]) -> None:
    """Free the broker's memory (Tansu keeps everything in memory); best effort."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(names)
    finally:
        await admin.close()
