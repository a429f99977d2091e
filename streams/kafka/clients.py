"""The worker's two Kafka clients, tuned for its hot path: one producer for every record it writes, one consumer in the
pipelines' consumer group, each pausing after a failed metadata update.

Why the pause: aiokafka updates metadata again as soon as anything asks, and with the broker down and a partition's
leader unknown its producer's sender asks again the moment an update fails: the worker then spins a core and logs
thousands of "Unable to update metadata" errors a second for as long as the broker is away (the fetcher has a twin
of this loop, aio-libs/aiokafka#1155). Waiting the client's retry backoff after a failed update bounds that to a few
attempts a second; a successful update is not delayed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from streams.kafka.producer import max_request_bytes
from streams.kafka.security import PLAINTEXT, KafkaSecurity

METADATA_RETRY_BACKOFF_S = 0.1
"""The pause after a failed metadata update (aiokafka's own ``retry_backoff_ms`` default)."""


def worker_producer(servers: list[str], max_record_bytes: int, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    """Acknowledged by every in-sync replica; batches of up to 512 KiB that wait 2 ms for company; not idempotent
    (the embedded broker refuses idempotent producers, and offsets commit only after acknowledgements anyway)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers,
        acks="all",
        linger_ms=2,
        max_batch_size=512 * 1024,
        max_request_size=max_request_bytes(max_record_bytes),
        enable_idempotence=False,
        **security.client_kwargs(),
    )
    pause_after_failed_metadata_updates(producer.client, METADATA_RETRY_BACKOFF_S)
    return producer


def worker_consumer(
    servers: list[str],
    group_id: str,
    session_timeout_ms: int,
    fetch_max_wait_ms: int,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaConsumer:
    """Offsets committed by the worker only (after its batch is acknowledged and written); range assignment, so
    that partition n of every topic of a pipeline lands on the same worker; fetches of up to 4 MiB."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 5),
        rebalance_timeout_ms=max(session_timeout_ms, 10_000),
        max_poll_interval_ms=300_000,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        check_crcs=False,  # librdkafka's default too: the broker checked them on produce. Checking costs
        # ~3 % of the worker's CPU, and a failed check would stop the worker at that record for good;
        # damage that breaks the JSON sends the record to the dead-letter queue with its bytes instead
        **security.client_kwargs(),
    )
    pause_after_failed_metadata_updates(consumer._client, METADATA_RETRY_BACKOFF_S)
    return consumer


def pause_after_failed_metadata_updates(client: Any, backoff_s: float) -> None:
    """Make ``client`` (an ``AIOKafkaClient``) wait ``backoff_s`` after each metadata update that failed."""
    update = client._metadata_update  # what its metadata task calls for every update

    async def paused(cluster_metadata: Any, topics: Any) -> Any:
        updated = await update(cluster_metadata, topics)
        if not updated:
            await asyncio.sleep(backoff_s)
        return updated

    client._metadata_update = paused
