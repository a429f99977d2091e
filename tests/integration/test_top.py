"""``ia-modules top`` against a real worker on a real Kafka and PostgreSQL while events flow at a steady rate: the
rates it shows are the worker's counters' growth between its two scrapes, its totals lie between the /metrics
totals read just before and just after, and a worker that does not answer is one line, not a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from ia_modules.pipeline.loader import load_plan
from streams.cli.publishing import event_emission
from streams.cli.top import Sampler
from streams.cli.top_figures import PipelineFigures, Snapshot, figures
from streams.metrics.reading import Page
from streams.topology import build_topology
from tests.integration.streaming_support import (
    CLI,
    ROOT,
    Namespace,
    WorkerProcess,
    free_port,
    numbered_events,
    pipelines_dir_with,
)

pytestmark = pytest.mark.integration

PIPELINE = "custom_processing"
RATE = 200
"""Events published per second while the test samples."""


@contextlib.asynccontextmanager
async def steady_flow(namespace: Namespace, folder: Path) -> AsyncIterator[list[int]]:
    """Publishes ``RATE`` events a second (in ticks of 50 ms) as ``ia-modules publish`` keys them, until the block
    ends; yields the count acknowledged so far (a one-item list)."""
    plan = load_plan(folder / f"{PIPELINE}.json")
    topology = build_topology(plan, namespace.prefix, namespace.app_id)
    events = numbered_events(RATE * 60)
    sent = [0]
    producer = AIOKafkaProducer(bootstrap_servers=namespace.broker, acks="all", linger_ms=5)
    await producer.start()

    async def publish() -> None:
        started = time.monotonic()
        while True:
            due = int((time.monotonic() - started) * RATE) + RATE // 20
            chunk = [event_emission(plan, topology, events[i % len(events)], i) for i in range(sent[0], due)]
            acks = [await producer.send(e.topic, e.value, key=e.key, partition=e.partition) for e in chunk]
            await asyncio.gather(*acks)
            sent[0] = due
            await asyncio.sleep(0.05)

    task = asyncio.create_task(publish())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()


async def metrics_page(client: httpx.AsyncClient, url: str) -> Page:
    response = await client.get(url)
    response.raise_for_status()
    return Page.parse(response.text)


def total_of(snapshot: Snapshot, name: str, **match: str) -> float:
    """A counter's total on the one page of ``snapshot``, read with the demo's reader, not top's arithmetic."""
    (scrape,) = snapshot
    assert scrape.page is not None, scrape.error
    return scrape.page.total(name, **match)


def row_of(prev: Snapshot, cur: Snapshot) -> PipelineFigures:
    (row,) = [row for row in figures(prev, cur).pipelines if row.pipeline == PIPELINE]
    return row


async def test_top_shows_the_rates_and_totals_of_a_worker_while_events_flow(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, PIPELINE)
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(namespace, folder, log)
    url = f"http://127.0.0.1:{worker.port}/metrics"
    sampler = Sampler([url], timeout_s=5)
    try:
        await worker.wait_consuming()
        async with httpx.AsyncClient(timeout=5) as client, steady_flow(namespace, folder) as sent:
            deadline = time.monotonic() + 30
            while (await metrics_page(client, url)).total("ia_runs_total", pipeline=PIPELINE) < RATE:
                assert time.monotonic() < deadline, f"no runs after 30 s ({sent[0]} sent)\n{log.read_text()[-3000:]}"
                await asyncio.sleep(0.2)
            before = await metrics_page(client, url)
            first = await sampler.sample()
            await asyncio.sleep(1)
            second = await sampler.sample()
            await asyncio.sleep(1)
            third = await sampler.sample()
            after = await metrics_page(client, url)
            shown = figures(second, third)
            cli = await asyncio.to_thread(
                subprocess.run, [CLI, "top", "--once", "--interval", "1", "--url", url],
                cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
    finally:
        await sampler.close()
        assert worker.stop() == 0, log.read_text()[-3000:]

    inputs = namespace.topic(PIPELINE, "input")
    for prev, cur in ((first, second), (second, third)):
        row = row_of(prev, cur)
        seconds = cur[0].at - prev[0].at
        runs = [total_of(snapshot, "ia_runs_total", pipeline=PIPELINE) for snapshot in (prev, cur)]
        assert row.runs == pytest.approx((runs[1] - runs[0]) / seconds)
        consumed = [total_of(snapshot, "ia_events_consumed_total", topic=inputs) for snapshot in (prev, cur)]
        assert row.events_in == pytest.approx((consumed[1] - consumed[0]) / seconds)
        assert row.runs > 0 and row.events_in > 0, "events flow in and runs finish in every interval"
        assert not row.run_duration.since_start and not row.end_to_end.since_start
        assert row.run_duration.p50 is not None and row.run_duration.p99 is not None
        assert 0 < row.run_duration.p50 <= row.run_duration.p99
    totals = [total_of(snapshot, "ia_runs_total") for snapshot in (first, second, third)]
    assert totals[0] < totals[1] < totals[2], "the totals move on at each refresh"
    row = row_of(second, third)
    assert before.total("ia_runs_total", pipeline=PIPELINE) <= row.runs_total <= after.total("ia_runs_total")
    failed = row.failed_total
    assert before.total("ia_runs_total", status="failed") <= failed <= after.total("ia_runs_total", status="failed")
    assert row.input_topics == {inputs}
    assert row.lag is not None and row.lag >= 0
    (sink,) = shown.sinks
    assert (sink.sink, sink.up, sink.series) == ("postgres", 1, 1)
    assert sink.rows_written is not None and sink.rows_written > 0
    assert sink.last_success_age_s is not None and sink.last_success_age_s < 5
    (process,) = shown.processes
    assert process.partitions == after.total("ia_assigned_partitions") > 0
    assert process.cpu_percent is not None and process.cpu_percent > 0
    assert process.rss_bytes is not None and process.rss_bytes > 0
    assert shown.errors == []

    assert cli.returncode == 0, cli.stderr
    line = next(line for line in cli.stdout.splitlines() if PIPELINE in line)
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    events_in, runs_per_s, runs_total = (float(cell.replace(",", "")) for cell in cells[1:4])
    assert events_in > 0 and runs_per_s > 0
    assert after.total("ia_runs_total") <= runs_total, "the command ran after the last page was read"
    assert "postgres" in cli.stdout and url in cli.stdout


def test_no_worker_answering_is_one_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    done = subprocess.run(
        [CLI, "top", "--once", "--interval", "0.2", "--url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: no worker answered (") and url in line


def test_ctrl_c_ends_the_live_view_with_exit_0() -> None:
    """In a terminal (a pseudo-terminal here), as a user watches it."""
    url = f"http://127.0.0.1:{free_port()}/metrics"
    screen, terminal = pty.openpty()
    live = subprocess.Popen(
        [CLI, "top", "--interval", "0.2", "--url", url],
        cwd=ROOT, stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while url.encode() not in shown:  # the view is drawn, naming the worker that does not answer
            assert time.monotonic() < deadline and live.poll() is None, shown.decode(errors="replace")
            if select.select([screen], [], [], 0.5)[0]:
                shown += os.read(screen, 65536)
        live.send_signal(signal.SIGINT)
        while True:  # what it writes on its way out, until the terminal closes
            try:
                chunk = os.read(screen, 65536) if select.select([screen], [], [], 10)[0] else b""
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            shown += chunk
        assert live.wait(timeout=10) == 0, shown.decode(errors="replace")
    finally:
        if live.poll() is None:
            live.kill()
        os.close(screen)
    assert b"Traceback" not in shown
