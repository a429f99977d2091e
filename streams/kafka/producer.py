"""Producing records: ``Emission`` (a record to produce), the record size limit, and sending emissions in
batches: handed to the producer at once, acknowledged by the broker later."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""The largest record value a worker produces (``IA_MAX_RECORD_BYTES``): below Kafka's default
``message.max.bytes`` (1,048,588), with room for the record's key, headers and batch framing."""


def max_request_bytes(max_record_bytes: int) -> int:
    """The producer's ``max_request_size`` for records up to ``max_record_bytes``: room for one with its batch
    framing, and never below aiokafka's default (1 MiB)."""
    return max(1024 * 1024, max_record_bytes + 64 * 1024)


class Emission(NamedTuple):
    """Where a record goes and what it holds (a tuple: several are made per event, and cheaply)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Sent:
    """Emissions handed to the producer: how many, and one future per producer batch, done once the broker
    acknowledged that batch (or failed)."""

    count: int = 0
    acknowledgements: list[asyncio.Future[Any]] = field(default_factory=list)

    async def acknowledged(self) -> int:
        """Wait until the broker acknowledged every emission; raises if any send failed."""
        if self.acknowledgements:
            await asyncio.gather(*self.acknowledgements)
        return self.count


async def produce(producer: AIOKafkaProducer, emissions: Iterable[Emission]) -> int:
    """Send ``emissions`` (in order, per partition) and return once the broker acknowledged every one;
    raises if any send failed. Returns how many were sent."""
    return await (await send(producer, emissions)).acknowledged()


async def send(producer: AIOKafkaProducer, emissions: Iterable[Emission]) -> Sent:
    """Hand ``emissions`` to the producer, in order per partition, one producer batch per partition (and
    more when one fills up), without waiting for the broker."""
    batches: dict[tuple[str, int], Any] = {}
    sent = Sent()
    for emission in emissions:
        sent.count += 1
        where = (emission.topic, emission.partition)
        batch = batches.get(where)
        if batch is None:
            batch = batches[where] = producer.create_batch()
        headers = list(emission.headers)
        if batch.append(key=emission.key, value=emission.value, timestamp=None, headers=headers) is None:
            sent.acknowledgements.append(await producer.send_batch(batch, emission.topic, partition=emission.partition))
            batch = batches[where] = producer.create_batch()
            if batch.append(key=emission.key, value=emission.value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record for {emission.topic} is larger than the producer's batch size")
    for (topic, partition), batch in batches.items():
        if batch.record_count():
            sent.acknowledgements.append(await producer.send_batch(batch, topic, partition=partition))
    return sent


class SendQueue:
    """Hands each batch of emissions to the producer in the background, after the one submitted before it.

    aiokafka keeps one undelivered producer batch per partition, so handing over a batch can wait for the broker
    to take the previous one; the worker computes its next batch meanwhile instead of waiting with it."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._last: asyncio.Task[Sent] | None = None

    def submit(self, emissions: list[Emission]) -> asyncio.Task[Sent]:
        """Queue ``emissions`` behind what was submitted before (per-partition order is kept); the task is done
        once they are handed over (its ``Sent`` then waits for the broker)."""
        self._last = asyncio.ensure_future(self._send_after(self._last, emissions))
        return self._last

    async def _send_after(self, previous: asyncio.Task[Sent] | None, emissions: list[Emission]) -> Sent:
        if previous is not None:
            await previous  # a batch that could not be handed over stops the ones behind it too
        return await send(self._producer, emissions)
