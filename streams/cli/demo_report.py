"""What the demo prints: each result on one line, and a summary whose figures come from the worker's
``/metrics``, checked against the results read and the ``pipeline_runs`` rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from ia_modules.pipeline.wire import RunError
from streams.metrics.reading import Page, quantile

DETAIL_CHARS = 150
"""How much of a result the demo prints on its one line."""


@dataclass
class Tally:
    """What one pipeline's demo run gave: read from its output topic (or in-process), and from the metrics."""

    pipeline: str
    events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    bad_lines: int = 0
    seconds: float = 0.0
    run_ids: list[str] = field(default_factory=list)
    metrics: MetricFigures | None = None
    rows: dict[str, int] | None = None
    """``pipeline_runs`` rows of this demo's runs, by status (None without a database)."""


@dataclass
class MetricFigures:
    """One pipeline's figures from the worker's ``/metrics``."""

    runs: dict[str, int]
    run_p50_s: float | None
    run_p99_s: float | None
    routes: dict[tuple[str, str], int]
    dead_letters: dict[str, int]


def events_file_for(pipeline_file: Path) -> Path:
    return pipeline_file.with_name(f"{pipeline_file.stem}.events.jsonl")


def figures_of(page: Page, pipeline: str) -> MetricFigures:
    runs = page.sum_by("ia_runs_total", ("status",), pipeline=pipeline)
    durations = page.buckets("ia_run_duration_seconds", pipeline=pipeline)
    routes = page.sum_by("ia_route_total", ("from", "to"), pipeline=pipeline, taken="true")
    letters = page.sum_by("ia_dead_letters_total", ("kind",), pipeline=pipeline)
    return MetricFigures(
        {status: int(count) for (status,), count in runs.items() if count},
        quantile(0.5, durations),
        quantile(0.99, durations),
        {(source, target): int(count) for (source, target), count in routes.items() if count},
        {kind: int(count) for (kind,), count in letters.items() if count},
    )


def result_line(status: str, outputs: Any, error: RunError | None) -> str:
    text = orjson.dumps(outputs).decode()
    detail = escape(text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…")
    if error:
        reason = escape(f"{error['step']}: {error['type']}: {error['message']}")
        return f"[red]✗ {reason}[/red] {detail}"
    return f"[green]✓[/green] {detail}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def summary(tallies: list[Tally]) -> RenderableType:
    """The summary table; with the worker's metrics, its run duration and dead letters, and the routes taken."""
    with_metrics = any(tally.metrics is not None for tally in tallies)
    table = Table(
        title="demo summary" + (" (from the worker's /metrics)" if with_metrics else ""), title_justify="left"
    )
    columns = ["pipeline", "events", "success", "failed", "seconds"]
    if with_metrics:
        columns[4:4] = ["run p50", "run p99", "dead letters"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("pipeline", "dead letters") else "right")
    for tally in tallies:
        figures = tally.metrics
        runs = figures.runs if figures is not None else tally.statuses
        row = [tally.pipeline, str(tally.events), str(runs.get("success", 0)), str(runs.get("failed", 0))]
        if with_metrics:
            if figures is None:
                row += ["-", "-", "-"]
            else:
                letters = ", ".join(f"{kind} {n}" for kind, n in sorted(figures.dead_letters.items()))
                row += [_seconds(figures.run_p50_s), _seconds(figures.run_p99_s), letters or "-"]
        table.add_row(*row, f"{tally.seconds:.2f}")
    if not with_metrics:
        return table
    routes = Table(title="routes taken (ia_route_total)", title_justify="left")
    for column in ("pipeline", "path", "runs"):
        routes.add_column(column, justify="right" if column == "runs" else "left")
    for tally in tallies:
        for (source, target), count in sorted((tally.metrics.routes if tally.metrics else {}).items()):
            routes.add_row(tally.pipeline, f"{source} → {target}", str(count))
    return Group(table, routes)


def disagreements(tallies: list[Tally]) -> list[str]:
    """Where the metrics, the results read from the output topics and the ``pipeline_runs`` rows differ."""
    problems = []
    for tally in tallies:
        if tally.metrics is not None and tally.metrics.runs != tally.statuses:
            problems.append(
                f"{tally.pipeline}: /metrics counts runs {tally.metrics.runs}, the output topic {tally.statuses}"
            )
        if tally.rows is not None and tally.rows != tally.statuses:
            problems.append(f"{tally.pipeline}: pipeline_runs has {tally.rows}, the output topic {tally.statuses}")
    return problems


def look_further(metrics: bool, database: bool) -> str:
    """Where to look next, once the demo is over."""
    lines = ["[bold]look further[/bold] (with `ia-modules worker` running, which this demo started and stopped):"]
    if database:
        lines.append(
            "  every run is a row: SELECT pipeline, status, count(*) FROM pipeline_runs GROUP BY 1, 2;"
            " (IA_DATABASE_URL, or the embedded PostgreSQL under .ia/pg)"
        )
    if metrics:
        lines.append("  the worker's metrics: curl http://127.0.0.1:6066/metrics (IA_WEB_PORT)")
        lines.append("  live in a terminal: ia-modules top")
    lines.append("  Grafana and Prometheus: docker compose up, then http://localhost:3000 (docs/metrics.md)")
    return "\n".join(lines)
