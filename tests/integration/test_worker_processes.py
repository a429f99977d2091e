"""``ia-modules worker --processes N`` on a real Apache Kafka and PostgreSQL: N worker processes in one group,
one health page, a killed one started again, nothing lost, everything stopped in order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ia_modules.database import DatabaseManager
from streams.embedded.child_processes import process_running
from streams.metrics.reading import Page
from tests.integration.streaming_support import (
    Namespace,
    WorkerProcess,
    assert_every_event_has_its_result,
    collect,
    numbered_events,
    pipelines_dir_with,
    publish,
)

pytestmark = pytest.mark.integration


async def settled(worker: WorkerProcess, inputs: str, timeout_s: float = 60) -> dict[str, Any]:
    """The health page once both processes consume and the input partitions are split between them."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(worker.health)
        split = [set(process["partitions"].get(inputs, [])) for process in body.get("processes", [])]
        if status == 200 and len(split) == 2 and all(split) and not split[0] & split[1]:
            if split[0] | split[1] == {0, 1, 2, 3}:
                return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"the two processes did not settle on a split of {inputs}: {body}")


async def test_worker_processes_split_the_group_restart_a_killed_one_and_lose_no_event(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(3000)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(namespace, folder, log, args=("--processes", "2"), IA_BATCH_MAX_RECORDS="50")
    inputs = namespace.topic("custom_processing", "input")
    output = namespace.topic("custom_processing", "output")
    try:
        await worker.wait_consuming()
        before = await settled(worker, inputs)
        first_pids = [process["pid"] for process in before["processes"]]
        assert len(set(first_pids)) == 2 and worker.process.pid not in first_pids
        assert publish(namespace, "custom_processing", events_file, folder).returncode == 0
        while len(await collect(kafka_broker, output, 300, timeout_s=5)) < 300:
            pass
        os.kill(first_pids[0], signal.SIGKILL)
        # the other process repeats what the killed one had not committed: count events, not records
        results = await collect(kafka_broker, output, len(events), 120, distinct=lambda r: r["input"]["seq"])
        after = await settled(worker, inputs)
        status, metrics = await asyncio.to_thread(worker.metrics)
    finally:
        exit_code = worker.stop()
    assert_every_event_has_its_result(results, len(events))
    # one scrape target for both processes: each series labelled with its process, each process's CPU and memory
    assert status == 200
    page = Page.parse(metrics)
    for process in ("1", "2", "supervisor"):
        assert page.total("process_resident_memory_bytes", process=process) > 0, process
        assert page.total("process_cpu_seconds_total", process=process) > 0, process
    consumed = page.sum_by("ia_events_consumed_total", ("process",), topic=inputs)
    assert consumed[("2",)] > 0 and ("1",) in consumed  # process 1 started again: its counters start afresh
    assert page.total("ia_runs_total", process="2") > 0
    assert [process["restarts"] for process in after["processes"]] == [1, 0]
    restarted_pid = after["processes"][0]["pid"]
    assert restarted_pid not in first_pids and after["processes"][1]["pid"] == first_pids[1]
    assert after["consumed"] > 0 and after["database"] == "ok"
    assert exit_code == 0, log.read_text()[-3000:]
    assert not any(process_running(pid) for pid in [*first_pids, restarted_pid]), "a worker process outlived it"
    text = log.read_text()
    assert f"worker process 1 (pid {first_pids[0]}) exited with signal SIGKILL; starting it again" in text
    assert "2 worker processes stopped" in text
    for number in (1, 2):  # each process's output comes through, marked with the process
        assert f"[worker {number}] worker stopped: " in text
    async with DatabaseManager(postgres_url, project_migrations_dir=False) as db:
        rows = await db.fetch_all("SELECT run_id::text AS run_id FROM pipeline_runs")
    assert len(rows) == len(events), "one pipeline_runs row per event, written by whichever process ran it"
