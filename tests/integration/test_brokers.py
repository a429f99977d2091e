"""The two brokers the project runs on: the session's real Kafka (fixture `kafka_broker`) and the embedded Tansu.

Each must create a 4-partition topic, carry 100 keyed messages through a consumer group, and report a cluster id
(run ids are derived from it). The embedded broker must also record itself for other shells and clean up after.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.embedded.broker import (
    RECORD_NAME,
    EmbeddedBrokerError,
    embedded_broker,
    find_recorded_broker,
    free_port,
    pid_alive,
    read_broker_record,
    recorded_broker_address,
)
from streams.kafka.cluster import cluster_id
from tests.integration.streaming_support import CLI, ROOT

pytestmark = pytest.mark.integration

MESSAGES = 100
PARTITIONS = 4


async def _create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    """Create `topic` and wait until every partition has a leader (produce right after creation may race it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_topics([topic])
            parts = described[0]["partitions"] if described and described[0]["error_code"] == 0 else []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            assert time.monotonic() < deadline, f"{topic} has no leaders: {described}"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _round_trip(bootstrap: str) -> None:
    """Produce MESSAGES keyed messages to a fresh 4-partition topic and read them all back through a group."""
    topic = f"ia.test.{uuid.uuid4().hex[:10]}"
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        sends = [
            await producer.send(topic, key=f"k{i % 25}".encode(), value=json.dumps({"i": i}).encode())
            for i in range(MESSAGES)
        ]
        await producer.flush()
        metadata = [await s for s in sends]
    finally:
        await producer.stop()
    assert {m.partition for m in metadata} == set(range(PARTITIONS)), "25 keys hash onto all 4 partitions"

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ia-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,  # Tansu holds a JoinGroup for about half the session timeout
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    seen: dict[int, tuple[str, int]] = {}
    try:
        deadline = time.monotonic() + 60
        while len(seen) < MESSAGES and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    seen[json.loads(record.value)["i"]] = (record.key.decode(), tp.partition)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(seen) == list(range(MESSAGES))
    by_key: dict[str, set[int]] = {}
    for key, partition in seen.values():
        by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in by_key.values()), "one key, one partition"


async def test_kafka_broker_round_trip_and_cluster_id(kafka_broker: str) -> None:
    """The session's Kafka carries 100 messages over 4 partitions and reports one stable cluster id."""
    await _round_trip(kafka_broker)
    first = await cluster_id(kafka_broker)
    assert first
    assert await cluster_id(f"kafka://{kafka_broker}") == first


async def test_embedded_broker_lifecycle(tmp_path: Path) -> None:
    """Tansu starts, answers, is recorded in broker.json, round-trips messages, and leaves nothing behind."""
    started = time.monotonic()
    async with embedded_broker(tmp_path) as address:
        elapsed = time.monotonic() - started
        print(f"\nembedded Tansu broker ready in {elapsed:.3f} s at {address}")
        record = read_broker_record(tmp_path)
        assert record is not None
        assert record.address == address and address.startswith("127.0.0.1:")
        assert pid_alive(record.pid)
        assert recorded_broker_address(tmp_path) == address
        assert await find_recorded_broker(tmp_path) == address
        assert await cluster_id(address) == record.cluster_id
        await _round_trip(address)
    assert not (tmp_path / RECORD_NAME).exists()
    assert not pid_alive(record.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(record.pid, 0)  # reaped, not a zombie
    assert recorded_broker_address(tmp_path) is None
    assert (tmp_path / "broker.log").read_text().strip(), "Tansu's output goes to broker.log"


async def test_embedded_broker_fresh_cluster_id_each_start(tmp_path: Path) -> None:
    """Two starts give two cluster ids, so run ids of an old in-memory broker never come back."""
    ids = []
    for _ in range(2):
        async with embedded_broker(tmp_path) as address:
            ids.append(await cluster_id(address))
    assert ids[0] != ids[1]


async def test_embedded_broker_refuses_second_start_in_same_state_dir(tmp_path: Path) -> None:
    """A second start in the same state dir names the running broker instead of hiding it."""
    async with embedded_broker(tmp_path) as address:
        with pytest.raises(EmbeddedBrokerError, match=address):
            async with embedded_broker(tmp_path):
                pass  # pragma: no cover
        assert recorded_broker_address(tmp_path) == address


async def test_a_second_worker_in_the_folder_names_the_running_broker_and_starts_nothing(tmp_path: Path) -> None:
    """As a user meets it: ``ia-modules worker`` in a folder whose embedded broker already runs."""
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IA_")}
    env.update(IA_DATABASE_URL="none", IA_WEB_PORT=str(free_port()))
    async with embedded_broker(tmp_path / ".ia") as address:
        done = await asyncio.to_thread(
            subprocess.run, [CLI, "worker"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert recorded_broker_address(tmp_path / ".ia") == address
    assert done.returncode == 1, done.stderr
    assert f"error: an embedded broker already runs at {address}" in done.stderr
    assert f"use it with IA_BROKER=kafka://{address} or stop it" in done.stderr
    assert "Traceback" not in done.stderr


async def test_stale_record_is_ignored_and_replaced(tmp_path: Path) -> None:
    """A broker.json whose process is gone reads as no broker, and a new start replaces it."""
    (tmp_path / RECORD_NAME).write_text(
        json.dumps({"address": "127.0.0.1:1", "pid": 2**22 + 12345, "cluster_id": "old", "started_at": 0})
    )
    assert recorded_broker_address(tmp_path) is None
    async with embedded_broker(tmp_path) as address:
        assert recorded_broker_address(tmp_path) == address


CHILD = """
import asyncio, sys
from pathlib import Path
from streams.embedded.broker import embedded_broker

async def main() -> None:
    async with embedded_broker(Path(sys.argv[1])) as address:
        print(address, flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_embedded_broker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """A worker killed with SIGKILL takes its Tansu with it, and its stale record reads as no broker."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        address = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().strip()
        record = read_broker_record(tmp_path)
        assert record is not None and record.address == address
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    for _ in range(200):  # up to 10 s
        if not pid_alive(record.pid):
            break
        await asyncio.sleep(0.05)
    assert not pid_alive(record.pid)
    assert recorded_broker_address(tmp_path) is None
