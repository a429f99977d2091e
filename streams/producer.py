"""Producing emissions in batches and waiting until the broker has acknowledged them all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from .emission import Emission


async def produce(producer: AIOKafkaProducer, emissions: Iterable[Emission]) -> int:
    """Send ``emissions`` (in order, per partition) and return once the broker acknowledged every one;
    raises if any send failed. Returns how many were sent."""
    batches: dict[tuple[str, int], Any] = {}
    pending: list[asyncio.Future[Any]] = []
    count = 0
    for emission in emissions:
        count += 1
        where = (emission.topic, emission.partition)
        batch = batches.get(where)
        if batch is None:
            batch = batches[where] = producer.create_batch()
        headers = list(emission.headers)
        if batch.append(key=emission.key, value=emission.value, timestamp=None, headers=headers) is None:
            pending.append(await producer.send_batch(batch, emission.topic, partition=emission.partition))
            batch = batches[where] = producer.create_batch()
            if batch.append(key=emission.key, value=emission.value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record for {emission.topic} is larger than the producer's batch size")
    for (topic, partition), batch in batches.items():
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
    if pending:
        await asyncio.gather(*pending)
    return count
