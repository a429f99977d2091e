"""``ia-modules dlq list|replay``: the dead letters a pipeline's runs left in the database."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ia_modules.database import DatabaseError, DatabaseManager
from streams.cli.output import err, json_line, write_stdout
from streams.cli.pipeline_commands import load_pipeline
from streams.embedded.postgres import database_url
from streams.kafka.cluster import bootstrap_servers
from streams.kafka.security import KafkaSecurity
from streams.process import event_loop
from streams.process.serve import NoBrokerError, broker_for_clients
from streams.settings import Settings
from streams.sink.dead_letters import ReplayOutcome, list_letters, payload_of, replay_letters
from streams.topology import build_topology

dlq = typer.Typer(help="Dead letters: list them, replay failed runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq, name="dlq")


@dlq.command("list")
def list_command(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    limit: Annotated[int, typer.Option("--limit", help="at most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines on stdout instead of a table")] = False,
) -> None:
    """The pipeline's dead letters, newest first: what failed, where, and whether it can be replayed."""
    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    try:
        rows = event_loop.run(_list(settings, plan.id, limit, as_json), settings.event_loop)
    except DatabaseError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if not as_json:
        table = Table(title=f"dead letters of {plan.id} ({len(rows)} shown)", title_justify="left")
        for column in ("id", "created", "run", "kind", "step", "attempts", "error", "replay"):
            table.add_column(column, overflow="fold")
        for row in rows:
            replay = "replayed" if row["replayed_at"] else ("yes" if row["replayable"] else "no")
            table.add_row(
                str(row["id"]), str(row["created_at"])[:19], str(row["run_id"])[:8], row["kind"], row["step"] or "",
                str(row["attempts"]), escape(_shown(f"{row['error_type']}: {row['error_message']}")), replay,
            )  # fmt: skip
        err.print(table)


async def _list(settings: Settings, pipeline: str, limit: int, as_json: bool) -> list[dict[str, Any]]:
    async with database_url(settings) as (url, _embedded):
        async with DatabaseManager(url, project_migrations_dir=False) as db:
            rows = await list_letters(db, pipeline, limit)
    if as_json:
        lines = [json_line({k: v for k, v in row.items() if k != "payload"} | {"letter": _letter(row)}) for row in rows]
        await write_stdout(b"".join(lines))
    return rows


def _letter(row: dict[str, Any]) -> dict[str, Any]:
    """The whole letter, as it was produced (NULs restored: docs/database.md)."""
    return payload_of(row)


def _shown(text: str) -> str:
    """Text for the table: a NUL, invisible on a terminal, shown as ``\\u0000``."""
    return text.replace("\0", "\\u0000")


@dlq.command("replay")
def replay_command(
    pipeline: Annotated[str, typer.Argument(help="pipeline file or id")],
    letter_id: Annotated[int | None, typer.Option("--id", help="the dead letter to replay")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="every dead letter not replayed yet")] = False,
) -> None:
    """Put failed runs back on the topic of the stage holding the step that failed; each keeps its run id.

    Exit 1 when a chosen dead letter cannot be replayed (bad input, already replayed)."""
    if (letter_id is None) == (not replay_all):
        err.print("[red]error:[/red] give exactly one of --id N or --all")
        raise typer.Exit(2)
    settings = Settings()
    plan = load_pipeline(pipeline, settings).plan
    topology = build_topology(plan, settings.topic_prefix, settings.app_id, settings.fuse)
    try:
        outcomes = event_loop.run(_replay(settings, plan.id, topology, letter_id), settings.event_loop)
    except (NoBrokerError, DatabaseError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for outcome in outcomes:
        if outcome.problem:
            err.print(f"dead letter {outcome.id}: {escape(outcome.problem)}")
        else:
            err.print(f"dead letter {outcome.id}: run {outcome.run_id} replayed to {outcome.topic}")
    replayed = sum(1 for o in outcomes if o.problem is None)
    err.print(f"{replayed} run(s) replayed")
    if letter_id is not None and replayed == 0:
        raise typer.Exit(1)


async def _replay(settings: Settings, pipeline: str, topology: Any, letter_id: int | None) -> list[ReplayOutcome]:
    from aiokafka import AIOKafkaProducer

    broker = await broker_for_clients(settings)
    async with database_url(settings) as (url, _embedded):
        async with DatabaseManager(url, project_migrations_dir=False) as db:
            security = KafkaSecurity.from_settings(settings)
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers(broker), acks="all", **security.client_kwargs()
            )
            await producer.start()
            try:
                return await replay_letters(db, producer, pipeline, topology, letter_id)
            finally:
                await producer.stop()
