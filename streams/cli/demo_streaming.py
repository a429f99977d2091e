"""The demo through a worker: the worker ``ia-modules worker`` runs (embedded broker and PostgreSQL, or IA_BROKER
and IA_DATABASE_URL; ``/health`` and ``/metrics``), every pipeline's sample events published, the results read
from the output topics, and a summary taken from the worker's own ``/metrics``, checked against
``pipeline_runs``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from ia_modules.database import DatabaseManager
from streams.cli.demo_report import Tally, events_file_for, figures_of, result_line
from streams.cli.events_file import read_events
from streams.cli.output import err, out
from streams.cli.publishing import event_emission
from streams.embedded.broker import free_port
from streams.kafka.cluster import bootstrap_servers, redacted_broker
from streams.kafka.producer import Emission, produce
from streams.kafka.reading import end_offsets, read_record_batches
from streams.kafka.security import KafkaSecurity
from streams.metrics.reading import Page
from streams.process.serve import serve, web_port_problem
from streams.settings import Settings
from streams.stage_runner import StageRunner
from streams.worker import Worker

RESULTS_WAIT_S = 30.0
"""How long the demo waits for a pipeline's results, and then for the worker to count them durable."""


async def run_streaming(settings: Settings) -> tuple[list[Tally], str | None]:
    """Run the worker, publish every pipeline's sample events, print each result as it arrives, take the
    summary's figures from ``/metrics`` and ``pipeline_runs``, and stop the worker. Returns the tallies and the
    ``/metrics`` URL (None with IA_METRICS=0)."""
    if web_port_problem(settings.web_port) is not None:  # a worker already runs here: the demo takes another
        settings = settings.model_copy(update={"web_port": free_port()})
    loop = asyncio.get_running_loop()
    started: asyncio.Future[Worker] = loop.create_future()
    begun = time.perf_counter()
    serving = asyncio.create_task(serve(settings, settings.pipelines_dir, started.set_result))
    await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        await serving  # it stopped before it started: raises why
        raise RuntimeError("the worker stopped before it started")
    worker = started.result()
    url = f"http://127.0.0.1:{settings.web_port}/metrics" if worker.metrics is not None else None
    tallies: list[Tally] = []
    try:
        await worker.ready.wait()
        err.print(f"worker consuming on {redacted_broker(worker.broker)} after {time.perf_counter() - begun:.2f}s")
        security = KafkaSecurity.from_settings(settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(worker.broker), acks="all", linger_ms=5, **security.client_kwargs()
        )
        await producer.start()
        try:
            for runner in worker.runners:
                tallies.append(await _stream_one(runner, worker.broker, producer, security))
        finally:
            await producer.stop()
        if url is not None:
            await _take_figures(url, tallies)
        if worker.sink is not None:
            for tally in tallies:
                tally.rows = await rows_by_status(worker.sink.db, tally.pipeline, tally.run_ids)
    finally:
        worker.stop()
        await serving
    return tallies, url


async def _take_figures(url: str, tallies: list[Tally]) -> None:
    """Scrape the worker until it counts every result read as durable (its rows are written after the result
    is produced), then take each pipeline's figures."""
    expected = {tally.pipeline: tally.events for tally in tallies}
    deadline = time.monotonic() + RESULTS_WAIT_S
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            page = Page.parse((await client.get(url)).text)
            counted = {p: int(n) for (p,), n in page.sum_by("ia_runs_total", ("pipeline",)).items()}
            if all(counted.get(p, 0) >= n for p, n in expected.items()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    for tally in tallies:
        tally.metrics = figures_of(page, tally.pipeline)


async def rows_by_status(db: DatabaseManager, pipeline: str, run_ids: list[str]) -> dict[str, int]:
    """How many of ``run_ids`` have a ``pipeline_runs`` row, by status."""
    counts: dict[str, int] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        rows = await db.fetch_all(
            "SELECT status, COUNT(*) AS n FROM pipeline_runs WHERE pipeline = ? AND run_id IN ("
            + ", ".join("?" for _ in chunk)  # placeholders only: the values are parameters
            + ") GROUP BY status",
            (pipeline, *chunk),
        )
        for row in rows:
            counts[str(row["status"])] = counts.get(str(row["status"]), 0) + int(row["n"])
    return counts


async def _stream_one(runner: StageRunner, broker: str, producer: AIOKafkaProducer, security: KafkaSecurity) -> Tally:
    """Publish one pipeline's sample events and print its results as they arrive on its output topic."""
    plan, topology = runner.plan, runner.topology
    events_file = events_file_for(Path(plan.source))
    tally = Tally(plan.id)
    out.rule(f"[bold]{plan.id}[/bold]: {plan.name} ({events_file.name} → {topology.input_topics[0]})")
    if not events_file.is_file():
        err.print(f"[yellow]no sample events at {events_file}[/yellow]")
        return tally
    start = await end_offsets(broker, topology.output_topic, security=security)
    emissions: list[Emission] = []
    async for line in read_events(events_file):
        if line.event is None:
            tally.bad_lines += 1
            err.print(f"{events_file}:{line.line}: {line.problem}", markup=False)
            continue
        emissions.append(event_emission(plan, topology, line.event, len(emissions)))
    started = time.perf_counter()
    await produce(producer, emissions)
    reading = read_record_batches(
        broker, topology.output_topic, start=start, limit=len(emissions), idle_s=RESULTS_WAIT_S, security=security
    )
    async for records in reading:
        for record in records:
            tally.events += 1
            tally.run_ids.append(record["run_id"])
            tally.statuses[record["status"]] = tally.statuses.get(record["status"], 0) + 1
            out.print(result_line(record["status"], record["outputs"], record["error"]))
    tally.seconds = time.perf_counter() - started
    if tally.events < len(emissions):
        err.print(f"[red]{plan.id}: {len(emissions) - tally.events} result(s) did not arrive within 30 s[/red]")
    return tally
