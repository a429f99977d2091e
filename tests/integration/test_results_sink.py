"""The results sink and the dead-letter commands with a worker on real Kafka and real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ia_modules.database import DatabaseManager
from streams.embedded.postgres import EmbeddedPostgres
from streams.sink.results import FinishedRun, ResultsSink
from tests.integration.postgres_proxy import PostgresProxy
from tests.integration.streaming_support import (
    CLI,
    ROOT,
    Namespace,
    WorkerProcess,
    collect,
    numbered_events,
    pipelines_dir_with,
    publish,
    publish_raw,
)

pytestmark = pytest.mark.integration


def result_record(run_id: str, status: str, outputs: Any) -> dict[str, Any]:
    return {
        "run_id": run_id, "pipeline": "p", "pipeline_version": "1", "status": status, "outputs": outputs,
        "error": None if status == "success" else {"step": "s", "type": "ValueError", "message": "no"},
        "trace": [{"step": "s", "status": "ok", "started_at": "2026-01-02T03:04:05.678Z", "attempts": 1}],
        "input": {"n": 1},
        "source": {"topic": "ia.p.input", "partition": 2, "offset": 7, "timestamp": 1_700_000_000_000},
    }  # fmt: skip


async def test_the_sink_writes_each_run_once_and_only_replaces_a_failed_row(db_url: str) -> None:
    async with DatabaseManager(db_url) as db:
        await db.initialize()
        sink = ResultsSink(db)
        failed = "0b7a5c8e-1d2f-5a3b-9c4d-5e6f7a8b9c0d"
        done = "1c8b6d9f-2e3a-5b4c-8d5e-6f7a8b9c0d1e"
        letter = {"kind": "step_failed", "run_id": failed, "pipeline": "p", "step": "s", "attempts": 3,
                  "error": {"type": "ValueError", "message": "no", "traceback": "Traceback..."},
                  "envelope": {"replay": 0},
                  "source": {"topic": "ia.p.input", "partition": 2, "offset": 7}}  # fmt: skip
        batch = [FinishedRun(result_record(failed, "failed", None), 1_700_000_000_500),
                 FinishedRun(result_record(done, "success", {"x": 1}), 1_700_000_000_600)]  # fmt: skip
        await sink.write(batch, [letter])
        await sink.write(batch, [letter])  # the same batch again, as after a crash before the commit
        rows = await db.fetch_all("SELECT run_id, status, source_partition, source_offset FROM pipeline_runs")
        assert sorted((str(r["run_id"]), r["status"]) for r in rows) == [(failed, "failed"), (done, "success")]
        assert {(r["source_partition"], r["source_offset"]) for r in rows} == {(2, 7)}
        assert len(await db.fetch_all("SELECT id FROM dead_letters")) == 1
        replayed = [FinishedRun(result_record(failed, "success", {"x": 2}), 1_700_000_001_000),
                    FinishedRun(result_record(done, "failed", None), 1_700_000_001_000)]  # fmt: skip
        await sink.write(replayed, [])
        rows = await db.fetch_all("SELECT run_id, status FROM pipeline_runs")
        assert {str(r["run_id"]): r["status"] for r in rows} == {failed: "success", done: "success"}


async def rows_of(url: str, pipeline: str) -> list[dict[str, Any]]:
    async with DatabaseManager(url, project_migrations_dir=False) as db:
        return await db.fetch_all(
            "SELECT run_id::text AS run_id, status, input::text AS input FROM pipeline_runs WHERE pipeline = ?",
            (pipeline,),
        )


async def test_postgres_stopping_mid_stream_loses_no_row_and_doubles_none(
    kafka_broker: str, server_dir: Path, tmp_path: Path
) -> None:
    server = EmbeddedPostgres(server_dir / "pg")
    url = await server.start()
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(1200)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(json.dumps(e) + "\n" for e in events[:600]))
    second.write_text("".join(json.dumps(e) + "\n" for e in events[600:]))
    namespace = Namespace.fresh(kafka_broker, url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_BATCH_MAX_RECORDS="50")
    try:
        await worker.wait_consuming()
        assert publish(namespace, "custom_processing", first, folder).returncode == 0
        deadline = time.monotonic() + 60
        while len(await rows_of(url, "custom_processing")) < 100:
            assert time.monotonic() < deadline, "no rows written"
            await asyncio.sleep(0.2)
        await server.stop()
        assert publish(namespace, "custom_processing", second, folder).returncode == 0
        await asyncio.sleep(4)
        assert worker.process.poll() is None, f"the worker died:\n{worker.log.read_text()[-3000:]}"
        status, _ = worker.health()
        assert status == 200, "still a member of its group while the database is away"
        assert url == await server.start()
        deadline = time.monotonic() + 90
        while len(rows := await rows_of(url, "custom_processing")) < len(events):
            assert time.monotonic() < deadline, f"{len(rows)} of {len(events)} rows after the database came back"
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        rows = await rows_of(url, "custom_processing")
    finally:
        worker.stop()
        await server.stop()
    assert len(rows) == len(events) == len({row["run_id"] for row in rows})
    assert sorted(json.loads(row["input"])["seq"] for row in rows) == list(range(len(events)))
    log = (tmp_path / "worker.log").read_text()
    assert "the database is unreachable" in log
    assert "Traceback" not in log, "an outage is told in one line, not a traceback per reconnection attempt"


async def test_a_database_that_stops_answering_is_an_outage_not_a_stall(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = numbered_events(400)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(json.dumps(e) + "\n" for e in events[:200]))
    second.write_text("".join(json.dumps(e) + "\n" for e in events[200:]))
    async with PostgresProxy(postgres_url) as proxy:
        namespace = Namespace.fresh(kafka_broker, proxy.url)
        log = tmp_path / "worker.log"
        worker = WorkerProcess(namespace, folder, log, IA_BATCH_MAX_RECORDS="50", IA_DATABASE_TIMEOUT_S="2")
        try:
            await worker.wait_consuming()
            published = await asyncio.to_thread(publish, namespace, "custom_processing", first, folder)
            assert published.returncode == 0
            deadline = time.monotonic() + 60
            while len(await rows_of(postgres_url, "custom_processing")) < 200:
                assert time.monotonic() < deadline, "the first rows were not written"
                await asyncio.sleep(0.2)
            proxy.freeze()  # the server's connections stay open and nothing answers
            published = await asyncio.to_thread(publish, namespace, "custom_processing", second, folder)
            assert published.returncode == 0
            deadline = time.monotonic() + 30
            while "the database is unreachable" not in log.read_text():
                assert time.monotonic() < deadline, f"no outage reported:\n{log.read_text()[-3000:]}"
                await asyncio.sleep(0.2)
            status, body = await asyncio.to_thread(worker.health)
            assert status == 200, f"the worker is no longer serving:\n{log.read_text()[-3000:]}"
            assert body["database"] == "unreachable", "the health page tells why nothing moves"
            proxy.thaw()
            deadline = time.monotonic() + 90
            while len(rows := await rows_of(postgres_url, "custom_processing")) < len(events):
                assert time.monotonic() < deadline, f"{len(rows)} of {len(events)} rows after the database answered"
                await asyncio.sleep(0.5)
            _, body = await asyncio.to_thread(worker.health)
            assert body["database"] == "ok"
        finally:
            await asyncio.to_thread(worker.stop)
    assert len(rows) == len({row["run_id"] for row in rows})
    assert sorted(json.loads(row["input"])["seq"] for row in rows) == list(range(len(events)))


def cli(namespace: Namespace, folder: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = namespace.env(folder, **extra)
    return subprocess.run([CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_dead_letters_are_listed_and_a_fixed_run_is_replayed_under_its_run_id(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "fixable.json").write_text(json.dumps({
        "steps": [{"id": "check", "step_class": "NeedsFlagStep", "module": "tests.integration.streaming_steps"},
                  {"id": "after", "step_class": "StampStep", "module": "tests.integration.streaming_steps"}],
        "flow": {"start_at": "check", "paths": [{"from": "check", "to": "after"}]},
        "outputs": {"checked": "{{ check.checked }}"},
    }))  # fmt: skip
    flag = tmp_path / "fixed"
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_TEST_FLAG_FILE=str(flag))
    try:
        await worker.wait_consuming()
        await publish_raw(kafka_broker, namespace.topic("fixable", "input"), [b'{"order": 5}', b"{broken"])
        [failed] = await collect(kafka_broker, namespace.topic("fixable", "output"), 1)
        assert failed["status"] == "failed"
        deadline = time.monotonic() + 30
        listed = []
        while len(listed) < 2 and time.monotonic() < deadline:
            done = cli(namespace, folder, "dlq", "list", "fixable", "--json")
            assert done.returncode == 0, done.stderr
            listed = [json.loads(line) for line in done.stdout.splitlines()]
            await asyncio.sleep(0.3)
        by_kind = {letter["kind"]: letter for letter in listed}
        assert by_kind["step_failed"]["replayable"] and not by_kind["bad_input"]["replayable"]
        assert by_kind["step_failed"]["letter"]["error"]["message"] == "order 5 cannot be checked yet"
        refused = cli(namespace, folder, "dlq", "replay", "fixable", "--id", str(by_kind["bad_input"]["id"]))
        assert refused.returncode == 1 and "not replayable (bad_input)" in refused.stderr
        flag.write_text("fixed")
        replayed = cli(namespace, folder, "dlq", "replay", "fixable", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert f"run {failed['run_id']} replayed to {namespace.topic('fixable', 'check')}" in replayed.stderr
        results = await collect(kafka_broker, namespace.topic("fixable", "output"), 2)
        again = cli(namespace, folder, "dlq", "replay", "fixable", "--all")
    finally:
        worker.stop()
    assert [(r["run_id"], r["status"]) for r in results] == [
        (failed["run_id"], "failed"),
        (failed["run_id"], "success"),
    ]
    assert results[1]["outputs"] == {"checked": 5}
    rows = await rows_of(postgres_url, "fixable")
    assert [(row["run_id"], row["status"]) for row in rows] == [(failed["run_id"], "success")]
    assert again.returncode == 0 and "0 run(s) replayed" in again.stderr
