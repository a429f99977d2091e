"""How the CLI prints: results as JSON lines on stdout, everything for people on stderr."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
out = Console(highlight=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
"""Tables and summaries for people on stdout (piped: 160 columns, not rich's 80, so that rows stay whole)."""


def json_line(record: Any) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str) + b"\n"  # str: UUIDs, Decimals


async def write_stdout(data: bytes) -> None:
    """Write to stdout off the event loop (a full pipe must not stall the runs)."""

    def write() -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    await asyncio.to_thread(write)


def explain_table(record: dict[str, Any]) -> Table:
    """The run's trace as a table: each step, its status and attempts, and every path it left by."""
    title = f"run {record['run_id']}  {record['pipeline']}  [bold]{record['status']}[/bold]"
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("step", "status", "attempts", "ms", "paths"):
        table.add_column(column)
    colours = {"ok": "green", "failed": "red", "skipped": "dim"}
    for entry in record["trace"]:
        routes = []
        for route in entry.get("routes", []):
            mark = "→" if route["taken"] else "✗"
            observed = "" if route.get("observed") is None else f" (saw {orjson.dumps(route['observed']).decode()})"
            note = f" [dim]{route['note']}[/dim]" if route.get("note") else ""
            routes.append(f"{mark} {route['to']}{observed}{note}")
        status = entry["status"]
        if entry.get("error"):
            status += f": {entry['error']['type']}: {entry['error']['message']}"
        table.add_row(
            entry["step"],
            f"[{colours.get(entry['status'], 'white')}]{status}[/]",
            str(entry["attempts"]),
            f"{entry.get('duration_ms') or 0:.2f}",
            "\n".join(routes),
        )
    return table
