"""aiokafka logs some errors it retries by itself at ERROR: the group coordinator not available yet on a fresh
Kafka (while ``__consumer_offsets`` is being created), a fetch or a heartbeat that failed while a broker
restarts. Nothing has failed for good then, so the worker shows them as warnings."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiokafka.errors import KafkaError


class RetriedErrorsAsWarnings(logging.Filter):
    """An ERROR record of a logger under ``prefix`` whose arguments hold a retriable Kafka error becomes a
    WARNING; every record goes through."""

    def __init__(self, prefix: str = "aiokafka") -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith(self.prefix) and _retriable(record.args):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def _retriable(args: object) -> bool:
    values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else ()
    return any(isinstance(value, KafkaError) and value.retriable for value in values)
