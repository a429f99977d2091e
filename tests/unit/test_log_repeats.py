"""The filter that shows a repeated Kafka-client log line once per window, with how many it left out."""

from __future__ import annotations

import logging

from streams.kafka.client_logs import RepeatedLines


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_line_repeated_within_the_window_is_counted_and_reported_with_the_next_one() -> None:
    clock = Clock()
    repeats = RepeatedLines(window_s=10, clock=clock)
    template = "Unable connect to node with id %s: %s"
    first = record("aiokafka", template, 1, "refused")
    assert repeats.filter(first) and first.getMessage() == "Unable connect to node with id 1: refused"
    shown = []
    for second in range(1, 10):
        clock.now = float(second)
        shown.append(repeats.filter(record("aiokafka", template, 1, "refused")))
    assert not any(shown)
    clock.now = 10.5
    later = record("aiokafka", template, 1, "refused")
    assert repeats.filter(later)
    assert later.getMessage() == "Unable connect to node with id 1: refused (and 9 more like it in the 10 s before)"
    clock.now = 30.0
    quiet = record("aiokafka", template, 1, "refused")
    assert repeats.filter(quiet) and "more like it" not in quiet.getMessage()


def test_other_lines_and_other_loggers_go_through() -> None:
    repeats = RepeatedLines(window_s=10, clock=Clock())
    assert repeats.filter(record("aiokafka.consumer.group_coordinator", "Group Coordinator Request failed: %s", 1))
    assert repeats.filter(record("aiokafka", "Unable to update metadata from %s", [1]))
    for _ in range(3):
        assert repeats.filter(record("ia_modules.streams.sink.results", "the database is unreachable (%s)", "x"))
