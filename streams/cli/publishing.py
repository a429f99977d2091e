"""Putting events on a pipeline's input topic the way its workers expect them: keyed by ``stream.key``, on the
partition that key maps to, so a run starts where its join state lives."""

from __future__ import annotations

from typing import Any

import orjson

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.wire import event_key
from streams.envelope import partition_for
from streams.kafka.producer import Emission
from streams.topology import Topology


def event_emission(plan: PipelinePlan, topology: Topology, event: dict[str, Any], sequence: int) -> Emission:
    """The record for ``event`` on the first input topic; events without a key spread round-robin.
    ``orjson.JSONEncodeError`` for an event orjson cannot write (nested deeper than its 254 levels)."""
    key = event_key(plan, event)
    if key is None:
        return Emission(topology.input_topics[0], sequence % topology.partitions, None, orjson.dumps(event))
    encoded = key.encode()
    return Emission(topology.input_topics[0], partition_for(encoded, topology.partitions), encoded, orjson.dumps(event))
