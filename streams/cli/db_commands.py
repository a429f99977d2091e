"""Database commands: ``migrate`` applies the pending migrations on IA_DATABASE_URL (or the embedded server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ia_modules.database import DatabaseError, DatabaseManager, MigrationReport
from streams.cli.output import err, json_line, write_stdout
from streams.embedded.postgres import EmbeddedPostgresUnavailable, check_database_url, database_url
from streams.process import event_loop
from streams.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the database commands to the ``ia-modules`` app."""
    app.command()(migrate)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _report_table(report: MigrationReport) -> Table:
    table = Table(title="applied migrations", title_justify="left")
    table.add_column("scope")
    table.add_column("version", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("ms", justify="right")
    for applied in report.applied:
        table.add_row(applied.scope, str(applied.version), applied.name, f"{applied.execution_ms:.1f}")
    return table


def _report_json(report: MigrationReport, url: str) -> dict[str, Any]:
    return {
        "database": url,
        "applied": [
            {"scope": a.scope, "version": a.version, "name": a.name, "path": str(a.path), "ms": a.execution_ms}
            for a in report.applied
        ],
        "already_applied": report.already_applied,
    }


async def _migrate(settings: Settings, paths: list[Path], as_json: bool) -> None:
    async with database_url(settings) as (url, embedded):
        manager = DatabaseManager(url)
        where = manager.url + (" (embedded)" if embedded else "")
        err.print(f"database: {escape(where)}", markup=True)
        try:
            report = await manager.migrate(paths)
        finally:
            await manager.close()
    for scope, directory in report.sources:
        err.print(f"migrations {escape(scope)}: {escape(_shown(directory))}")
    if as_json:
        await write_stdout(json_line(_report_json(report, manager.url)))
    if report.applied:
        err.print(_report_table(report))
        err.print(
            f"[green]applied {len(report.applied)} migration(s)[/green]; {report.already_applied} already applied"
        )
    else:
        err.print(f"nothing to apply: {report.already_applied} migration(s) already applied")


def migrate(
    path: Annotated[
        list[Path] | None,
        typer.Option(
            "--path",
            metavar="DIR",
            help="an app's migration directory (repeatable), applied after the project's migrations/",
            exists=True,
            file_okay=False,
            dir_okay=True,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="also print the report as one JSON line on stdout")] = False,
) -> None:
    """Apply the pending V<n>__<name>.sql migrations on IA_DATABASE_URL (unset: the embedded PostgreSQL in
    .ia/pg) and print what was applied; exit 1 naming the file when one fails or was changed."""
    settings = Settings()
    check_database_url(settings)  # one line naming IA_DATABASE_URL (main) when it cannot be parsed
    try:
        event_loop.run(_migrate(settings, path or [], as_json), settings.event_loop)
    except (DatabaseError, EmbeddedPostgresUnavailable) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
