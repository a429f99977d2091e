"""A run on one stage of a worker: the kernel's run state plus the trace the envelope brought along."""

from __future__ import annotations

from typing import Any

import orjson

from ia_modules.pipeline.kernel import RunState

from .envelope import Envelope, join_trace


class StreamRun(RunState):
    """A run on one stage: ``trace`` holds the entries of this stage, ``earlier_trace`` those of the stages
    before it, as the envelope brought them (JSON bytes, parsed only where a join or a dead letter needs them)."""

    earlier_trace: bytes = b"[]"

    def full_trace(self) -> list[dict[str, Any]]:
        """The whole trace as entries (the earlier stages' entries parsed and put in front, once)."""
        if self.earlier_trace != b"[]":
            self.trace[:0] = orjson.loads(self.earlier_trace)
            self.earlier_trace = b"[]"
        return self.trace

    def trace_json(self) -> bytes:
        """The whole trace as a JSON array, the earlier stages' bytes not parsed."""
        return join_trace(self.earlier_trace, self.trace)


def run_identity(envelope: Envelope) -> dict[str, Any]:
    """What a join keeps of the run so that it can resume it on its own (after a join timeout)."""
    return {"key": envelope.key, "input": envelope.input, "source": envelope.source, "started_ms": envelope.started_ms}
