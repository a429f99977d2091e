"""Counters, gauges and histograms for the worker's hot path, exposed through prometheus-client.

prometheus-client's own metric objects take a lock on every increment (2 us per histogram observation here):
the worker updates its metrics from one event-loop thread only, and scrapes run on that same loop, so a child
here is a plain object whose update is an addition. A family is bound to its label values once, at load
(``child``); the hot path keeps the child. ``collect`` turns a family into prometheus-client's metric family
for exposition.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)


class CounterChild:
    """One counter series. ``value`` is added to directly on the hot path."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0  # an int while only whole counts are added (an int addition is the cheapest)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild:
    """One gauge series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


class HistogramChild:
    """One histogram series: a count per bucket (not cumulative until exposed) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


ChildT = TypeVar("ChildT", "CounterChild", "GaugeChild", "HistogramChild")


class _Family(Generic[ChildT]):
    """Named series with the same labels; a child per set of label values, made on first use."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.children: dict[tuple[str, ...], ChildT] = {}

    def child(self, *values: str) -> ChildT:
        found = self.children.get(values)
        if found is None:
            if len(values) != len(self.labels):
                raise ValueError(f"{self.name} has labels {self.labels}, given {values}")
            found = self.children[values] = self._new_child()
        return found

    def _new_child(self) -> ChildT:
        raise NotImplementedError


class Counter(_Family[CounterChild]):
    """A ``_total`` counter family. A derived series is read from other counts when the page is rendered (it
    must only grow, as they do), for a count the hot path need not keep twice."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labels)
        self.derived: dict[tuple[str, ...], Callable[[], float]] = {}

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def derive(self, values: tuple[str, ...], read: Callable[[], float]) -> None:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} has labels {self.labels}, given {values}")
        self.derived[values] = read

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name.removesuffix("_total"), self.documentation, labels=self.labels)
        for values, child in self.children.items():
            family.add_metric(values, child.value)
        for values, read in self.derived.items():
            family.add_metric(values, read())
        return family


class Gauge(_Family[GaugeChild]):
    """A gauge family; ``replace`` sets the whole family at once (for values read at scrape time)."""

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def replace(self, values: dict[tuple[str, ...], float]) -> None:
        self.children.clear()
        for labels, value in values.items():
            self.child(*labels).set(value)

    def collect(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, child in self.children.items():
            family.add_metric(values, child.value)
        return family


class Histogram(_Family[HistogramChild]):
    """A histogram family with fixed bucket bounds (upper, inclusive, ascending)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]) -> None:
        super().__init__(name, documentation, labels)
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must ascend: {bounds}")
        self.bounds = tuple(float(bound) for bound in bounds)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, child in self.children.items():
            family.add_metric(values, list(cumulative(child)), child.sum)
        return family


def cumulative(child: HistogramChild) -> Iterator[tuple[str, float]]:
    """The child's buckets as Prometheus has them: ``(le, count of values <= le)``, ending with ``+Inf``."""
    total = 0
    for bound, count in zip((*child.bounds, float("inf")), child.counts, strict=True):
        total += count
        yield ("+Inf" if bound == float("inf") else repr(bound), float(total))


Family = Counter | Gauge | Histogram
