"""Every metric a worker exposes (docs/metrics.md lists them), and their series bound per pipeline and step.

``WorkerMetrics`` owns the families; ``pipeline`` binds a pipeline's series once, at load, so that the hot path
holds plain children (``PipelineMetrics``, ``StepMetrics``) and adds to them: no label is resolved per record.
"""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.graph import END
from streams.metrics.instruments import (
    Counter,
    CounterChild,
    Family,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
)

if TYPE_CHECKING:  # the sink imports this package
    from streams.sink.results import FinishedRun

STEP_BUCKETS: tuple[float, ...] = (25e-6, 50e-6, 1e-4, 2.5e-4, 5e-4, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
STEP_BUCKETS += (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""25 us to 60 s: a 50 us step and a 5 s step both land in a bucket of their own size."""
RUN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""1 ms to 5 min: runs and end-to-end latency, which include waits between stages and for the database."""
IO_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""0.5 ms to 30 s: a batch, a produce, a commit, a sink write."""
BATCH_SIZE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)

SINK = "postgres"
"""The results sink's name in the ``sink`` label."""


def release() -> str:
    try:
        return version("ia-modules")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


class StepMetrics:
    """One step's series: its runs by status, its duration, its retries and, per path leaving it (in the
    graph's order, as the trace's ``routes`` lists them), not taken and taken (indexed by the trace's bool).

    A step whose every path is taken whatever it returns (``Graph.always_from``) has ``routes`` None: its paths'
    counts are its runs that evaluated them (``evaluated``), read when the page is rendered instead of counted."""

    __slots__ = ("duration", "evaluated", "failed", "ok", "retries", "routes", "skipped")

    def __init__(
        self,
        ok: CounterChild,
        failed: CounterChild,
        skipped: CounterChild,
        duration: HistogramChild,
        retries: CounterChild,
        routes: list[tuple[CounterChild, CounterChild]] | None,
    ) -> None:
        self.ok, self.failed, self.skipped = ok, failed, skipped
        self.duration = duration
        self.retries = retries
        self.routes = routes
        self.evaluated = 0
        """Runs of the step whose paths were evaluated (it succeeded, or failed with ``on_error: continue``), kept
        when ``routes`` is None."""

    def ran(self, entry: dict[str, Any]) -> None:
        """Count the step's trace entry (``kernel.run_step`` wrote it): status, duration, retries and, when its
        paths were evaluated, each path taken or not. This runs for every step of every record: the histogram
        observation is inlined and ``zip`` is called without a keyword (with one it has no fast path)."""
        attempts = entry["attempts"]
        if attempts > 1:
            self.retries.value += attempts - 1
        seconds = entry["duration_ms"] / 1000
        duration = self.duration
        bounds = duration.bounds
        if seconds <= bounds[2]:  # most steps take under 100 us: three float comparisons, no bisect call
            duration.counts[0 if seconds <= bounds[0] else 1 if seconds <= bounds[1] else 2] += 1
        else:
            duration.counts[bisect_left(bounds, seconds)] += 1
        duration.sum += seconds
        if entry["status"] == "ok":
            self.ok.value += 1
        else:
            self.failed.value += 1
            if "on_error" not in entry:
                return
        routes = self.routes
        if routes is None:
            self.evaluated += 1
        else:
            for counters, route in zip(routes, entry["routes"]):  # noqa: B905 (same length: the step's paths)
                counters[route["taken"]].value += 1


@dataclass
class RunSeries:
    """A pipeline's run series, counted when a run's result is durable."""

    success: CounterChild
    failed: CounterChild
    duration: HistogramChild
    end_to_end: HistogramChild


@dataclass
class PipelineMetrics:
    """What the stage runner of one pipeline updates."""

    steps: dict[str, StepMetrics]
    runs: RunSeries
    internal_errors: CounterChild
    join_timeouts: dict[str, CounterChild]


class WorkerMetrics:
    """The families of one worker process. ``collect`` yields them for exposition."""

    def __init__(self) -> None:
        self.events_consumed = Counter("ia_events_consumed_total", "Records consumed.", ("pipeline", "topic"))
        self.runs = Counter("ia_runs_total", "Runs finished, once their result is durable.", ("pipeline", "status"))
        self.run_duration = Histogram(
            "ia_run_duration_seconds",
            "First consume of a run's input record to its result durable.",
            ("pipeline",),
            RUN_BUCKETS,
        )
        self.end_to_end = Histogram(
            "ia_end_to_end_latency_seconds",
            "The input record's Kafka timestamp to the run's result durable (replays not counted).",
            ("pipeline",),
            RUN_BUCKETS,
        )
        self.step_duration = Histogram(
            "ia_step_duration_seconds", "One step's run, all attempts.", ("pipeline", "step"), STEP_BUCKETS
        )
        self.step_runs = Counter("ia_step_runs_total", "Steps by outcome.", ("pipeline", "step", "status"))
        self.step_retries = Counter("ia_step_retries_total", "Retried step attempts.", ("pipeline", "step"))
        self.routes = Counter(
            "ia_route_total", "Paths evaluated after a step ran.", ("pipeline", "from", "to", "taken")
        )
        self.dead_letters = Counter(
            "ia_dead_letters_total", "Dead letters produced, by kind.", ("pipeline", "step", "kind")
        )
        self.joins_waiting = Gauge(
            "ia_joins_waiting", "Joins holding some but not all of their paths' tokens.", ("pipeline", "step")
        )
        self.join_timeouts = Counter(
            "ia_join_timeouts_total", "Joins that waited past stream.join_timeout_s.", ("pipeline", "step")
        )
        self.internal_errors = Counter(
            "ia_internal_errors_total", "Records the runtime itself failed on.", ("pipeline",)
        )
        self.batch_records = Histogram("ia_batch_records", "Records per fetched batch.", (), BATCH_SIZE_BUCKETS)
        self.batch_duration = Histogram(
            "ia_batch_duration_seconds", "Running one fetched batch's records.", (), IO_BUCKETS
        )
        self.produce_latency = Histogram(
            "ia_produce_latency_seconds",
            "A batch's records handed to the producer to the broker's acknowledgement of all of them.",
            (),
            IO_BUCKETS,
        )
        self.commit_duration = Histogram("ia_commit_duration_seconds", "One offset commit.", (), IO_BUCKETS)
        self.consumer_lag = Gauge(
            "ia_consumer_lag", "High watermark minus the worker's position.", ("pipeline", "topic", "partition")
        )
        self.assigned_partitions = Gauge("ia_assigned_partitions", "Partitions assigned to this worker.")
        self.rebalances = Counter("ia_rebalances_total", "Partition assignments received.")
        self.sink_rows = Counter("ia_sink_rows_total", "Rows of the results sink.", ("sink", "table", "status"))
        self.sink_flush = Histogram("ia_sink_flush_seconds", "One write of a batch's rows.", ("sink",), IO_BUCKETS)
        self.sink_up = Gauge("ia_sink_up", "1 while the sink's last write succeeded, 0 while it fails.", ("sink",))
        self.sink_last_success = Gauge(
            "ia_sink_last_success_timestamp_seconds", "When the sink last wrote successfully.", ("sink",)
        )
        self.build_info = Gauge("ia_build_info", "The running release.", ("version", "python"))
        self.pipeline_info = Gauge("ia_pipeline_info", "Each loaded pipeline.", ("pipeline", "version", "fuse"))
        self.build_info.child(release(), platform.python_version()).set(1)
        self.batch_records.child()
        self.batch_duration.child()
        self.produce_latency.child()
        self.commit_duration.child()
        self.rebalances.child()
        self.assigned_partitions.child()
        self._run_series: dict[str, RunSeries] = {}

    def families(self) -> Iterator[Family]:
        for value in vars(self).values():
            if isinstance(value, Counter | Gauge | Histogram):
                yield value

    def pipeline(self, plan: PipelinePlan, fuse: str) -> PipelineMetrics:
        """Bind the series of ``plan`` (every step, path and status, so each starts at 0)."""
        pipeline = plan.id
        self.pipeline_info.child(pipeline, plan.version, fuse).set(1)
        steps: dict[str, StepMetrics] = {}
        for step, edges in plan.graph.outgoing.items():
            steps[step] = metrics = StepMetrics(
                self.step_runs.child(pipeline, step, "ok"),
                self.step_runs.child(pipeline, step, "failed"),
                self.step_runs.child(pipeline, step, "skipped"),
                self.step_duration.child(pipeline, step),
                self.step_retries.child(pipeline, step),
                None
                if step in plan.graph.always_from
                else [
                    (
                        self.routes.child(pipeline, step, edge.label, "false"),
                        self.routes.child(pipeline, step, edge.label, "true"),
                    )
                    for edge in edges
                ],
            )
            if metrics.routes is None:
                for edge in edges:
                    self.routes.derive((pipeline, step, edge.label, "true"), _evaluations_of(metrics))
                    self.routes.child(pipeline, step, edge.label, "false")
        runs = RunSeries(
            self.runs.child(pipeline, "success"),
            self.runs.child(pipeline, "failed"),
            self.run_duration.child(pipeline),
            self.end_to_end.child(pipeline),
        )
        self._run_series[pipeline] = runs
        for step in plan.graph.steps:  # every kind of letter a step can be blamed for, then those of no step
            self.dead_letters.child(pipeline, step, "step_failed")
            self.dead_letters.child(pipeline, step, "run_failed")
        for kind in ("run_failed", "bad_input", "internal_error"):
            self.dead_letters.child(pipeline, "", kind)
        timeouts = {node: self.join_timeouts.child(pipeline, step_label(node)) for node in plan.graph.joins}
        for node in plan.graph.joins:
            self.joins_waiting.child(pipeline, step_label(node))
        return PipelineMetrics(steps, runs, self.internal_errors.child(pipeline), timeouts)

    def runs_durable(self, runs: Iterable[FinishedRun], now_ms: int) -> None:
        """Count runs whose results just became durable, with their run duration and end-to-end latency (a
        replay's are left out: they would time the wait in the dead-letter queue)."""
        series_of = self._run_series
        for run in runs:
            record = run.record
            series = run.series or series_of.get(record["pipeline"])
            if series is None:  # a run no pipeline of this worker finished
                continue
            (series.success if record["status"] == "success" else series.failed).value += 1
            if run.replay:
                continue
            if run.consumed_ms:  # observations inlined: this runs for every run
                seconds = (now_ms - run.consumed_ms) / 1000 if now_ms > run.consumed_ms else 0.0
                histogram = series.duration
                histogram.counts[bisect_left(histogram.bounds, seconds)] += 1
                histogram.sum += seconds
            if run.started_ms:
                seconds = (now_ms - run.started_ms) / 1000 if now_ms > run.started_ms else 0.0
                histogram = series.end_to_end
                histogram.counts[bisect_left(histogram.bounds, seconds)] += 1
                histogram.sum += seconds

    def batch(self, records: int, seconds: float) -> None:
        """A fetched batch was run: its size and how long running it took."""
        self.batch_records.child().observe(records)
        self.batch_duration.child().observe(seconds)

    def consumed(self, pipeline: str, topic: str) -> CounterChild:
        return self.events_consumed.child(pipeline, topic)

    def dead_letters_produced(self, letters: Iterable[dict[str, Any]]) -> None:
        for letter in letters:
            self.dead_letters.child(str(letter["pipeline"]), letter.get("step") or "", str(letter["kind"])).value += 1

    def sink_series(self) -> SinkSeries:
        return SinkSeries(
            self.sink_rows.child(SINK, "pipeline_runs", "written"),
            self.sink_rows.child(SINK, "pipeline_runs", "refused"),
            self.sink_rows.child(SINK, "dead_letters", "written"),
            self.sink_rows.child(SINK, "dead_letters", "refused"),
            self.sink_flush.child(SINK),
            self.sink_up.child(SINK),
            self.sink_last_success.child(SINK),
        )


@dataclass
class SinkSeries:
    """The results sink's series."""

    runs_written: CounterChild
    runs_refused: CounterChild
    letters_written: CounterChild
    letters_refused: CounterChild
    flush: HistogramChild
    up: GaugeChild
    last_success: GaugeChild

    def wrote(self, seconds: float) -> None:
        self.flush.observe(seconds)
        self.up.set(1)
        self.last_success.set(time.time())


def _evaluations_of(step: StepMetrics) -> Callable[[], float]:
    return lambda: float(step.evaluated)


def step_label(node: str) -> str:
    """A node's id as a label: the end node is ``end``."""
    return "end" if node == END else node
