"""``IA_METRICS``: on by default, ``/metrics`` beside ``/health``; ``0`` serves none and records none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.metrics.reading import Page
from tests.integration.streaming_support import Namespace, WorkerProcess, pipelines_dir_with

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_metrics_turned_off_serve_no_page_and_the_health_page_stays(
    kafka_broker: str, postgres_url: str, tmp_path: Path, processes: str
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", args=("--processes", processes), IA_METRICS="0")
    try:
        await worker.wait_consuming()
        status, _ = await asyncio.to_thread(worker.metrics)
    finally:
        assert worker.stop() == 0
    assert status == 404


async def test_metrics_are_on_by_default_with_every_pipeline_bound_at_load(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing", "order_enrichment")
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log")
    try:
        await worker.wait_consuming()
        status, text = await asyncio.to_thread(worker.metrics)
    finally:
        assert worker.stop() == 0
    assert status == 200
    page = Page.parse(text)
    assert page.sum_by("ia_pipeline_info", ("pipeline", "fuse")) == {
        ("custom_processing", "chains"): 1,
        ("order_enrichment", "chains"): 1,
    }
    assert page.total("ia_runs_total", pipeline="order_enrichment") == 0  # exists before the first run
    assert page.total("ia_assigned_partitions") > 0
    assert page.total("ia_sink_up", sink="postgres") == 1, "connected at start: up before its first write"
    assert page.total("process_resident_memory_bytes") > 0
