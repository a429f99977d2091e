"""Prometheus metrics: the worker's series (``catalog``), cheap to update on the hot path (``instruments``), and
``/metrics`` for one process or several (``exposition``). docs/metrics.md lists every metric."""

from streams.metrics.catalog import PipelineMetrics, SinkSeries, StepMetrics, WorkerMetrics
from streams.metrics.exposition import CONTENT_TYPE, WorkerPage, merge_pages, process_registry, render

__all__ = [
    "CONTENT_TYPE",
    "PipelineMetrics",
    "SinkSeries",
    "StepMetrics",
    "WorkerMetrics",
    "WorkerPage",
    "merge_pages",
    "process_registry",
    "render",
]
