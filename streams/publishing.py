"""Putting events on a pipeline's input topic the way its workers expect them: keyed by ``stream.key``, on the
partition that key maps to, so a run starts where its join state lives."""

from __future__ import annotations

from typing import Any

import orjson

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.templates import Scope, render_text

from .emission import Emission
from .envelope import partition_for
from .topology import Topology


def event_key(plan: PipelinePlan, event: dict[str, Any]) -> str | None:
    """The partition key a worker gives this event (``stream.key`` resolved on it), or None."""
    if plan.key is None:
        return None
    value = plan.key.resolve(Scope(event, plan.parameters, {}))
    return None if value is None or value == "" else render_text(value)


def event_emission(plan: PipelinePlan, topology: Topology, event: dict[str, Any], sequence: int) -> Emission:
    """The record for ``event`` on the first input topic; events without a key spread round-robin."""
    key = event_key(plan, event)
    if key is None:
        return Emission(topology.input_topics[0], sequence % topology.partitions, None, orjson.dumps(event))
    encoded = key.encode()
    return Emission(topology.input_topics[0], partition_for(encoded, topology.partitions), encoded, orjson.dumps(event))
