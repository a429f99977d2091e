"""PipelineResult: what a run gives back, readable as the guide's ``result['step']['field']``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from .wire import RunError, result_record


class PipelineResult(Mapping[str, Any]):
    """A read-only mapping from step id to that step's output (steps that ran), plus the run's record."""

    def __init__(
        self,
        *,
        run_id: str,
        pipeline: str,
        pipeline_version: str,
        status: str,
        outputs: Any,
        error: RunError | None,
        trace: list[dict[str, Any]],
        input: dict[str, Any],
        step_outputs: dict[str, dict[str, Any]],
        source: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.pipeline_version = pipeline_version
        self.status = status
        self.outputs = outputs
        self.error = error
        self.trace = trace
        self.input = input
        self.source = source
        self._steps = MappingProxyType(step_outputs)

    def __getitem__(self, step_id: str) -> Any:
        return self._steps[step_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    def to_record(self) -> dict[str, Any]:
        """The result record: the same shape on the output topic, from ``consume`` and from ``run``."""
        return result_record(
            run_id=self.run_id,
            pipeline=self.pipeline,
            pipeline_version=self.pipeline_version,
            status=self.status,
            outputs=self.outputs,
            error=self.error,
            trace=self.trace,
            input=self.input,
            source=self.source,
        )

    def __repr__(self) -> str:
        return f"PipelineResult(run_id={self.run_id!r}, status={self.status!r}, steps={list(self._steps)})"
