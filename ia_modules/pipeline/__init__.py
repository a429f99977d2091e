"""The pure pipeline core: pipeline files, templates, conditions, the flow graph and the in-process runner.

Nothing here knows Kafka or Postgres; the streaming runtime in ``streams`` drives the same kernel.
"""

from .core import Pipeline, Step, TemplateParameterResolver
from .errors import PipelineConfigError, PipelineNotFoundError, StepOutputError
from .result import PipelineResult
from .runner import run_pipeline, run_pipeline_from_json
from .services import ServiceRegistry

__all__ = [
    "Pipeline",
    "PipelineConfigError",
    "PipelineNotFoundError",
    "PipelineResult",
    "ServiceRegistry",
    "Step",
    "StepOutputError",
    "TemplateParameterResolver",
    "run_pipeline",
    "run_pipeline_from_json",
]
