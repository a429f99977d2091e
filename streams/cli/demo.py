"""``ia-modules demo``: every shipped pipeline on its sample events, with a summary."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from aiokafka import AIOKafkaProducer
from rich.markup import escape
from rich.table import Table

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.errors import PipelineConfigError
from ia_modules.pipeline.loader import load_plan, pipeline_files
from ia_modules.pipeline.wire import RunError
from streams.cli.events_file import read_events
from streams.cli.output import err, out
from streams.cli.publishing import event_emission
from streams.kafka.cluster import bootstrap_servers, redacted_broker
from streams.kafka.producer import Emission, produce
from streams.kafka.reading import end_offsets, read_record_batches
from streams.kafka.security import KafkaSecurity
from streams.process import event_loop
from streams.process.serve import broker_for_worker, load_plans
from streams.process.services import build_services
from streams.settings import Settings
from streams.stage_runner import StageRunner
from streams.worker import Worker, WorkerOptions

DETAIL_CHARS = 150
"""How much of a result the demo prints on its one line."""


@dataclass
class Tally:
    """What one pipeline's demo run gave."""

    pipeline: str
    events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    bad_lines: int = 0
    seconds: float = 0.0


def events_file_for(pipeline_file: Path) -> Path:
    return pipeline_file.with_name(f"{pipeline_file.stem}.events.jsonl")


async def run_in_process(settings: Settings) -> list[Tally]:
    """Run each pipeline of IA_PIPELINES_DIR on its ``<id>.events.jsonl`` and print every result."""
    tallies = []
    services = await build_services(settings.services)
    try:
        for file in pipeline_files(settings.pipelines_dir):
            pipeline = Pipeline(load_plan(file))
            events = events_file_for(file)
            tally = Tally(pipeline.id)
            tallies.append(tally)
            out.rule(f"[bold]{pipeline.id}[/bold]: {pipeline.name} ({events.name})")
            if not events.is_file():
                err.print(f"[yellow]no sample events at {events}[/yellow]")
                continue
            started = time.perf_counter()
            async for line in read_events(events):
                if line.event is None:
                    tally.bad_lines += 1
                    err.print(f"{events}:{line.line}: {line.problem}", markup=False)
                    continue
                result = await pipeline.run(line.event, services)
                tally.events += 1
                tally.statuses[result.status] = tally.statuses.get(result.status, 0) + 1
                out.print(_result_line(result.status, result.outputs, result.error))
            tally.seconds = time.perf_counter() - started
    finally:
        await services.cleanup_all()
    return tallies


def _result_line(status: str, outputs: Any, error: RunError | None) -> str:
    text = orjson.dumps(outputs).decode()
    detail = escape(text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…")
    if error:
        reason = escape(f"{error['step']}: {error['type']}: {error['message']}")
        return f"[red]✗ {reason}[/red] {detail}"
    return f"[green]✓[/green] {detail}"


def summary(tallies: list[Tally]) -> Table:
    table = Table(title="demo summary", title_justify="left")
    for column in ("pipeline", "events", "success", "failed", "seconds"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for tally in tallies:
        table.add_row(
            tally.pipeline,
            str(tally.events),
            str(tally.statuses.get("success", 0)),
            str(tally.statuses.get("failed", 0)),
            f"{tally.seconds:.2f}",
        )
    return table


async def run_streaming(settings: Settings) -> list[Tally]:
    """Start a worker (on the embedded broker unless IA_BROKER is set), publish every pipeline's sample events,
    print each result as it arrives on the output topic, and stop everything that was started."""
    plans = await asyncio.to_thread(load_plans, settings.pipelines_dir, settings.topic_prefix, settings.app_id)
    services = await build_services(settings.services)
    tallies: list[Tally] = []
    try:
        async with broker_for_worker(settings) as (broker, session_timeout_ms):
            security = KafkaSecurity.from_settings(settings)
            options = WorkerOptions(settings.app_id, settings.topic_prefix, settings.fuse,
                                    settings.replication_factor, session_timeout_ms,
                                    max_record_bytes=settings.max_record_bytes, security=security)  # fmt: skip
            worker = Worker(plans, broker, services, options)
            started = time.perf_counter()
            await worker.start()
            running = asyncio.create_task(worker.run())
            await worker.ready.wait()
            err.print(f"worker consuming on {redacted_broker(broker)} after {time.perf_counter() - started:.2f}s")
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers(broker), acks="all", linger_ms=5, **security.client_kwargs()
            )
            await producer.start()
            try:
                for runner in worker.runners:
                    tallies.append(await _stream_one(runner, broker, producer, security))
            finally:
                await producer.stop()
                worker.stop()
                await running
    finally:
        await services.cleanup_all()
    return tallies


async def _stream_one(runner: StageRunner, broker: str, producer: AIOKafkaProducer, security: KafkaSecurity) -> Tally:
    """Publish one pipeline's sample events and print its results as they arrive on its output topic."""
    plan, topology = runner.plan, runner.topology
    file = Path(plan.source)
    events_file = events_file_for(file)
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
    output = topology.output_topic
    reading = read_record_batches(broker, output, start=start, limit=len(emissions), idle_s=30, security=security)
    async for records in reading:
        for record in records:
            tally.events += 1
            tally.statuses[record["status"]] = tally.statuses.get(record["status"], 0) + 1
            out.print(_result_line(record["status"], record["outputs"], record["error"]))
    tally.seconds = time.perf_counter() - started
    if tally.events < len(emissions):
        err.print(f"[red]{plan.id}: {len(emissions) - tally.events} result(s) did not arrive within 30 s[/red]")
    return tally


def demo(
    in_process: Annotated[
        bool, typer.Option("--in-process", help="run the pipelines in this process instead of through a worker")
    ] = False,
) -> None:
    """Run every shipped pipeline on its sample events and print the results and a summary.

    By default through a worker on the embedded broker (or IA_BROKER): events are published to each
    pipeline's input topic and results read from its output topic."""
    settings = Settings()
    logging.basicConfig(level=logging.WARNING)
    try:
        tallies = event_loop.run(
            run_in_process(settings) if in_process else run_streaming(settings), settings.event_loop
        )
    except PipelineConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    out.print(summary(tallies))
    if not tallies:
        err.print(f"[red]no pipelines in {settings.pipelines_dir}[/red]")
        raise typer.Exit(1)
    if any(tally.events == 0 or tally.bad_lines for tally in tallies):
        raise typer.Exit(1)
