"""Runs that stop before their end because a record they would produce cannot go out: larger than the broker
takes (``RecordTooLarge``), or not encodable as JSON (``orjson.JSONEncodeError``: a step's output nested deeper
than orjson writes, 254 levels, once the worker wraps it). The stage runner ends such a run as failed, in place
of what it produced on the record; this module says why, and which joins it closes."""

from __future__ import annotations

import traceback

import orjson

from ia_modules.pipeline.wire import RunError, run_error
from streams.envelope import Envelope
from streams.topology import Topology


class RecordTooLarge(Exception):
    """A record the run would produce is larger than a record may be (``IA_MAX_RECORD_BYTES``): the broker would
    refuse it, failing every batch it is in, again after every restart; so the run ends here instead."""

    def __init__(self, topic: str, size: int, ahead: frozenset[str]) -> None:
        super().__init__(f"a record of {size:,} bytes for {topic}")
        self.topic = topic
        self.size = size
        self.ahead = ahead
        """The joins the run could still reach from there: closed, so that no branch brings it a second result."""


RunStop = RecordTooLarge | orjson.JSONEncodeError
"""Why a run cannot go on: what the stage runner catches around a record's run and ends the run with."""


def stop_error(stop: RunStop, topology: Topology, max_record_bytes: int) -> RunError:
    """The run's error: ``RecordTooLarge`` naming the record and its size, or ``RecordNotEncodable`` with
    orjson's reason and where it was raised."""
    if isinstance(stop, RecordTooLarge):
        kinds = {topology.output_topic: "result", topology.dlq_topic: "dead letter", topology.joins_topic: "join state"}
        return run_error(
            "RecordTooLarge",
            f"the run's {kinds.get(stop.topic, 'envelope')} for {stop.topic} is {stop.size:,} bytes, over the "
            f"{max_record_bytes:,} a record may have (IA_MAX_RECORD_BYTES); the run stops here",
        )
    return run_error(
        "RecordNotEncodable",
        f"a record of the run could not be encoded as JSON ({stop}); the run stops here",
        traceback="".join(traceback.format_exception(stop)),
    )


def joins_to_close(stop: RunStop, topology: Topology, resumed_at: str) -> frozenset[str]:
    """The joins the run could still reach: those ahead of the record too large, or, for a record that could not
    be encoded (wherever that was), every join ahead of the step the record resumed the run at (a join's state
    the store took in memory but could not write is closed with them)."""
    if isinstance(stop, RecordTooLarge):
        return stop.ahead
    return topology.joins_ahead.get(resumed_at, frozenset())


def input_fits(envelope: Envelope, limit: int) -> bool:
    """Whether the run's input, encoded, is at most ``limit`` bytes (and can be encoded at all)."""
    try:
        return len(envelope.input_bytes()) <= limit
    except orjson.JSONEncodeError:
        return False
