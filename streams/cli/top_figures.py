"""The figures ``ia-modules top`` shows, from two scrapes of the workers' ``/metrics``: rates of counters and
quantiles of the histogram buckets filled between the two, totals and gauges from the latest. No I/O and no
clock here (the scrapes carry their times), so every figure can be checked against pages written by hand.

Series are matched by their full label set within one URL, so a ``process`` label (``worker --processes N``)
keeps each process's counters apart until they are added up, and a counter that went down (its process
started again) counts from zero, as PromQL's ``rate`` does."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

from streams.metrics.reading import Page, Sample, quantile

Labels = Mapping[str, str]
Where = Callable[[Labels], bool]
SeriesKey = frozenset[tuple[str, str]]

PROCESS = "process"
"""The label ``worker --processes N`` gives each process's series."""


def everything(labels: Labels) -> bool:
    return True


def _key(labels: Labels, without: str = "") -> SeriesKey:
    return frozenset((name, value) for name, value in labels.items() if name != without)


@dataclass(frozen=True)
class Scrape:
    """One URL's ``/metrics`` read once: its samples, or why it could not be read. ``at`` is a monotonic time
    (seconds) for rates, ``wall`` the Unix time of the same moment, to age the timestamps a page holds."""

    url: str
    at: float
    wall: float
    page: Page | None = None
    error: str | None = None

    @cached_property
    def by_name(self) -> dict[str, list[Sample]]:
        named: dict[str, list[Sample]] = {}
        for sample in self.page.samples if self.page is not None else ():
            named.setdefault(sample.name, []).append(sample)
        return named

    def samples(self, name: str, where: Where = everything) -> list[Sample]:
        return [sample for sample in self.by_name.get(name, ()) if where(sample.labels)]

    def values(self, name: str, where: Where = everything) -> dict[SeriesKey, float]:
        return {_key(sample.labels): sample.value for sample in self.samples(name, where)}


Snapshot = tuple[Scrape, ...]
"""Every URL's scrape of one refresh, in the order the URLs were given."""


def answered(snapshot: Snapshot) -> list[Scrape]:
    """The scrapes that got a page."""
    return [scrape for scrape in snapshot if scrape.page is not None]


def pairs(prev: Snapshot | None, cur: Snapshot) -> list[tuple[Scrape, Scrape]]:
    """The URLs that answered both times (and later the second time): the only ones a rate can come from."""
    before = {scrape.url: scrape for scrape in answered(prev or ())}
    return [
        (before[scrape.url], scrape)
        for scrape in answered(cur)
        if scrape.url in before and scrape.at > before[scrape.url].at
    ]


def increase(before: Mapping[SeriesKey, float], after: Mapping[SeriesKey, float]) -> float:
    """What counters grew by, series by series: a series that went down was reset (its process restarted)
    and counts from zero; a series new since ``before`` counts from zero too."""
    total = 0.0
    for key, value in after.items():
        old = before.get(key, 0.0)
        total += value - old if value >= old else value
    return total


def rate(prev: Snapshot | None, cur: Snapshot, name: str, where: Where = everything) -> float | None:
    """Per second, summed over URLs (each over its own interval); None when no URL answered both times."""
    both = pairs(prev, cur)
    if not both:
        return None
    return sum(increase(p.values(name, where), c.values(name, where)) / (c.at - p.at) for p, c in both)


def total(snapshot: Snapshot, name: str, where: Where = everything) -> float:
    """A counter's value since the workers started, summed over its matching series."""
    return sum(sample.value for scrape in answered(snapshot) for sample in scrape.samples(name, where))


def gauge(snapshot: Snapshot, name: str, where: Where = everything) -> float | None:
    """The sum of a gauge's series, or None when there is none (the worker has not set it yet)."""
    samples = [sample for scrape in answered(snapshot) for sample in scrape.samples(name, where)]
    return sum(sample.value for sample in samples) if samples else None


def label_values(snapshot: Snapshot, name: str, label: str, where: Where = everything) -> set[str]:
    """The values ``label`` takes among the series of ``name`` (``""`` where a series has no such label)."""
    return {s.labels.get(label, "") for scrape in answered(snapshot) for s in scrape.samples(name, where)}


def _buckets(scrape: Scrape, histogram: str, where: Where) -> dict[SeriesKey, dict[float, float]]:
    """Each series' cumulative bucket counts by upper bound."""
    series: dict[SeriesKey, dict[float, float]] = {}
    for sample in scrape.samples(f"{histogram}_bucket", where):
        series.setdefault(_key(sample.labels, without="le"), {})[float(sample.labels["le"])] = sample.value
    return series


def bucket_increase(before: Scrape | None, after: Scrape, histogram: str, where: Where) -> dict[float, float]:
    """The cumulative bucket counts observed between two scrapes (all of ``after``'s without ``before``),
    added over the matching series; a series any of whose buckets went down was reset and counts whole."""
    old_series = _buckets(before, histogram, where) if before is not None else {}
    added: dict[float, float] = {}
    for key, buckets in _buckets(after, histogram, where).items():
        old = old_series.get(key, {})
        reset = any(count < old.get(bound, 0.0) for bound, count in buckets.items())
        for bound, count in buckets.items():
            added[bound] = added.get(bound, 0.0) + (count if reset else count - old.get(bound, 0.0))
    return added


def _add(into: dict[float, float], buckets: Mapping[float, float]) -> None:
    for bound, count in buckets.items():
        into[bound] = into.get(bound, 0.0) + count


@dataclass(frozen=True)
class Quantiles:
    """p50 and p99 (seconds) of a histogram: of what was observed between the two scrapes, or, when nothing
    was (or there is one scrape yet), of everything since the workers started (``since_start``)."""

    p50: float | None
    p99: float | None
    since_start: bool


def quantiles(prev: Snapshot | None, cur: Snapshot, histogram: str, where: Where = everything) -> Quantiles:
    interval: dict[float, float] = {}
    for before, after in pairs(prev, cur):
        _add(interval, bucket_increase(before, after, histogram, where))
    if interval.get(math.inf, 0.0) > 0:
        return Quantiles(quantile(0.5, interval), quantile(0.99, interval), since_start=False)
    whole: dict[float, float] = {}
    for scrape in answered(cur):
        _add(whole, bucket_increase(None, scrape, histogram, where))
    return Quantiles(quantile(0.5, whole), quantile(0.99, whole), since_start=True)


def _labelled(**match: str) -> Where:
    """Series whose labels hold ``match`` (an empty value also matches a label that is absent)."""
    return lambda labels: all(labels.get(name, "") == value for name, value in match.items())


@dataclass(frozen=True)
class PipelineTopics:
    """Which topics are a pipeline's, read from the series alone (a ``top`` may run where the pipeline files
    are not). Stage topics are ``<prefix>.<pipeline>.<step>`` for a step of the pipeline (its steps are the
    ``step`` labels of ``ia_step_runs_total``; no step may be called ``input``); every other topic the pipeline
    consumed is an input topic: ``<prefix>.<pipeline>.input`` or one of ``stream.input_topics``."""

    pipeline: str
    steps: frozenset[str]
    consumed: frozenset[str]

    def is_stage(self, topic: str) -> bool:
        return any(topic.endswith(f".{self.pipeline}.{step}") for step in self.steps)

    @property
    def inputs(self) -> frozenset[str]:
        return frozenset(topic for topic in self.consumed if not self.is_stage(topic))

    def owns(self, topic: str) -> bool:
        """Whether the lag of ``topic`` is this pipeline's: a topic it consumed, or one named as its input or a
        stage of it (a partition assigned but not yet read from)."""
        return topic in self.consumed or topic.endswith(f".{self.pipeline}.input") or self.is_stage(topic)


@dataclass(frozen=True)
class PipelineFigures:
    """One row of the table. Rates are per second (None with one scrape yet); totals since the workers
    started; ``lag`` None when no worker reported one for the pipeline's topics."""

    pipeline: str
    input_topics: frozenset[str]
    events_in: float | None
    runs: float | None
    runs_total: float
    failed: float | None
    failed_total: float
    run_duration: Quantiles
    end_to_end: Quantiles
    dead_letters: dict[str, float]
    lag: float | None

    @property
    def dead_letters_total(self) -> float:
        return sum(self.dead_letters.values())


def pipeline_topics(snapshot: Snapshot, pipeline: str) -> PipelineTopics:
    of_pipeline = _labelled(pipeline=pipeline)
    return PipelineTopics(
        pipeline,
        frozenset(label_values(snapshot, "ia_step_runs_total", "step", of_pipeline)),
        frozenset(label_values(snapshot, "ia_events_consumed_total", "topic", of_pipeline)),
    )


def pipeline_figures(
    prev: Snapshot | None, cur: Snapshot, topics: PipelineTopics, lag: Mapping[str, float]
) -> PipelineFigures:
    pipeline = topics.pipeline
    of_pipeline = _labelled(pipeline=pipeline)
    failed = _labelled(pipeline=pipeline, status="failed")
    inputs = topics.inputs

    def consumed_from_inputs(labels: Labels) -> bool:
        return labels.get("pipeline") == pipeline and labels.get("topic", "") in inputs

    letters: dict[str, float] = {}
    for sample in (s for scrape in answered(cur) for s in scrape.samples("ia_dead_letters_total", of_pipeline)):
        letters[sample.labels.get("kind", "")] = letters.get(sample.labels.get("kind", ""), 0.0) + sample.value
    owned = [value for topic, value in lag.items() if topics.owns(topic)]
    return PipelineFigures(
        pipeline=pipeline,
        input_topics=inputs,
        events_in=rate(prev, cur, "ia_events_consumed_total", consumed_from_inputs),
        runs=rate(prev, cur, "ia_runs_total", of_pipeline),
        runs_total=total(cur, "ia_runs_total", of_pipeline),
        failed=rate(prev, cur, "ia_runs_total", failed),
        failed_total=total(cur, "ia_runs_total", failed),
        run_duration=quantiles(prev, cur, "ia_run_duration_seconds", of_pipeline),
        end_to_end=quantiles(prev, cur, "ia_end_to_end_latency_seconds", of_pipeline),
        dead_letters={kind: count for kind, count in sorted(letters.items()) if count},
        lag=sum(owned) if owned else None,
    )


@dataclass(frozen=True)
class SinkFigures:
    """A results sink over every process: how many of its series say up, rows written per second (runs and
    dead letters), rows refused since start, and the age of the newest successful write (None: never)."""

    sink: str
    up: int
    series: int
    rows_written: float | None
    rows_refused_total: float
    last_success_age_s: float | None


def sink_figures(prev: Snapshot | None, cur: Snapshot, sink: str) -> SinkFigures:
    of_sink = _labelled(sink=sink)
    ups = [s.value for scrape in answered(cur) for s in scrape.samples("ia_sink_up", of_sink)]
    ages = [
        scrape.wall - s.value
        for scrape in answered(cur)
        for s in scrape.samples("ia_sink_last_success_timestamp_seconds", of_sink)
        if s.value > 0  # 0: no successful write yet
    ]
    return SinkFigures(
        sink=sink,
        up=sum(1 for value in ups if value == 1),
        series=len(ups),
        rows_written=rate(prev, cur, "ia_sink_rows_total", _labelled(sink=sink, status="written")),
        rows_refused_total=total(cur, "ia_sink_rows_total", _labelled(sink=sink, status="refused")),
        last_success_age_s=max(0.0, min(ages)) if ages else None,
    )


@dataclass(frozen=True)
class ProcessFigures:
    """One worker process of one URL (``process`` is its label under ``--processes N``, ``""`` without one):
    partitions assigned, rebalances since it started, CPU (percent of one core) and resident memory."""

    url: str
    process: str
    partitions: float | None
    rebalances: float | None
    cpu_percent: float | None
    rss_bytes: float | None


def _process_order(process: str) -> tuple[int, int, str]:
    return (0, int(process), "") if process.isdigit() else (1, 0, process)


def process_figures(prev: Snapshot | None, scrape: Scrape) -> list[ProcessFigures]:
    alone: Snapshot = (scrape,)
    before = tuple(s for s in prev or () if s.url == scrape.url)
    names = ("process_resident_memory_bytes", "process_cpu_seconds_total", "ia_assigned_partitions")
    processes = set().union(*(label_values(alone, name, PROCESS) for name in names)) or {""}
    rows = []
    for process in sorted(processes, key=_process_order):
        of_process = _labelled(process=process)
        cpu = rate(before, alone, "process_cpu_seconds_total", of_process)
        if not scrape.samples("process_cpu_seconds_total", of_process):  # not measured on this platform
            cpu = None
        rows.append(
            ProcessFigures(
                url=scrape.url,
                process=process,
                partitions=gauge(alone, "ia_assigned_partitions", of_process),
                rebalances=gauge(alone, "ia_rebalances_total", of_process),
                cpu_percent=None if cpu is None else 100 * cpu,
                rss_bytes=gauge(alone, "process_resident_memory_bytes", of_process),
            )
        )
    return rows


@dataclass(frozen=True)
class Figures:
    """Everything one refresh shows. ``seconds`` is the interval the rates cover (None with one scrape yet);
    ``other_lag`` the lag of topics no pipeline shown owns; ``errors`` each URL that did not answer, and why;
    ``answered`` how many did."""

    pipelines: list[PipelineFigures]
    sinks: list[SinkFigures]
    processes: list[ProcessFigures]
    errors: list[tuple[str, str]]
    other_lag: float
    seconds: float | None
    answered: int


def figures(prev: Snapshot | None, cur: Snapshot) -> Figures:
    """The figures of a refresh whose scrapes are ``cur``, with ``prev`` the refresh before it (None at first)."""
    pipelines = sorted(
        label_values(cur, "ia_pipeline_info", "pipeline")
        | label_values(cur, "ia_runs_total", "pipeline")
        | label_values(cur, "ia_events_consumed_total", "pipeline")
    )
    lag: dict[str, float] = {}
    for sample in (s for scrape in answered(cur) for s in scrape.samples("ia_consumer_lag")):
        topic = sample.labels.get("topic", "")
        lag[topic] = lag.get(topic, 0.0) + sample.value
    topics = [pipeline_topics(cur, pipeline) for pipeline in pipelines if pipeline]
    both = pairs(prev, cur)
    return Figures(
        pipelines=[pipeline_figures(prev, cur, owned, lag) for owned in topics],
        sinks=[sink_figures(prev, cur, sink) for sink in sorted(label_values(cur, "ia_sink_up", "sink"))],
        processes=[row for scrape in answered(cur) for row in process_figures(prev, scrape)],
        errors=[(scrape.url, scrape.error or "no answer") for scrape in cur if scrape.page is None],
        other_lag=sum(value for topic, value in lag.items() if not any(t.owns(topic) for t in topics)),
        seconds=sum(c.at - p.at for p, c in both) / len(both) if both else None,
        answered=len(answered(cur)),
    )
