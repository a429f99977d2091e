"""``ia-modules publish`` and the worker's topic checks on a real Apache Kafka, whose default limits and topic
auto-creation the embedded broker does not have."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.streaming_support import (
    CLI,
    ROOT,
    Namespace,
    collect,
    pipelines_dir_with,
    publish,
    topic_record_count,
)
from tests.kafka_broker import free_port
from tests.unit.test_event_depth import nested

pytestmark = pytest.mark.integration


async def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ia-modules ARGS`` as a user runs it, off the test's event loop."""
    return await asyncio.to_thread(
        subprocess.run, [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def partition_counts(broker: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
    finally:
        await admin.close()


async def test_an_event_larger_than_a_record_may_be_is_named_and_nothing_else_is_lost(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = [{"customer_id": "c1", "seq": 0, "text": "a" * 50_000},
              {"customer_id": "c1", "seq": 1, "text": "b" * 1_200_000},  # over Kafka's own 1 MB default too
              {"customer_id": "c1", "seq": 2, "text": "small"}]  # fmt: skip
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(event) + "\n" for event in events))
    namespace = Namespace.fresh(kafka_broker)
    done = publish(namespace, "custom_processing", events_file, folder)
    assert done.returncode == 1, done.stderr
    assert f"{events_file}:2: the event is 1,200,0" in done.stderr
    assert "bytes, over the 1,000,000 a record may have (IA_MAX_RECORD_BYTES)" in done.stderr
    assert "published 2 event(s)" in done.stderr
    assert "Traceback" not in done.stderr
    topic = namespace.topic("custom_processing", "input")
    published = await collect(kafka_broker, topic, 2)
    assert sorted(event["seq"] for event in published) == [0, 2]  # same key, same batch: both still sent
    assert (await topic_record_count(kafka_broker, [topic]))[topic] == 2


async def test_a_broker_that_refuses_a_batch_is_reported_without_a_traceback(kafka_broker: str, tmp_path: Path) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(json.dumps({"customer_id": "c1", "text": "b" * 1_200_000}) + "\n")
    namespace = Namespace.fresh(kafka_broker)
    env = namespace.env(folder, IA_MAX_RECORD_BYTES="2000000")  # above the broker's message.max.bytes
    done = await run_cli(["publish", "custom_processing", str(events_file)], env, ROOT)
    assert done.returncode == 2, done.stderr
    assert "error: the broker refused events of the next 1 line(s) (MessageSizeTooLargeError" in done.stderr
    assert "0 event(s) before them were published" in done.stderr
    assert "Traceback" not in done.stderr


async def test_publish_before_any_worker_creates_the_topics_with_the_pipelines_partitions(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    pipeline = orjson.loads((ROOT / "pipelines" / "custom_processing.json").read_bytes())
    pipeline["stream"]["partitions"] = 3  # the broker would create a topic on first use with 4 (num.partitions)
    (folder / "custom_processing.json").write_bytes(orjson.dumps(pipeline))
    events_file = ROOT / "pipelines" / "custom_processing.events.jsonl"
    count = sum(1 for line in events_file.read_text().splitlines() if line.strip())
    namespace = Namespace.fresh(kafka_broker)
    done = publish(namespace, "custom_processing", events_file, folder)
    assert done.returncode == 0, done.stderr
    topics = [namespace.topic("custom_processing", suffix) for suffix in ("input", "data_loader", "output", "dlq")]
    assert await partition_counts(kafka_broker, topics) == dict.fromkeys(topics, 3)
    assert (await topic_record_count(kafka_broker, topics[:1]))[topics[0]] == count


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_worker_on_a_topic_with_another_partition_count_says_which_and_exits_2(
    kafka_broker: str, tmp_path: Path, processes: str
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    namespace = Namespace.fresh(kafka_broker)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(namespace.topic("custom_processing", "input"), 2, 1)])
    finally:
        await admin.close()
    env = namespace.env(folder, IA_PROCESSES=processes, IA_WEB_PORT=str(free_port()))
    done = await run_cli(["worker"], env, tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        f"error: topic '{namespace.topic('custom_processing', 'input')}' has 2 partitions, its pipeline needs 4"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def default_sigint() -> None:
    """Ctrl-C as in a terminal: a test run started in the background ignores SIGINT, and its children would too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_an_interrupted_publish_says_how_many_events_were_published(kafka_broker: str, tmp_path: Path) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    namespace = Namespace.fresh(kafka_broker)
    topic = namespace.topic("custom_processing", "input")
    process = await asyncio.create_subprocess_exec(
        CLI, "publish", "custom_processing", "-", cwd=ROOT, env=namespace.env(folder),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=default_sigint,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(b"".join(orjson.dumps({"customer_id": f"c{i}", "text": "hi"}) + b"\n" for i in range(1000)))
    await process.stdin.drain()  # and kept open: the command waits for more lines, as with a producer still writing
    for _ in range(300):
        if (await topic_record_count(kafka_broker, [topic]))[topic] == 1000:
            break
        await asyncio.sleep(0.1)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr_bytes = await asyncio.wait_for(process.communicate(), 30)
    stderr = stderr_bytes.decode()
    assert process.returncode == 130, stderr
    assert f"interrupted: 1000 event(s) were published to {topic}; the lines after them were not" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("command", [["publish", "custom_processing", "pipelines/custom_processing.events.jsonl"],
                                     ["worker"]], ids=["publish", "worker"])  # fmt: skip
async def test_topics_the_broker_refuses_to_create_are_named_and_nothing_is_sent(
    kafka_broker: str, tmp_path: Path, command: list[str]
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    namespace = Namespace.fresh(kafka_broker)
    env = namespace.env(folder, IA_REPLICATION_FACTOR="3", IA_WEB_PORT=str(free_port()))  # a one-broker cluster
    done = await run_cli(command, env, ROOT)
    assert done.returncode == 2, done.stderr[-3000:]
    topic = namespace.topic("custom_processing", "input")
    assert f"error: the broker refused to create topic '{topic}' (InvalidReplicationFactorError): " in done.stderr
    assert "Traceback" not in done.stderr
    assert (await topic_record_count(kafka_broker, [topic]))[topic] == 0


def feedback_nested(seq: int, levels: int) -> bytes:
    """A custom_processing event nesting ``levels`` deep (its ``deep`` field: arrays and objects in turn)."""
    return nested(levels, customer_id=f"c{seq}", seq=seq, text="The parcel came a day late but in one piece.")


async def test_an_event_nested_too_deep_is_named_and_every_other_line_is_sent_and_counted(
    kafka_broker: str, tmp_path: Path
) -> None:
    """One level over IA_MAX_JSON_DEPTH (100), and 300 deep (past the 254 levels orjson writes: the command used
    to end there with a traceback, the lines after it in its chunk unsent and uncounted)."""
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    levels = [2, 100, 101, 2, 300, 2]  # seq 1 is at the limit
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(feedback_nested(seq, depth) + b"\n" for seq, depth in enumerate(levels)))
    namespace = Namespace.fresh(kafka_broker)
    done = publish(namespace, "custom_processing", events_file, folder)
    assert done.returncode == 1, done.stderr
    over = "over the 100 an event may have (IA_MAX_JSON_DEPTH)"
    assert f"{events_file}:3: the event nests 101 levels deep, {over}" in done.stderr
    assert f"{events_file}:5: the event nests 300 levels deep, {over}" in done.stderr
    assert "published 4 event(s)" in done.stderr and "2 line(s) were not sent" in done.stderr
    assert "Traceback" not in done.stderr
    topic = namespace.topic("custom_processing", "input")
    published = await collect(kafka_broker, topic, 4)
    assert sorted(event["seq"] for event in published) == [0, 1, 3, 5]
    assert (await topic_record_count(kafka_broker, [topic]))[topic] == 4


async def test_a_limit_set_above_what_orjson_writes_still_names_the_line_it_cannot_send(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(feedback_nested(seq, depth) + b"\n" for seq, depth in enumerate([2, 300, 2])))
    namespace = Namespace.fresh(kafka_broker)
    env = namespace.env(folder, IA_MAX_JSON_DEPTH="400")
    done = await run_cli(["publish", "custom_processing", str(events_file)], env, ROOT)
    assert done.returncode == 1, done.stderr
    assert f"{events_file}:2: the event cannot be encoded as JSON (Recursion limit reached)" in done.stderr
    assert "published 2 event(s)" in done.stderr and "Traceback" not in done.stderr
    topic = namespace.topic("custom_processing", "input")
    assert (await topic_record_count(kafka_broker, [topic]))[topic] == 2
