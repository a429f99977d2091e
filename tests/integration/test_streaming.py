"""The streaming runtime on a real Apache Kafka: workers as processes, events published as users publish them."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from ia_modules.database import DatabaseManager
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.loader import load_plan
from streams.envelope import Envelope, partition_for
from streams.topology import build_topology
from tests.integration.streaming_support import (
    ROOT,
    Namespace,
    WorkerProcess,
    assert_every_event_has_its_result,
    canonical,
    collect,
    numbered_events,
    pipelines_dir_with,
    publish,
    publish_raw,
    topic_record_count,
)
from tests.kafka_broker import kafka_broker_process, restart, stop_process

pytestmark = pytest.mark.integration

SHIPPED = sorted(p.stem for p in (ROOT / "pipelines").glob("*.json"))


@pytest.mark.parametrize("fuse", ["1", "0"], ids=["fused", "unfused"])
@pytest.mark.parametrize("pipeline_id", SHIPPED)
async def test_streamed_results_equal_in_process_results(
    kafka_broker: str, postgres_url: str, tmp_path: Path, pipeline_id: str, fuse: str
) -> None:
    folder = pipelines_dir_with(tmp_path, pipeline_id)
    events_file = folder / f"{pipeline_id}.events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_FUSE=fuse)
    try:
        await worker.wait_consuming()
        published = publish(namespace, pipeline_id, events_file, folder)
        assert published.returncode == 0, published.stderr
        results = await collect(kafka_broker, namespace.topic(pipeline_id, "output"), len(events))
    finally:
        assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert len(results) == len(events), "one result record per event, no more, no less"
    pipeline = Pipeline(load_plan(folder / f"{pipeline_id}.json"))
    expected = {}
    for event in events:
        result = await pipeline.run(event)
        expected[canonical(event)] = (result.status, result.outputs)
    for record in results:
        assert (record["status"], record["outputs"]) == expected[canonical(record["input"])], record["input"]
        assert record["pipeline"] == pipeline_id and record["source"]["topic"] == namespace.topic(pipeline_id, "input")
    async with DatabaseManager(postgres_url, project_migrations_dir=False) as db:
        rows = await db.fetch_all("SELECT run_id::text AS run_id, status, input::text, output::text FROM pipeline_runs")
    assert len(rows) == len(events), "exactly one pipeline_runs row per event"
    for row in rows:
        assert (row["status"], json.loads(row["output"])) == expected[canonical(json.loads(row["input"]))]
    assert {row["run_id"] for row in rows} == {record["run_id"] for record in results}
    topology = build_topology(pipeline.plan, namespace.prefix, namespace.app_id, fuse == "1")
    carried = await topic_record_count(kafka_broker, topology.stage_topics())
    assert sum(carried.values()) > 0, f"routing went over the stage topics: {carried}"
    ran = {entry["step"] for record in results for entry in record["trace"] if entry["status"] != "skipped"}
    for stage in topology.stages.values():
        if stage.name in ran and stage.name != topology.start.name:
            assert carried[stage.topic] > 0, f"{stage.topic} carried no envelope, though {stage.name} ran"


async def test_two_workers_split_the_partitions_and_produce_every_result_once(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(400)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    namespace = Namespace.fresh(kafka_broker)
    first = WorkerProcess(namespace, folder, tmp_path / "first.log")
    second = WorkerProcess(namespace, folder, tmp_path / "second.log")
    try:
        await first.wait_consuming()
        await second.wait_consuming()
        inputs = namespace.topic("custom_processing", "input")
        for _ in range(100):  # wait until the group has settled on both
            bodies = [w.health()[1] for w in (first, second)]
            split = [set(body.get("partitions", {}).get(inputs, [])) for body in bodies]
            if all(split) and not (split[0] & split[1]) and (split[0] | split[1]) == {0, 1, 2, 3}:
                break
            await asyncio.sleep(0.2)
        assert all(split) and not (split[0] & split[1]), f"partitions not split: {split}"
        assert publish(namespace, "custom_processing", events_file, folder).returncode == 0
        results = await collect(kafka_broker, namespace.topic("custom_processing", "output"), len(events))
    finally:
        first.stop()
        second.stop()
    assert sorted(r["input"]["seq"] for r in results) == list(range(len(events)))


async def test_a_worker_killed_mid_stream_loses_no_event(kafka_broker: str, tmp_path: Path) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(3000)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    namespace = Namespace.fresh(kafka_broker)
    doomed = WorkerProcess(namespace, folder, tmp_path / "doomed.log", IA_BATCH_MAX_RECORDS="50")
    survivor = WorkerProcess(namespace, folder, tmp_path / "survivor.log", IA_BATCH_MAX_RECORDS="50")
    output = namespace.topic("custom_processing", "output")
    try:
        await doomed.wait_consuming()
        await survivor.wait_consuming()
        assert publish(namespace, "custom_processing", events_file, folder).returncode == 0
        while len(await collect(kafka_broker, output, 300, timeout_s=5)) < 300:
            pass
        doomed.kill()
        # the survivor repeats what the doomed worker had not committed: count events, not records
        results = await collect(kafka_broker, output, len(events), 120, distinct=lambda r: r["input"]["seq"])
        status, body = survivor.health()
    finally:
        survivor.stop()
    assert_every_event_has_its_result(results, len(events))
    assert status == 200 and len(body["partitions"][namespace.topic("custom_processing", "input")]) == 4


async def test_a_broker_restart_mid_stream_loses_no_event(tmp_path: Path) -> None:
    """The broker (a broker of its own, here the only one) restarts while a worker consumes: every event still
    gets its result, a repeated one with the same run id, and the worker rides it out in the same process."""
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(4000)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    with kafka_broker_process(tmp_path / "kafka") as first:
        broker = first
        namespace = Namespace.fresh(first.bootstrap)
        worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_BATCH_MAX_RECORDS="20")
        output = namespace.topic("custom_processing", "output")
        try:
            await worker.wait_consuming()
            published = await asyncio.to_thread(publish, namespace, "custom_processing", events_file, folder)
            assert published.returncode == 0
            while len(await collect(first.bootstrap, output, 300, timeout_s=5)) < 300:
                pass
            done_before = (await topic_record_count(first.bootstrap, [output]))[output]
            broker = await asyncio.to_thread(restart, first, 2.0)
            results = await collect(broker.bootstrap, output, len(events), 180, distinct=lambda r: r["input"]["seq"])
            status, _ = await asyncio.to_thread(worker.health)
        finally:
            worker.stop()
            stop_process(broker.process)
    assert done_before < len(events), "the worker was done before the broker stopped"
    assert_every_event_has_its_result(results, len(events))
    log = (tmp_path / "worker.log").read_text()
    assert status == 200, f"the worker did not ride out the restart:\n{log[-3000:]}"
    # a few retries a second while the broker is away, not a loop that spins a core and floods the log, and
    # each kind of client error shown once, with a count, rather than at every retry
    assert len(log.splitlines()) < 100, f"{len(log.splitlines())} log lines for one restart:\n{log[-3000:]}"


async def test_join_state_survives_the_death_of_its_worker(kafka_broker: str, tmp_path: Path) -> None:
    """The fast branch reaches the join on the first worker, which dies in the slow branch; the second worker
    restores the join from its changelog and completes the run without running the fast branch again."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    stamp = {"step_class": "StampStep", "module": "tests.integration.streaming_steps"}
    (folder / "survive.json").write_text(
        json.dumps(
            {
                "steps": [
                    {"id": "start", **stamp},
                    {"id": "fast", **stamp},
                    {"id": "pre", **stamp, "boundary": True},
                    {"id": "slow", **stamp},
                    {"id": "join", **stamp},
                ],
                "flow": {
                    "start_at": "start",
                    "paths": [
                        {"from": "start", "to": "fast"},
                        {"from": "start", "to": "pre"},
                        {"from": "pre", "to": "slow"},
                        {"from": "fast", "to": "join"},
                        {"from": "slow", "to": "join"},
                    ],
                },
                "outputs": {
                    "fast": "{{ fast.fast_pid }}",
                    "slow": "{{ slow.slow_pid }}",
                    "join": "{{ join.join_pid }}",
                },
            }
        )
    )
    namespace = Namespace.fresh(kafka_broker)
    doomed = WorkerProcess(namespace, folder, tmp_path / "doomed.log", CRASH_AT="slow")
    try:
        await doomed.wait_consuming()
        await publish_raw(kafka_broker, namespace.topic("survive", "input"), [b'{"order": 1}'])
        await asyncio.to_thread(doomed.process.wait, 60)
        assert doomed.process.returncode == -9, "the first worker died in the slow branch"
        survivor = WorkerProcess(namespace, folder, tmp_path / "survivor.log")
        try:
            await survivor.wait_consuming()
            [result] = await collect(kafka_broker, namespace.topic("survive", "output"), 1)
        finally:
            survivor.stop()
    finally:
        doomed.stop()
    assert result["status"] == "success"
    assert result["outputs"]["fast"] == doomed.process.pid, "the fast branch ran once, on the first worker"
    assert result["outputs"]["slow"] == result["outputs"]["join"] == survivor.process.pid


async def test_a_join_that_never_hears_from_a_branch_fails_its_run_on_time(kafka_broker: str, tmp_path: Path) -> None:
    """One branch of a run reaches the join and the other never comes (as if its envelope were lost): the
    worker's sweep fails the run after ``stream.join_timeout_s`` with one result and one dead letter, and
    goes on with the next event."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    stamp = {"step_class": "StampStep", "module": "tests.integration.streaming_steps"}
    (folder / "waits.json").write_text(
        json.dumps(
            {
                "steps": [{"id": step, **stamp} for step in ("start", "left", "right", "join")],
                "flow": {
                    "start_at": "start",
                    "paths": [
                        {"from": "start", "to": "left"},
                        {"from": "start", "to": "right"},
                        {"from": "left", "to": "join"},
                        {"from": "right", "to": "join"},
                    ],
                },
                "stream": {"join_timeout_s": 1, "partitions": 2},
            }
        )
    )
    plan = load_plan(folder / "waits.json")
    lost = Envelope(
        run_id="6b1f0c2e-0000-5000-8000-000000000001",
        pipeline="waits",
        version=plan.version,
        key="half-a-run",
        input={"order": 1},
        resume_at="left",
    )
    namespace = Namespace.fresh(kafka_broker)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log")
    try:
        await worker.wait_consuming()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                namespace.topic("waits", "left"),
                lost.encode(),
                key=b"half-a-run",
                partition=partition_for(b"half-a-run", 2),
            )
        finally:
            await producer.stop()
        [timed_out] = await collect(kafka_broker, namespace.topic("waits", "output"), 1)
        await publish_raw(kafka_broker, namespace.topic("waits", "input"), [b'{"order": 2}'])
        results = await collect(kafka_broker, namespace.topic("waits", "output"), 2)
        [letter] = await collect(kafka_broker, namespace.topic("waits", "dlq"), 1)
    finally:
        assert worker.stop() == 0
    assert timed_out["run_id"] == lost.run_id and timed_out["status"] == "failed"
    assert timed_out["error"]["type"] == "JoinTimeout"
    assert timed_out["error"]["message"] == "join 'join' waited over 1s for the paths from 'right'"
    assert [(e["step"], e["status"]) for e in timed_out["trace"]] == [("left", "ok"), ("join", "skipped")]
    assert (letter["kind"], letter["run_id"], letter["error"]["type"]) == ("run_failed", lost.run_id, "JoinTimeout")
    [after] = [result for result in results if result["run_id"] != lost.run_id]
    assert after["status"] == "success" and after["input"] == {"order": 2}, "the worker went on"


async def test_poison_inputs_go_to_the_dead_letter_topic_and_the_worker_goes_on(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "poison.json").write_text(
        json.dumps(
            {
                "steps": [{"id": "doomed", "step_class": "AlwaysFailsStep",
                           "module": "tests.integration.streaming_steps",
                           "retry": {"max_attempts": 2, "backoff_s": 0.01}}],
                "flow": {"start_at": "doomed"},
            }
        )
    )  # fmt: skip
    namespace = Namespace.fresh(kafka_broker)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log")
    try:
        await worker.wait_consuming()
        await publish_raw(
            kafka_broker, namespace.topic("poison", "input"), [b"not json at all", b"[1, 2, 3]", b'{"order": 7}']
        )
        letters = await collect(kafka_broker, namespace.topic("poison", "dlq"), 3)
        results = await collect(kafka_broker, namespace.topic("poison", "output"), 1)
        status, _ = worker.health()
    finally:
        assert worker.stop() == 0
    by_kind = defaultdict(list)
    for letter in letters:
        by_kind[letter["kind"]].append(letter)
    assert len(by_kind["bad_input"]) == 2
    reasons = {letter["error"]["message"].split(":")[0] for letter in by_kind["bad_input"]}
    assert reasons == {"an event must be a JSON object, not list", "invalid JSON"}
    raw = sorted(__import__("base64").b64decode(letter["raw"]) for letter in by_kind["bad_input"])
    assert raw == [b"[1, 2, 3]", b"not json at all"]
    [failed] = by_kind["step_failed"]
    assert (failed["step"], failed["attempts"], failed["error"]["type"]) == ("doomed", 2, "RuntimeError")
    assert failed["error"]["message"] == "cannot process order 7" and failed["resume_at"] == "doomed"
    assert failed["envelope"]["input"] == {"order": 7}
    [result] = results
    assert result["status"] == "failed" and result["error"]["step"] == "doomed"
    assert status == 200, "the worker is still consuming"
    assert orjson.dumps(result)


async def test_a_run_larger_than_the_broker_takes_fails_alone_and_the_worker_goes_on(
    kafka_broker: str, tmp_path: Path
) -> None:
    """A step returns 3 MB, more than Kafka's default message.max.bytes: that run fails with RecordTooLarge
    (a result and a dead letter the broker takes), and the events around it get their results."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "sized.json").write_text(
        json.dumps(
            {
                "steps": [{"id": "fetch", "step_class": "SizedStep", "module": "tests.integration.streaming_steps"}],
                "flow": {"start_at": "fetch"},
                "outputs": {"n": "{{ pipeline_input.n }}", "length": "{{ fetch.blob }}"},
            }
        )
    )
    sizes = [10, 3_000_000, 10, 600_000, 10]
    namespace = Namespace.fresh(kafka_broker)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log")
    try:
        await worker.wait_consuming()
        events = [orjson.dumps({"n": n, "size": size}) for n, size in enumerate(sizes)]
        await publish_raw(kafka_broker, namespace.topic("sized", "input"), events)
        results = await collect(kafka_broker, namespace.topic("sized", "output"), len(sizes))
        letters = await collect(kafka_broker, namespace.topic("sized", "dlq"), 1)
        status, _ = worker.health()
    finally:
        assert worker.stop() == 0
    by_n = {result["input"]["n"]: result for result in results}
    assert sorted(by_n) == list(range(len(sizes))), "every event got its one result"
    assert [by_n[n]["status"] for n in range(len(sizes))] == ["success", "failed", "success", "success", "success"]
    assert len(by_n[3]["outputs"]["length"]) == 600_000, "a large record within the limit goes through whole"
    error = by_n[1]["error"]
    assert error["type"] == "RecordTooLarge" and "IA_MAX_RECORD_BYTES" in error["message"]
    [letter] = letters
    assert letter["kind"] == "run_failed" and letter["run_id"] == by_n[1]["run_id"]
    assert status == 200, "the worker is still consuming"
