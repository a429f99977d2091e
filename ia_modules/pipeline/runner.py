"""The guide's entry points for running a pipeline in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core import Pipeline
from .result import PipelineResult
from .services import ServiceRegistry


async def run_pipeline_from_json(
    pipeline_file: str | Path, input_data: dict[str, Any], services: ServiceRegistry | None = None
) -> PipelineResult:
    """Load ``pipeline_file`` and run it once on ``input_data``. To run many inputs, load once with
    ``await Pipeline.load(path)`` and call ``run`` on it."""
    pipeline = await Pipeline.load(pipeline_file)
    return await pipeline.run(input_data, services)


async def run_pipeline(
    config: dict[str, Any] | Pipeline, input_data: dict[str, Any], services: ServiceRegistry | None = None
) -> PipelineResult:
    """Run a pipeline given as its JSON dict (validated and compiled on each call) or as a loaded Pipeline."""
    pipeline = config if isinstance(config, Pipeline) else Pipeline.from_dict(config)
    return await pipeline.run(input_data, services)
