"""``ia-modules demo``: every shipped pipeline on its sample events, with a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.errors import PipelineConfigError
from ia_modules.pipeline.loader import load_plan, pipeline_files

from ..events_file import read_events
from ..services import build_services
from ..settings import Settings
from .output import err

out = Console(highlight=False, soft_wrap=False)


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
                out.print(_result_line(result.status, result.outputs, result.error), markup=True, crop=True)
            tally.seconds = time.perf_counter() - started
    finally:
        await services.cleanup_all()
    return tallies


def _result_line(status: str, outputs: Any, error: dict[str, Any] | None) -> str:
    detail = escape(orjson.dumps(outputs).decode())
    if error:
        reason = escape(f"{error['step']}: {error['type']}: {error['message']}")
        return f"[red]✗ {reason}[/red] {detail}"
    return f"[green]✓[/green] {detail}"


def summary(tallies: list[Tally]) -> Table:
    table = Table(title="demo summary", title_justify="left")
    for column in ("pipeline", "events", "success", "failed", "ms/run"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for tally in tallies:
        per_run = tally.seconds * 1000 / tally.events if tally.events else 0.0
        table.add_row(
            tally.pipeline,
            str(tally.events),
            str(tally.statuses.get("success", 0)),
            str(tally.statuses.get("failed", 0)),
            f"{per_run:.2f}",
        )
    return table


def demo(
    in_process: Annotated[bool, typer.Option("--in-process", help="run the pipelines in this process")] = True,
) -> None:
    """Run every shipped pipeline on its sample events and print the results and a summary."""
    import asyncio

    settings = Settings()
    try:
        tallies = asyncio.run(run_in_process(settings))
    except PipelineConfigError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    out.print(summary(tallies))
    if not tallies:
        err.print(f"[red]no pipelines in {settings.pipelines_dir}[/red]")
        raise typer.Exit(1)
