"""The ``ia-modules`` command line (typer + rich)."""

from __future__ import annotations

import os
import sys

import typer

from . import db_commands, demo, dlq_commands, pipeline_commands, stream_commands

app = typer.Typer(
    name="ia-modules",
    help="Declarative per-record pipelines: validate, run, draw and (with a broker) stream them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
pipeline_commands.register(app)
stream_commands.register(app)
db_commands.register(app)
dlq_commands.register(app)
app.command()(demo.demo)


def main() -> None:
    """Console entry point; the working directory is importable, as it is for ``python -m``, so the
    project's ``steps`` package resolves."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app()
