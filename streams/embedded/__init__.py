"""The embedded defaults for trying things out: the Tansu broker (``broker``) and PostgreSQL (``postgres``) as
child processes that die with the command that started them (``child_processes``)."""

from streams.embedded.broker import EmbeddedBrokerError, embedded_broker, find_recorded_broker
from streams.embedded.child_processes import die_with_parent, process_running, stop_process
from streams.embedded.postgres import EmbeddedPostgres, EmbeddedPostgresUnavailable, database_turned_off, database_url

__all__ = [
    "EmbeddedBrokerError",
    "EmbeddedPostgres",
    "EmbeddedPostgresUnavailable",
    "database_turned_off",
    "database_url",
    "die_with_parent",
    "embedded_broker",
    "find_recorded_broker",
    "process_running",
    "stop_process",
]
