"""The ``ia-modules`` command line (typer + rich)."""

from __future__ import annotations

import logging
import os
import sys

import typer
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError
from rich.markup import escape

from ia_modules.database.errors import DatabaseURLError
from streams.cli import db_commands, demo, dlq_commands, pipeline_commands, stream_commands, top
from streams.cli.output import err
from streams.kafka.cluster import BrokerAddressError, redacted_broker
from streams.kafka.security import KafkaSecurity, refusals, unreachable_broker
from streams.process.event_loop import EventLoopUnavailable
from streams.settings import Settings, settings_problems

__all__ = ["app", "main"]

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
app.command()(top.top)


def main() -> None:
    """Console entry point; the working directory is importable, as it is for ``python -m``, so the
    project's ``steps`` package resolves. A broker that refused the clients' credentials or TLS is one line
    (what aiokafka logged about it is kept back: ``refusals``)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    logging.getLogger("aiokafka").addFilter(refusals)
    try:
        app()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        for line in settings_problems(exc):
            err.print(f"[red]error:[/red] {escape(line)}")
        sys.exit(2)
    except (EventLoopUnavailable, DatabaseURLError, BrokerAddressError) as exc:  # these name the setting
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(2)
    except KafkaConnectionError:
        settings = Settings()
        configured = settings.broker
        where = redacted_broker(configured) if configured else "the embedded broker recorded in .ia/broker.json"
        line = unreachable_broker(where, KafkaSecurity.from_settings(settings), refusals.last)
        err.print(f"[red]error:[/red] {escape(line)}")
        sys.exit(2)
