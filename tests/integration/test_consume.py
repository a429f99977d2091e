"""``ia-modules consume`` on a real Apache Kafka, as a user runs it: started before or after the results, with and
without ``--limit``, live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from tests.integration.streaming_support import CLI, ROOT, Namespace, pipelines_dir_with, publish_raw

pytestmark = pytest.mark.integration


async def start_consume(namespace: Namespace, folder: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        CLI, "consume", "custom_processing", *args, cwd=ROOT, env=namespace.env(folder),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finished(process: asyncio.subprocess.Process, timeout_s: float = 60) -> tuple[list[dict[str, object]], str]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    return [json.loads(line) for line in stdout.decode().splitlines()], stderr.decode()


def results(*seqs: int) -> list[bytes]:
    return [orjson.dumps({"run_id": f"r{seq}", "status": "success", "seq": seq}) for seq in seqs]


async def test_consume_started_before_the_output_topic_exists_prints_what_arrives_later(
    kafka_broker: str, tmp_path: Path
) -> None:
    namespace = Namespace.fresh(kafka_broker)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    process = await start_consume(namespace, folder, "--limit", "3", "--timeout", "30")
    assert process.stderr is not None
    said = await asyncio.wait_for(process.stderr.readline(), 60)  # however long its start takes on a busy machine
    assert said.decode().startswith(f"waiting for {namespace.topic('custom_processing', 'output')} to be created")
    await publish_raw(kafka_broker, namespace.topic("custom_processing", "output"), results(0, 1, 2))
    records, stderr = await finished(process)
    assert process.returncode == 0, stderr
    assert sorted(record["seq"] for record in records) == [0, 1, 2]
    assert "Traceback" not in stderr


async def test_consume_prints_each_record_as_it_arrives(kafka_broker: str, tmp_path: Path) -> None:
    namespace = Namespace.fresh(kafka_broker)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    topic = namespace.topic("custom_processing", "output")
    await publish_raw(kafka_broker, topic, results(0))
    process = await start_consume(namespace, folder, "--timeout", "60")  # no --limit: a live tail
    assert process.stdout is not None
    try:
        line = b""
        for seq in range(1, 60):  # until consume is at the end and reads the next one
            await publish_raw(kafka_broker, topic, results(seq))
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 1)
                break
            except TimeoutError:
                continue
        record = json.loads(line)
        assert record["seq"] > 0, "consume starts at the end: what was there before is not printed"
    finally:
        process.terminate()
        await process.wait()


async def test_consume_that_gets_fewer_records_than_its_limit_exits_1_saying_so(
    kafka_broker: str, tmp_path: Path
) -> None:
    namespace = Namespace.fresh(kafka_broker)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    await publish_raw(kafka_broker, namespace.topic("custom_processing", "output"), results(0))
    process = await start_consume(namespace, folder, "--from-beginning", "--limit", "2", "--timeout", "1")
    records, stderr = await finished(process)
    assert process.returncode == 1
    assert [record["seq"] for record in records] == [0]
    assert "got 1 of 2 record(s) before 1s passed without a new one" in stderr


async def test_consume_of_a_topic_that_never_appears_ends_after_its_timeout(kafka_broker: str, tmp_path: Path) -> None:
    namespace = Namespace.fresh(kafka_broker)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    process = await start_consume(namespace, folder, "--timeout", "1")
    records, stderr = await finished(process, 30)
    assert process.returncode == 0, stderr
    assert records == []
    topic = namespace.topic("custom_processing", "output")
    assert stderr == f"waiting for {topic} to be created (up to 1s); it will be read from its beginning\n"


async def test_consume_dlq_reads_the_dead_letter_topic(kafka_broker: str, tmp_path: Path) -> None:
    namespace = Namespace.fresh(kafka_broker)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    await publish_raw(kafka_broker, namespace.topic("custom_processing", "output"), results(0))
    letter = {"run_id": "r1", "reason": "not JSON", "raw": "eyI="}
    await publish_raw(kafka_broker, namespace.topic("custom_processing", "dlq"), [orjson.dumps(letter)])
    process = await start_consume(namespace, folder, "--dlq", "--from-beginning", "--limit", "1", "--timeout", "10")
    records, stderr = await finished(process)
    assert process.returncode == 0, stderr
    assert records == [letter]
