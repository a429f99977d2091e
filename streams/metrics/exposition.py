"""``/metrics``: a worker's families with prometheus-client's process and Python metrics, in the text format;
and, for ``worker --processes N``, the worker processes' pages served as one, each series labelled with its
process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from streams.metrics.catalog import WorkerMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST

PROCESS_LABEL = "process"
"""The label the supervisor adds to each worker process's series (``"1"`` to ``"N"``; its own: ``supervisor``)."""


class _Families(Collector):
    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for family in self.metrics.families():
            yield family.collect()


def process_registry() -> CollectorRegistry:
    """A registry of this process's CPU, memory, file descriptors, garbage collection and Python version."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def families_registry(metrics: WorkerMetrics) -> CollectorRegistry:
    """The worker's own families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metrics))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class WorkerPage:
    """A worker process's ``/metrics``: its families, read on the event loop that updates them (so a scrape
    sees each batch whole), and its process metrics, read from /proc in a thread."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.families = families_registry(metrics)
        self.process = process_registry()

    async def render(self) -> bytes:
        process = await asyncio.to_thread(render, self.process)
        return render(self.families) + process


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def merge_pages(pages: Iterable[tuple[str, str]]) -> bytes:
    """``(process, exposition text)`` pages as one page: every sample gets ``process="<process>"``, and the
    samples of a family from all pages are listed under one HELP and TYPE."""
    merged: dict[str, Metric] = {}
    for process, text in pages:
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, PROCESS_LABEL: process}, sample.value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(merged.values())))
    return generate_latest(registry)
