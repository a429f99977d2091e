"""The worker's metrics as Prometheus reads them: buckets that fit what they measure, step and route counts from
the trace the kernel writes, runs counted once durable, and several processes' pages served as one."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ia_modules.pipeline.compiler import compile_pipeline
from ia_modules.pipeline.core import Pipeline
from streams.metrics import WorkerMetrics, merge_pages, render
from streams.metrics.catalog import RUN_BUCKETS, STEP_BUCKETS
from streams.metrics.exposition import families_registry
from streams.metrics.instruments import Histogram
from streams.metrics.reading import Page, quantile
from streams.sink.results import FinishedRun


def is_size(size: str) -> dict[str, Any]:
    return {"type": "expression", "config": {"source": "pipeline_input.size", "operator": "equals", "value": size}}


BRANCHING = {
    "name": "branching",
    "steps": [
        {"id": step, "module": "tests.unit.sample_steps", "step_class": "ConstStep"}
        for step in ("classify", "big", "small")
    ],
    "flow": {
        "start_at": "classify",
        "paths": [
            {"from": "classify", "to": "big", "condition": is_size("big")},
            {"from": "classify", "to": "small", "condition": is_size("small")},
        ],
    },
}


def page_of(metrics: WorkerMetrics) -> Page:
    return Page.parse(render(families_registry(metrics)).decode())


def bucket_of(bounds: tuple[float, ...], value: float) -> float:
    """The smallest bucket bound a value is counted under."""
    histogram = Histogram("h_seconds", "h", (), bounds)
    histogram.child().observe(value)
    text = render_one(histogram)
    counts = Page.parse(text).buckets("h_seconds")
    return min(bound for bound, count in counts.items() if count == 1)


def render_one(histogram: Histogram) -> str:
    metrics = WorkerMetrics()
    metrics.batch_records = histogram  # the families are collected by attribute: one of ours stands in
    return render(families_registry(metrics)).decode()


@pytest.mark.parametrize(
    ("bounds", "value", "bucket"),
    [
        (STEP_BUCKETS, 50e-6, 50e-6),  # a 50 us step: a bucket of its own size, not "under 1 ms"
        (STEP_BUCKETS, 51e-6, 1e-4),
        (STEP_BUCKETS, 5.0, 5.0),  # a 5 s step: still below the top bucket
        (RUN_BUCKETS, 0.004, 0.005),
        (RUN_BUCKETS, 5.0, 5.0),
        (RUN_BUCKETS, 301.0, float("inf")),
    ],
)
def test_buckets_fit_what_they_measure_and_a_bound_is_inclusive(
    bounds: tuple[float, ...], value: float, bucket: float
) -> None:
    assert bucket_of(bounds, value) == bucket


def test_a_histogram_is_exposed_cumulative_with_its_sum_and_count() -> None:
    metrics = WorkerMetrics()
    child = metrics.step_duration.child("p", "s")
    for value in (30e-6, 30e-6, 0.002, 7.0):
        child.observe(value)
    text = render(families_registry(metrics)).decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "ia_step_duration_seconds")
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("ia_step_duration_seconds_bucket", "5e-05")] == 2
    assert samples[("ia_step_duration_seconds_bucket", "0.0025")] == 3
    assert samples[("ia_step_duration_seconds_bucket", "+Inf")] == 4
    assert samples[("ia_step_duration_seconds_count", None)] == 4
    assert samples[("ia_step_duration_seconds_sum", None)] == pytest.approx(7.00206)


async def test_step_and_route_counts_match_the_trace_the_kernel_wrote() -> None:
    plan = compile_pipeline(BRANCHING, "branching.json")
    metrics = WorkerMetrics()
    series = metrics.pipeline(plan, "chains")
    pipeline = Pipeline(plan)
    sizes = ["big", "big", "small", "neither"]
    for size in sizes:
        result = await pipeline.run({"size": size})
        for entry in result.trace:
            if entry["status"] == "skipped":
                series.steps[entry["step"]].skipped.value += 1
            else:
                series.steps[entry["step"]].ran(entry)
    page = page_of(metrics)
    taken = page.sum_by("ia_route_total", ("from", "to", "taken"), pipeline="branching")
    assert taken[("classify", "big", "true")] == 2 and taken[("classify", "big", "false")] == 2
    assert taken[("classify", "small", "true")] == 1 and taken[("classify", "small", "false")] == 3
    steps = page.sum_by("ia_step_runs_total", ("step", "status"), pipeline="branching")
    assert steps[("classify", "ok")] == 4
    assert steps[("big", "ok")] == 2 and steps[("big", "skipped")] == 2
    assert steps[("small", "ok")] == 1 and steps[("small", "skipped")] == 3
    assert page.total("ia_step_duration_seconds_count", pipeline="branching", step="small") == 1  # not the skips


def entry(status: str, attempts: int = 1, routes: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"step": "s", "status": status, "attempts": attempts, "duration_ms": 2.0, "routes": routes or [], **extra}


def test_a_failed_step_counts_its_retries_and_only_evaluated_paths_count_as_routes() -> None:
    plan = compile_pipeline(BRANCHING, "branching.json")
    metrics = WorkerMetrics()
    classify = metrics.pipeline(plan, "chains").steps["classify"]
    not_evaluated = [{"to": "big", "taken": False, "note": "step failed"}, {"to": "small", "taken": False}]
    classify.ran(entry("failed", attempts=3, routes=not_evaluated))
    evaluated = [{"to": "big", "taken": True}, {"to": "small", "taken": False}]
    classify.ran(entry("failed", attempts=2, routes=evaluated, on_error="continue"))
    page = page_of(metrics)
    assert page.total("ia_step_runs_total", step="classify", status="failed") == 2
    assert page.total("ia_step_retries_total", step="classify") == 3
    assert page.total("ia_route_total", **{"from": "classify"}) == 2  # the paths of the on_error: continue only
    assert page.total("ia_route_total", **{"from": "classify", "to": "big", "taken": "true"}) == 1


def finished(pipeline: str, status: str, *, started_ms: int, consumed_ms: int, replay: int = 0) -> FinishedRun:
    record = {"run_id": "r", "pipeline": pipeline, "status": status}
    return FinishedRun(record, 0, None, 0, None, started_ms, consumed_ms, replay)


def test_a_durable_run_is_counted_with_its_latencies_and_a_replay_only_by_status() -> None:
    plan = compile_pipeline(BRANCHING, "branching.json")
    metrics = WorkerMetrics()
    metrics.pipeline(plan, "chains")
    metrics.runs_durable(
        [
            finished("branching", "success", started_ms=1_000, consumed_ms=1_500),
            finished("branching", "failed", started_ms=1_000, consumed_ms=1_900),
            finished("branching", "failed", started_ms=10, consumed_ms=20, replay=1),
            finished("branching", "success", started_ms=3_000, consumed_ms=3_000),  # a producer clock ahead
        ],
        now_ms=2_000,
    )
    page = page_of(metrics)
    assert page.sum_by("ia_runs_total", ("status",)) == {("success",): 2, ("failed",): 2}
    assert page.total("ia_run_duration_seconds_count") == 3
    assert page.total("ia_run_duration_seconds_sum") == pytest.approx(0.5 + 0.1 + 0.0)
    assert page.total("ia_end_to_end_latency_seconds_sum") == pytest.approx(1.0 + 1.0 + 0.0)


def test_every_series_of_a_pipeline_exists_at_zero_from_load() -> None:
    metrics = WorkerMetrics()
    metrics.pipeline(compile_pipeline(BRANCHING, "branching.json"), "none")
    page = page_of(metrics)
    assert page.sum_by("ia_runs_total", ("status",)) == {("success",): 0, ("failed",): 0}
    assert len(page.sum_by("ia_route_total", ("from", "to", "taken"))) == 8  # 2 paths, 2 to the end; true, false
    assert page.sum_by("ia_pipeline_info", ("pipeline", "fuse")) == {("branching", "none"): 1}
    assert page.total("ia_build_info") == 1


def test_pages_of_several_processes_are_served_as_one_labelled_by_process() -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    one.consumed("p", "ia.p.input").value = 3
    two.consumed("p", "ia.p.input").value = 4
    two.step_duration.child("p", "s").observe(0.001)
    merged = merge_pages(
        [("1", render(families_registry(one)).decode()), ("2", render(families_registry(two)).decode())]
    ).decode()
    assert merged.count("# TYPE ia_events_consumed_total counter") == 1  # one family, samples of both
    page = Page.parse(merged)
    assert page.sum_by("ia_events_consumed_total", ("process",)) == {("1",): 3, ("2",): 4}
    assert page.total("ia_events_consumed_total", pipeline="p") == 7  # sum by (pipeline) adds the processes up
    assert page.buckets("ia_step_duration_seconds", process="2")[0.001] == 1


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 0.15), (0.9, 0.19), (1.0, 0.2)],
)
def test_quantiles_interpolate_within_the_bucket_as_prometheus_does(q: float, expected: float) -> None:
    buckets = {0.1: 0.0, 0.2: 10.0, float("inf"): 10.0}
    assert quantile(q, buckets) == pytest.approx(expected)


def test_a_quantile_of_nothing_is_none_and_one_past_the_top_bucket_is_the_top_bound() -> None:
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == 0.1


@pytest.mark.parametrize("seconds", [0.0, 24e-6, 25e-6, 26e-6, 50e-6, 99e-6, 1e-4, 1.01e-4, 0.3, 5.0, 61.0])
def test_a_steps_bucket_is_the_one_prometheus_would_count_it_under(seconds: float) -> None:
    plan = compile_pipeline(BRANCHING, "branching.json")
    metrics = WorkerMetrics()
    metrics.pipeline(plan, "chains").steps["big"].ran(entry("ok", duration_ms=seconds * 1000))
    counted = page_of(metrics).buckets("ia_step_duration_seconds", step="big")
    assert min(bound for bound, count in counted.items() if count == 1) == bucket_of(STEP_BUCKETS, seconds)
