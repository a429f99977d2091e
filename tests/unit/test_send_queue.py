"""streams/kafka/producer.py: handing emissions to the producer in batches (``send``, ``produce``, ``SendQueue``)
and waiting for the broker's acknowledgements (``Sent``).

The producer is a stand-in with AIOKafkaProducer's ``create_batch`` / ``send_batch`` (tests/unit/kafka_stand_ins.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from streams.kafka.producer import Emission, SendQueue, Sent, max_request_bytes, produce, send
from tests.unit.kafka_stand_ins import StandInProducer


def emission(partition: int, value: str, topic: str = "ia.p.out") -> Emission:
    return Emission(topic, partition, b"k", value.encode(), (("ia-run-id", value.encode()),))


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- send / produce ----------------------------------------------------------------------------------------------------


async def test_send_hands_one_batch_per_partition_keeping_the_order_within_each() -> None:
    producer = StandInProducer(auto_acknowledge=False)
    emissions = [emission(0, "a1"), emission(1, "b1"), emission(0, "a2"), emission(1, "b2"), emission(0, "a3")]
    sent = await send(cast(Any, producer), emissions)
    assert [(h.topic, h.partition, h.values) for h in producer.handed] == [
        ("ia.p.out", 0, (b"a1", b"a2", b"a3")),
        ("ia.p.out", 1, (b"b1", b"b2")),
    ]
    assert sent.count == 5 and len(sent.acknowledgements) == 2
    first = producer.handed[0].records[0]
    assert (first.key, first.headers) == (b"k", (("ia-run-id", b"a1"),)), "key and headers go with the record"


async def test_a_full_batch_is_handed_over_and_the_rest_goes_in_a_new_one_in_order() -> None:
    producer = StandInProducer(batch_bytes=7)  # a key and two 2-byte values fit, not three
    sent = await send(cast(Any, producer), [emission(0, f"a{i}") for i in range(5)])
    assert [h.values for h in producer.handed] == [(b"a0", b"a1"), (b"a2", b"a3"), (b"a4",)]
    assert producer.sent_values("ia.p.out", 0) == [b"a0", b"a1", b"a2", b"a3", b"a4"]
    assert await sent.acknowledged() == 5


async def test_a_record_too_large_for_a_fresh_batch_raises_naming_its_topic() -> None:
    producer = StandInProducer(batch_bytes=10, strict=True)
    with pytest.raises(ValueError, match=r"a record for ia\.p\.dlq is larger than the producer's batch size"):
        await send(cast(Any, producer), [emission(0, "small", "ia.p.dlq"), emission(0, "x" * 20, "ia.p.dlq")])
    assert [h.values for h in producer.handed] == [(b"small",)], "what came before it was handed over"


async def test_produce_returns_the_count_once_every_batch_is_acknowledged() -> None:
    producer = StandInProducer(auto_acknowledge=False)
    producing = asyncio.ensure_future(produce(cast(Any, producer), [emission(0, "a"), emission(1, "b")]))
    await turns()
    assert not producing.done()
    producer.acknowledge(producer.handed[0])
    await turns()
    assert not producing.done(), "one partition's batch is still unacknowledged"
    producer.acknowledge(producer.handed[1])
    assert await producing == 2


async def test_produce_raises_when_the_broker_fails_a_batch() -> None:
    producer = StandInProducer(auto_acknowledge=False)
    producing = asyncio.ensure_future(produce(cast(Any, producer), [emission(0, "a"), emission(1, "b")]))
    await turns()
    producer.acknowledge(producer.handed[0])
    producer.acknowledge(producer.handed[1], error=ConnectionError("leader not available"))
    with pytest.raises(ConnectionError, match="leader not available"):
        await producing


async def test_nothing_to_send_hands_nothing_over() -> None:
    producer = StandInProducer()
    assert await produce(cast(Any, producer), []) == 0
    assert producer.handed == []


# -- Sent --------------------------------------------------------------------------------------------------------------


async def test_acknowledged_waits_for_every_future() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(3)]
    waiting = asyncio.ensure_future(Sent(7, list(futures)).acknowledged())
    for future in futures[:2]:
        future.set_result(None)
    await turns()
    assert not waiting.done()
    futures[2].set_result(None)
    assert await waiting == 7


async def test_acknowledged_raises_if_one_send_failed() -> None:
    loop = asyncio.get_running_loop()
    good: asyncio.Future[Any] = loop.create_future()
    bad: asyncio.Future[Any] = loop.create_future()
    good.set_result(None)
    bad.set_exception(TimeoutError("request timed out"))
    with pytest.raises(TimeoutError, match="request timed out"):
        await Sent(2, [good, bad]).acknowledged()


async def test_nothing_sent_is_acknowledged_at_once() -> None:
    assert await Sent().acknowledged() == 0


# -- SendQueue ---------------------------------------------------------------------------------------------------------


async def test_a_later_submit_waits_until_the_earlier_one_is_handed_over() -> None:
    producer = StandInProducer()
    producer.taking.clear()  # the producer cannot take a batch yet (its partition's last one is undelivered)
    queue = SendQueue(cast(Any, producer))
    first = queue.submit([emission(0, "a1"), emission(1, "b1")])
    second = queue.submit([emission(1, "b2"), emission(0, "a2")])
    await turns()
    assert producer.handed == [] and not first.done() and not second.done()
    producer.taking.set()
    await second
    assert first.done()
    assert [(h.partition, h.values) for h in producer.handed] == [
        (0, (b"a1",)),
        (1, (b"b1",)),
        (1, (b"b2",)),
        (0, (b"a2",)),
    ]
    assert producer.sent_values("ia.p.out", 0) == [b"a1", b"a2"]
    assert producer.sent_values("ia.p.out", 1) == [b"b1", b"b2"]
    assert await (await first).acknowledged() == 2 and await (await second).acknowledged() == 2


async def test_submit_returns_before_the_broker_acknowledges() -> None:
    producer = StandInProducer(auto_acknowledge=False)
    queue = SendQueue(cast(Any, producer))
    sent = await queue.submit([emission(0, "a")])
    acknowledging = asyncio.ensure_future(sent.acknowledged())
    await turns()
    assert not acknowledging.done()
    producer.acknowledge_all()
    assert await acknowledging == 1


async def test_a_batch_that_could_not_be_handed_over_stops_the_ones_behind_it() -> None:
    producer = StandInProducer(batch_bytes=10, strict=True)
    queue = SendQueue(cast(Any, producer))
    failing = queue.submit([emission(0, "first"), emission(0, "x" * 20)])
    behind = queue.submit([emission(0, "later")])
    with pytest.raises(ValueError, match="larger than the producer's batch size"):
        await failing
    with pytest.raises(ValueError, match="larger than the producer's batch size"):
        await behind
    assert [h.values for h in producer.handed] == [(b"first",)], "nothing behind the failed batch overtakes it"


# -- the producer's request size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_record_bytes", "request_bytes"),
    [(1_000, 1024 * 1024), (900_000, 1024 * 1024), (1_000_000, 1_000_000 + 64 * 1024)],
)
def test_the_producer_takes_a_request_with_the_largest_record_and_never_less_than_its_default(
    max_record_bytes: int, request_bytes: int
) -> None:
    assert max_request_bytes(max_record_bytes) == request_bytes
