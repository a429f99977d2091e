"""The Kafka client's log, made readable: errors it retries by itself shown as warnings, and repeated lines
shown once per window with a count.

aiokafka logs some errors it retries by itself at ERROR: the group coordinator not available yet on a fresh
Kafka (while ``__consumer_offsets`` is being created), a fetch or a heartbeat that failed while a broker
restarts. Nothing has failed for good then, so the worker shows them as warnings.

While a broker restarts, aiokafka logs the same few errors (coordinator not available, node not ready, cannot
connect) every retry, ten times a second each; a log that is all repeats hides what else happened. The first
line of each kind goes through, the same kind again within the window is counted, and the next one after the
window says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

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


REPEAT_WINDOW_S = 10.0


class RepeatedLines(logging.Filter):
    """Lets one record per (logger, message template) through per ``window_s``, for loggers under ``prefix``."""

    def __init__(self, prefix: str = "aiokafka", window_s: float = REPEAT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self.prefix = prefix
        self.window_s = window_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._left_out: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        kind = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.window_s:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return False
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        if left_out:
            record.msg = f"{record.msg} (and {left_out} more like it in the {self.window_s:g} s before)"
        return True
