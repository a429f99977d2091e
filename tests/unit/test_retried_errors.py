"""The filter that shows the errors aiokafka retries by itself as warnings."""

from __future__ import annotations

import logging

from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError, NodeNotReadyError

from streams.kafka.client_logs import RetriedErrorsAsWarnings


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_an_error_the_client_retries_shows_as_a_warning_with_its_message() -> None:
    retried = record("aiokafka.consumer.group_coordinator", "Group Coordinator Request failed: %s",
                     CoordinatorNotAvailableError())  # fmt: skip
    assert RetriedErrorsAsWarnings().filter(retried)
    assert (retried.levelno, retried.levelname) == (logging.WARNING, "WARNING")
    assert "CoordinatorNotAvailableError" in retried.getMessage()
    fetch = record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, NodeNotReadyError())
    assert RetriedErrorsAsWarnings().filter(fetch) and fetch.levelname == "WARNING"


def test_errors_that_are_not_retried_and_other_loggers_stay_errors() -> None:
    fatal = record("aiokafka.consumer.group_coordinator", "failed: %s", GroupAuthorizationFailedError())
    unreachable = record("aiokafka", 'Unable connect to "%s:%s": %s', "h", 9092, OSError("refused"))
    ours = record("ia_modules.streams.worker", "failed: %s", CoordinatorNotAvailableError())
    plain = record("aiokafka", "Unable to update metadata from %s", [1])
    for kept in (fatal, unreachable, ours, plain):
        assert RetriedErrorsAsWarnings().filter(kept)
        assert (kept.levelno, kept.levelname) == (logging.ERROR, "ERROR"), kept.getMessage()
