"""The guide's import path for its example steps (``from steps.my_custom_steps import DataTransformStep``;
pipelines name ``"module": "steps.my_custom_steps"``). The steps live in small modules by job; this one
re-exports them."""

from __future__ import annotations

from .analysis_steps import AdvancedProcessorStep, QualityCheckerStep, StandardProcessorStep
from .batch import BatchProcessingStep, ParallelProcessingStep
from .data_steps import DataCleanerStep, DataLoaderStep
from .database_steps import DatabaseWriterStep, PersistentAnalysisStep
from .http_steps import APICallStep, EnhancedAPIStep
from .output_steps import OutputFormatterStep
from .robust import RobustProcessingStep
from .transform import ConditionalProcessingStep, DataTransformStep

__all__ = [
    "APICallStep",
    "AdvancedProcessorStep",
    "BatchProcessingStep",
    "ConditionalProcessingStep",
    "DataCleanerStep",
    "DataLoaderStep",
    "DataTransformStep",
    "DatabaseWriterStep",
    "EnhancedAPIStep",
    "OutputFormatterStep",
    "ParallelProcessingStep",
    "PersistentAnalysisStep",
    "QualityCheckerStep",
    "RobustProcessingStep",
    "StandardProcessorStep",
]
