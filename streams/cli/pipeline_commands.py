"""Commands that need no broker: ``validate``, ``run`` and ``graph``."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.errors import ConfigProblem, PipelineConfigError, PipelineNotFoundError
from ia_modules.pipeline.loader import find_pipeline, load_plan, pipeline_files, rewrite_in_current_form
from ia_modules.pipeline.wire import parse_event
from streams.cli.events_file import read_events
from streams.cli.output import err, explain_table, json_line, write_stdout
from streams.process import event_loop
from streams.process.services import ServicesError, build_services
from streams.settings import Settings


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


def load_pipeline(name: str, settings: Settings) -> Pipeline:
    """The pipeline at path ``name`` or with id ``name`` in IA_PIPELINES_DIR; exits 2 with the problems. A file
    of an older format loads, its warning on stderr."""
    try:
        return Pipeline(load_checked(find_pipeline(name, settings.pipelines_dir)))
    except PipelineNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except PipelineConfigError as exc:
        for problem in exc.problems:
            err.print(problem.render(exc.source), markup=False)
        raise typer.Exit(2) from None


def load_checked(file: Path) -> PipelinePlan:
    """``load_plan``, with the file's older-format warning printed on stderr, once, whether it loads or not."""
    try:
        plan = load_plan(file, warn=False)
    except PipelineConfigError as exc:
        print_older_forms(exc.source, exc.older_forms)
        raise
    print_older_forms(plan.source, plan.older_forms)
    return plan


def print_older_forms(source: str, notes: Iterable[ConfigProblem]) -> None:
    """What a file says in an older format and how it is read, one line each, then how to rewrite it."""
    notes = list(notes)
    for note in notes:
        err.print(f"{source}: {note.path}: warning: {note.message}", markup=False)
    if notes:
        command = f"ia-modules validate --fix {shlex.quote(source)}"
        err.print(f"{source}: warning: older pipeline format: {command} rewrites it in the current form", markup=False)


def validate(
    paths: Annotated[list[str], typer.Argument(help="pipeline files, ids, or folders of pipeline files")],
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="first rewrite each file written in an older format in the current form (atomically, other "
            "content and key order kept), printing what changed; files already current are left untouched",
        ),
    ] = False,
) -> None:
    """Check pipeline files: one line per problem as `<file>: <json path>: <what is wrong>`; exit 1 if any.
    Warnings (older formats) and what --fix rewrote go to stderr."""
    settings = Settings()
    files: list[Path] = []
    invalid = 0
    checked = 0
    for name in paths:
        if Path(name).is_dir():
            files.extend(pipeline_files(name))
            continue
        try:
            files.append(find_pipeline(name, settings.pipelines_dir))
        except PipelineNotFoundError as exc:
            typer.echo(f"{name}: $: {exc}")
            invalid += 1
            checked += 1
    for file in files:
        checked += 1
        if fix and not _fixed(file):
            invalid += 1
            continue
        try:
            plan = load_checked(file)
        except (PipelineConfigError, PipelineNotFoundError) as exc:
            invalid += 1
            problems = exc.problems if isinstance(exc, PipelineConfigError) else []
            for problem in problems:
                typer.echo(problem.render(str(file)))
            if not problems:
                typer.echo(f"{file}: $: {exc}")
            continue
        err.print(f"[green]ok[/green] {file} ({plan.id}: {len(plan.steps)} steps, {len(plan.model.flow.paths)} paths)")
    if invalid:
        err.print(f"[red]{invalid} of {checked} invalid[/red]")
        raise typer.Exit(1)


def _fixed(file: Path) -> bool:
    """Rewrite ``file`` in the current form if it is of an older format, printing what changed; False when it
    could not be written (said on stdout, as a problem of the file)."""
    try:
        conversions = rewrite_in_current_form(file)
    except (PipelineConfigError, PipelineNotFoundError):
        return True  # unreadable or not JSON: the check that follows says so
    except OSError as exc:
        typer.echo(f"{file}: $: cannot rewrite it: {exc.strerror or exc}")
        return False
    for conversion in conversions:
        err.print(conversion.fixed().render(str(file)), markup=False)
    if conversions:
        err.print(f"{file}: rewritten in the current form", markup=False)
    return True


def run(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    input_json: Annotated[str | None, typer.Option("--input", help="one event as a JSON object")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="JSON-lines file of events; - for stdin")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="print each run's trace as a table on stderr")] = False,
) -> None:
    """Run a pipeline in-process: one result record per event on stdout, as a JSON line.

    Exit 0 when every event was run (failed runs included), 1 when some line was not an event."""
    if (input_json is None) == (events is None):
        err.print("[red]error:[/red] give exactly one of --input JSON or --events FILE")
        raise typer.Exit(2)
    settings = Settings()
    loaded = load_pipeline(pipeline, settings)
    single: dict[str, Any] | None = None
    if input_json is not None:
        single, problem = parse_event(input_json)
        if problem:
            err.print(f"[red]error:[/red] --input: {problem}", markup=True)
            raise typer.Exit(2)
    source = None if events is None or str(events) == "-" else events
    if source is not None and not source.is_file():
        err.print(f"[red]error:[/red] --events: no file '{source}'")
        raise typer.Exit(2)
    skipped = event_loop.run(_run_events(loaded, settings, single, source, explain), settings.event_loop)
    if skipped:
        err.print(f"[yellow]{skipped} line(s) were not events and were not run[/yellow]")
        raise typer.Exit(1)


async def _run_events(
    pipeline: Pipeline, settings: Settings, single: dict[str, Any] | None, events: Path | None, explain: bool
) -> int:
    try:
        services = await build_services(settings.services)
    except ServicesError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=False)
        raise typer.Exit(2) from None
    skipped = 0
    label = str(events) if events else "<stdin>"
    try:
        if single is not None:
            await _run_one(pipeline, single, services, explain)
            return 0
        async for line in read_events(events):
            if line.event is None:
                err.print(f"{label}:{line.line}: {line.problem}", markup=False)
                skipped += 1
                continue
            await _run_one(pipeline, line.event, services, explain)
    finally:
        await services.cleanup_all()
    return skipped


async def _run_one(pipeline: Pipeline, event: dict[str, Any], services: Any, explain: bool) -> None:
    record = (await pipeline.run(event, services)).to_record()
    await write_stdout(json_line(record))
    if explain:
        err.print(explain_table(record))


def graph(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="mermaid or dot")] = GraphFormat.mermaid,
    stages: Annotated[
        bool, typer.Option("--stages/--no-stages", help="box the steps of each streaming stage with its topic")
    ] = True,
) -> None:
    """Draw the pipeline's flow graph (steps, conditions on the edges, stages and their topics) as Mermaid or
    Graphviz DOT."""
    from ia_modules.pipeline.diagram import Group, to_dot, to_mermaid
    from streams.topology import build_topology

    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    groups: list[Group] = []
    if stages:
        topology = build_topology(plan, settings.topic_prefix, settings.app_id, settings.fuse)
        for stage in topology.stages.values():
            topic = " | ".join(topology.input_topics) if stage.is_start else stage.topic
            groups.append(Group(f"stage {stage.name} ← {topic}", stage.steps))
    text = to_mermaid(plan, groups) if format is GraphFormat.mermaid else to_dot(plan, groups)
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(run)
    app.command()(graph)
