"""Helpers for the streaming integration tests: workers as real processes, publishing and collecting records."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ia-modules")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Namespace:
    """Topic prefix and consumer group of one test, so tests never see each other's records."""

    broker: str
    prefix: str
    app_id: str
    database_url: str = "none"

    @classmethod
    def fresh(cls, broker: str, database_url: str = "none") -> Namespace:
        """A new namespace; ``database_url`` is where workers write results (``none``: nowhere)."""
        tag = uuid.uuid4().hex[:10]
        return cls(broker, f"t{tag}", f"app-{tag}", database_url)

    def env(self, pipelines_dir: Path, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "IA_BROKER": f"kafka://{self.broker}",
            "IA_TOPIC_PREFIX": self.prefix,
            "IA_APP_ID": self.app_id,
            "IA_PIPELINES_DIR": str(pipelines_dir),
            "IA_SESSION_TIMEOUT_MS": "3000",
            "IA_DATABASE_URL": self.database_url,
            "IA_LOG_LEVEL": "WARNING",
            **extra,
        }

    def topic(self, pipeline: str, suffix: str) -> str:
        return f"{self.prefix}.{pipeline}.{suffix}"


class WorkerProcess:
    """``ia-modules worker`` in a process of its own, as an operator runs it."""

    def __init__(
        self, namespace: Namespace, pipelines_dir: Path, log: Path, *, args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.port = free_port()
        self.log = log
        environment = namespace.env(pipelines_dir, IA_WEB_PORT=str(self.port), **env)
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            [CLI, "worker", *args], cwd=ROOT, env=environment, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())
        except OSError:
            return 0, {}

    def metrics(self) -> tuple[int, str]:
        """``/metrics``: status and text (404 when IA_METRICS=0)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    async def wait_consuming(self, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            status, body = await asyncio.to_thread(self.health)
            if status == 200:
                return body
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker not consuming after {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


def publish(
    namespace: Namespace, pipeline: str, events_file: Path, pipelines_dir: Path
) -> subprocess.CompletedProcess[str]:
    """``ia-modules publish`` as a user runs it."""
    return subprocess.run(
        [CLI, "publish", pipeline, str(events_file)],
        cwd=ROOT, env=namespace.env(pipelines_dir), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def publish_raw(broker: str, topic: str, values: Iterable[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read(
    broker: str, topic: str, timeout_s: float, take: Callable[[list[ConsumerRecord[bytes, bytes]]], bool]
) -> None:
    """Read ``topic`` (all partitions) from its beginning, handing each fetched batch to ``take`` until it says
    it has enough or the time runs out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        partitions: set[int] = set()
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        enough = take([])  # nothing asked for: nothing to wait for
        while not enough and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                enough = take(batch) or enough
    finally:
        await consumer.stop()


async def collect(
    broker: str,
    topic: str,
    count: int,
    timeout_s: float = 90,
    distinct: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``topic`` from its beginning, decoded, until there are ``count`` of them (or ``count``
    different ``distinct(record)`` values, where repeats are expected), or the time runs out."""
    records: list[dict[str, Any]] = []
    seen: set[Any] = set()

    def take(batch: list[ConsumerRecord[bytes, bytes]]) -> bool:
        decoded = [orjson.loads(r.value) for r in batch if r.value is not None]
        records.extend(decoded)
        if distinct is not None:
            seen.update(distinct(record) for record in decoded)
        return (len(seen) if distinct else len(records)) >= count

    await _read(broker, topic, timeout_s, take)
    return records


async def records_of(
    broker: str,
    topic: str,
    count: int,
    timeout_s: float = 60,
    where: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda record: True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Records of ``topic`` (all partitions) as consumed (keys, values and headers) until ``count`` of them are
    ``where`` ones, or the time runs out; only those."""
    records: list[ConsumerRecord[bytes, bytes]] = []

    def take(batch: list[ConsumerRecord[bytes, bytes]]) -> bool:
        records.extend(record for record in batch if where(record))
        return len(records) >= count

    await _read(broker, topic, timeout_s, take)
    return records


async def topic_record_count(broker: str, topics: list[str]) -> dict[str, int]:
    """How many records each topic holds (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        counts = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
            ends = await consumer.end_offsets(tps) if tps else {}
            counts[topic] = sum(ends.values())
        return counts
    finally:
        await consumer.stop()


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def pipelines_dir_with(tmp_path: Path, *pipeline_ids: str) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir(exist_ok=True)
    for pipeline_id in pipeline_ids:
        shutil.copy(ROOT / "pipelines" / f"{pipeline_id}.json", folder)
        shutil.copy(ROOT / "pipelines" / f"{pipeline_id}.events.jsonl", folder)
    return folder


def assert_every_event_has_its_result(results: list[dict[str, Any]], count: int) -> None:
    """Events ``seq`` 0 to ``count``-1 each have a result; a repeated one (at least once) has the same run id."""
    runs: dict[int, set[str]] = defaultdict(set)
    for record in results:
        runs[record["input"]["seq"]].add(record["run_id"])
    missing = sorted(set(range(count)) - set(runs))
    assert not missing, f"{len(missing)} events got no result, e.g. {missing[:10]}"
    assert all(len(ids) == 1 for ids in runs.values()), "a repeated result must repeat the same run id"


def numbered_events(count: int) -> list[dict[str, object]]:
    samples = [
        json.loads(line)
        for line in (ROOT / "pipelines" / "custom_processing.events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return [{**samples[i % len(samples)], "seq": i} for i in range(count)]
