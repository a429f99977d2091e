"""Reading a scraped ``/metrics`` page back: sums of series by label, and quantiles of histograms, as the
demo's summary and ``ia-modules top`` show them (the same arithmetic as PromQL's ``sum by`` and
``histogram_quantile``, over one page instead of a time range)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class Page:
    """The samples of one scrape (or several pages' samples together: several workers)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    @classmethod
    def parse(cls, *texts: str) -> Page:
        return cls(
            Sample(sample.name, sample.labels, sample.value)
            for text in texts
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        )

    def sum_by(self, name: str, by: tuple[str, ...], **match: str) -> dict[tuple[str, ...], float]:
        """``sum by (by) (name{match})``: every series of ``name`` whose labels match, added up per value of ``by``
        (so series that differ only in other labels, as ``process``, add up)."""
        sums: dict[tuple[str, ...], float] = {}
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                key = tuple(sample.labels.get(label, "") for label in by)
                sums[key] = sums.get(key, 0.0) + sample.value
        return sums

    def total(self, name: str, **match: str) -> float:
        return self.sum_by(name, (), **match).get((), 0.0)

    def buckets(self, histogram: str, **match: str) -> dict[float, float]:
        """The histogram's cumulative bucket counts by upper bound, summed over its matching series."""
        return {float(le): count for (le,), count in self.sum_by(f"{histogram}_bucket", ("le",), **match).items()}


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` over cumulative ``buckets`` (upper bound to count, ``inf`` included):
    linear within the bucket the quantile falls in; the highest finite bound if it falls in ``+Inf``; None
    without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
