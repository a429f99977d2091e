"""``ia-modules demo``: every shipped pipeline on its sample events, with a summary."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer
from rich.markup import escape

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.errors import PipelineConfigError
from ia_modules.pipeline.loader import load_plan, pipeline_files
from streams.cli.demo_report import Tally, disagreements, events_file_for, look_further, result_line, summary
from streams.cli.demo_streaming import run_streaming
from streams.cli.events_file import read_events
from streams.cli.output import err, out
from streams.process import event_loop
from streams.process.services import build_services
from streams.settings import Settings


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
                out.print(result_line(result.status, result.outputs, result.error))
            tally.seconds = time.perf_counter() - started
    finally:
        await services.cleanup_all()
    return tallies


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
        if in_process:
            tallies, metrics_url = event_loop.run(run_in_process(settings), settings.event_loop), None
        else:
            tallies, metrics_url = event_loop.run(run_streaming(settings), settings.event_loop)
    except PipelineConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    out.print(summary(tallies))
    if not tallies:
        err.print(f"[red]no pipelines in {settings.pipelines_dir}[/red]")
        raise typer.Exit(1)
    problems = disagreements(tallies)
    for problem in problems:
        err.print(f"[red]✗ {escape(problem)}[/red]")
    if not in_process:
        rows = sum(sum(tally.rows.values()) for tally in tallies if tally.rows is not None)
        if not problems and metrics_url is not None:
            checked = f" and the {rows} pipeline_runs rows" if any(t.rows is not None for t in tallies) else ""
            out.print(f"[green]✓[/green] the worker's metrics agree with the results read{checked}")
        out.print(look_further(metrics_url is not None, any(t.rows is not None for t in tallies)))
    if problems or any(tally.events == 0 or tally.bad_lines for tally in tallies):
        raise typer.Exit(1)
