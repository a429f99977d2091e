"""What ``ia-modules top`` shows, from two scrapes of /metrics pages as a worker writes them: rates, counters that
were reset, quantiles of the buckets filled between two refreshes, several processes added up, series that are
missing, and which topics are a pipeline's inputs."""

from __future__ import annotations

import math
from textwrap import dedent

import pytest
from rich.console import Console

from streams.cli.top import metrics_url, view
from streams.cli.top_figures import Figures, PipelineFigures, Scrape, bucket_increase, figures, increase
from streams.metrics.reading import Page

URL = "http://127.0.0.1:6066/metrics"


def scrape(text: str, at: float, url: str = URL, wall: float = 1_000_000.0) -> Scrape:
    return Scrape(url, at, wall + at, page=Page.parse(dedent(text)))


def runs(success: float, failed: float, process: str = "") -> str:
    extra = f',process="{process}"' if process else ""
    return dedent(f"""\
        # TYPE ia_runs_total counter
        ia_runs_total{{pipeline="orders",status="success"{extra}}} {success}
        ia_runs_total{{pipeline="orders",status="failed"{extra}}} {failed}
        """)


def durations(*counts: float, histogram: str = "ia_run_duration_seconds") -> str:
    """A histogram of the pipeline ``orders`` with bounds 10 ms, 100 ms, 1 s: cumulative ``counts``."""
    lines = [f"# TYPE {histogram} histogram"]
    for bound, count in zip(("0.01", "0.1", "1.0", "+Inf"), counts, strict=True):
        lines.append(f'{histogram}_bucket{{pipeline="orders",le="{bound}"}} {count}')
    lines += [f'{histogram}_count{{pipeline="orders"}} {counts[-1]}', f'{histogram}_sum{{pipeline="orders"}} 1.0']
    return "\n".join(lines) + "\n"


def orders(shown: Figures) -> PipelineFigures:
    (row,) = [row for row in shown.pipelines if row.pipeline == "orders"]
    return row


def test_runs_per_second_and_totals_are_the_counters_growth_over_the_time_between_the_scrapes() -> None:
    shown = figures((scrape(runs(100, 4), at=10.0),), (scrape(runs(300, 10), at=12.0),))
    row = orders(shown)
    assert row.runs == pytest.approx((310 - 104) / 2)
    assert row.failed == pytest.approx(3.0)
    assert (row.runs_total, row.failed_total) == (310, 10)
    assert shown.seconds == pytest.approx(2.0)


def test_a_single_scrape_has_totals_but_no_rates() -> None:
    row = orders(figures(None, (scrape(runs(5, 1), at=1.0),)))
    assert (row.runs, row.failed, row.events_in) == (None, None, None)
    assert (row.runs_total, row.failed_total) == (6, 1)


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    """Process 1 started again (its 500 runs are gone, 20 new), process 2 ran 100 more: 120 runs in 1 s."""
    before = scrape(runs(500, 0, process="1") + runs(100, 0, process="2").split("\n", 1)[1], at=0.0)
    after = scrape(runs(20, 0, process="1") + runs(200, 0, process="2").split("\n", 1)[1], at=1.0)
    assert orders(figures((before,), (after,))).runs == pytest.approx(120)
    assert increase({frozenset({("a", "1")}): 7.0}, {frozenset({("a", "1")}): 3.0}) == 3.0
    assert increase({}, {frozenset({("a", "1")}): 3.0}) == 3.0  # a series born between two scrapes


def test_series_of_several_processes_add_up_per_pipeline() -> None:
    letters = dedent("""\
        # TYPE ia_dead_letters_total counter
        ia_dead_letters_total{pipeline="orders",step="load",kind="run_failed",process="1"} 2
        ia_dead_letters_total{pipeline="orders",step="load",kind="run_failed",process="2"} 3
        ia_dead_letters_total{pipeline="orders",step="",kind="bad_input",process="2"} 1
        ia_dead_letters_total{pipeline="other",step="",kind="bad_input",process="2"} 9
        """)
    page = runs(10, 2, process="1") + runs(30, 3, process="2").split("\n", 1)[1] + letters
    row = orders(figures(None, (scrape(page, at=0.0),)))
    assert (row.runs_total, row.failed_total) == (45, 5)
    assert row.dead_letters == {"bad_input": 1, "run_failed": 5}
    assert row.dead_letters_total == 6


def test_several_urls_each_count_over_their_own_interval() -> None:
    other = "http://10.0.0.2:6066/metrics"
    prev = (scrape(runs(0, 0), at=0.0), scrape(runs(0, 0), at=0.5, url=other))
    cur = (scrape(runs(100, 0), at=1.0), scrape(runs(100, 0), at=2.5, url=other))
    assert orders(figures(prev, cur)).runs == pytest.approx(100 / 1.0 + 100 / 2.0)


def test_quantiles_are_of_the_runs_finished_between_the_two_scrapes() -> None:
    """10 old runs under 10 ms; 100 new ones between 10 and 100 ms: the median is halfway up that bucket."""
    before, after = runs(10, 0) + durations(10, 10, 10, 10), runs(110, 0) + durations(10, 110, 110, 110)
    shown = figures((scrape(before, at=0.0),), (scrape(after, at=1.0),))
    quantiles = orders(shown).run_duration
    assert not quantiles.since_start
    assert quantiles.p50 == pytest.approx(0.01 + 0.09 * 0.5)
    assert quantiles.p99 == pytest.approx(0.01 + 0.09 * 0.99)


def test_without_runs_between_the_scrapes_quantiles_are_of_everything_since_start_and_say_so() -> None:
    page = runs(100, 0) + durations(50, 100, 100, 100)
    quantiles = orders(figures((scrape(page, at=0.0),), (scrape(page, at=1.0),))).run_duration
    assert quantiles.since_start
    assert quantiles.p50 == pytest.approx(0.01)
    assert orders(figures(None, (scrape(page, at=0.0),))).run_duration.since_start


def test_a_histogram_that_went_down_was_reset_and_counts_whole() -> None:
    before = scrape(runs(500, 0) + durations(0, 0, 500, 500), at=0.0)
    after = scrape(runs(4, 0) + durations(4, 4, 4, 4), at=1.0)  # the worker started again
    assert bucket_increase(before, after, "ia_run_duration_seconds", lambda labels: True) == {
        0.01: 4, 0.1: 4, 1.0: 4, math.inf: 4
    }  # fmt: skip
    assert orders(figures((before,), (after,))).run_duration.p99 == pytest.approx(0.01 * 0.99)


def test_end_to_end_latency_has_its_own_quantiles() -> None:
    page = runs(1, 0) + durations(0, 0, 1, 1, histogram="ia_end_to_end_latency_seconds")
    row = orders(figures(None, (scrape(page, at=0.0),)))
    assert row.end_to_end.p50 == pytest.approx(0.55)
    assert row.run_duration.p50 is None  # no series: no figure, not an error


CONSUMED = """\
# TYPE ia_step_runs_total counter
ia_step_runs_total{pipeline="orders",step="load",status="ok"} 0
ia_step_runs_total{pipeline="orders",step="score",status="ok"} 0
# TYPE ia_events_consumed_total counter
ia_events_consumed_total{pipeline="orders",topic="shop.orders.input"} %d
ia_events_consumed_total{pipeline="orders",topic="legacy.orders.incoming"} %d
ia_events_consumed_total{pipeline="orders",topic="shop.orders.score"} %d
# TYPE ia_consumer_lag gauge
ia_consumer_lag{topic="shop.orders.input",partition="0"} 7
ia_consumer_lag{topic="shop.orders.input",partition="1"} 3
ia_consumer_lag{topic="shop.orders.score",partition="0"} 2
ia_consumer_lag{topic="shop.orders.load",partition="0"} 1
ia_consumer_lag{topic="shop.gone.input",partition="0"} 40
"""


def test_events_in_count_the_input_topics_and_not_the_stage_topics_of_the_pipeline() -> None:
    """``stream.input_topics`` may name any topic; a stage topic is ``<prefix>.<pipeline>.<step>``."""
    shown = figures((scrape(CONSUMED % (0, 0, 0), at=0.0),), (scrape(CONSUMED % (150, 50, 999), at=2.0),))
    row = orders(shown)
    assert row.input_topics == {"shop.orders.input", "legacy.orders.incoming"}
    assert row.events_in == pytest.approx(100.0)


def test_lag_adds_up_the_pipelines_topics_and_the_rest_is_shown_apart() -> None:
    shown = figures(None, (scrape(CONSUMED % (1, 1, 1), at=0.0),))
    assert orders(shown).lag == 7 + 3 + 2 + 1  # shop.orders.load: a stage topic not read from yet
    assert shown.other_lag == 40


def test_missing_series_give_no_figure_rather_than_zero() -> None:
    shown = figures((scrape(runs(0, 0), at=0.0),), (scrape(runs(0, 0), at=1.0),))
    row = orders(shown)
    assert row.events_in == 0.0  # nothing consumed yet: the counter's series does not exist, and no event came
    assert row.lag is None and row.dead_letters == {}
    assert shown.sinks == []
    assert [(p.partitions, p.rebalances, p.cpu_percent, p.rss_bytes) for p in shown.processes] == [(None,) * 4]


def test_a_url_that_does_not_answer_is_listed_and_the_others_are_still_shown() -> None:
    other = "http://10.0.0.2:6066/metrics"
    prev = (scrape(runs(0, 0), at=0.0), Scrape(other, 0.0, 0.0, error="unreachable: connection refused"))
    cur = (scrape(runs(50, 0), at=1.0), Scrape(other, 1.0, 1.0, error="unreachable: connection refused"))
    shown = figures(prev, cur)
    assert shown.errors == [(other, "unreachable: connection refused")]
    assert (shown.answered, orders(shown).runs) == (1, 50.0)
    came_back = figures(prev, (cur[0], scrape(runs(1000, 0), at=1.0, url=other)))
    assert orders(came_back).runs == 50.0  # no earlier page from it: no rate from it yet
    assert orders(came_back).runs_total == 1050


WORKERS = """\
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total{process="1"} %s
process_cpu_seconds_total{process="2"} %s
process_cpu_seconds_total{process="supervisor"} 1.0
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes{process="1"} 104857600
process_resident_memory_bytes{process="2"} 52428800
process_resident_memory_bytes{process="supervisor"} 31457280
# TYPE ia_assigned_partitions gauge
ia_assigned_partitions{process="1"} 6
ia_assigned_partitions{process="2"} 6
# TYPE ia_rebalances_total counter
ia_rebalances_total{process="1"} 2
ia_rebalances_total{process="2"} 3
# TYPE ia_sink_up gauge
ia_sink_up{sink="postgres",process="1"} 1
ia_sink_up{sink="postgres",process="2"} 0
# TYPE ia_sink_last_success_timestamp_seconds gauge
ia_sink_last_success_timestamp_seconds{sink="postgres",process="1"} %s
ia_sink_last_success_timestamp_seconds{sink="postgres",process="2"} 0
# TYPE ia_sink_rows_total counter
ia_sink_rows_total{sink="postgres",table="pipeline_runs",status="written",process="1"} %s
ia_sink_rows_total{sink="postgres",table="dead_letters",status="written",process="1"} %s
ia_sink_rows_total{sink="postgres",table="pipeline_runs",status="refused",process="2"} 4
"""


def test_each_process_has_its_cpu_memory_and_partitions_and_the_sink_its_state() -> None:
    prev = scrape(WORKERS % (10.0, 20.0, 1_000_001.0, 100, 0), at=1.0, wall=1_000_000.0)
    cur = scrape(WORKERS % (10.5, 20.25, 1_000_001.0, 300, 10), at=3.0, wall=1_000_000.0)  # wall 1_000_003
    shown = figures((prev,), (cur,))
    rows = {p.process: (p.partitions, p.rebalances, p.cpu_percent, p.rss_bytes) for p in shown.processes}
    assert rows == {
        "1": (6, 2, pytest.approx(25.0), 100 * 2**20),
        "2": (6, 3, pytest.approx(12.5), 50 * 2**20),
        "supervisor": (None, None, 0.0, 30 * 2**20),
    }
    (sink,) = shown.sinks
    assert (sink.sink, sink.up, sink.series, sink.rows_refused_total) == ("postgres", 1, 2, 4)
    assert sink.rows_written == pytest.approx(105.0)
    assert sink.last_success_age_s == pytest.approx(2.0)


def test_the_table_shows_the_figures() -> None:
    page = runs(300, 10) + durations(0, 300, 310, 310)
    shown = figures((scrape(runs(100, 4) + durations(0, 100, 104, 104), at=10.0),), (scrape(page, at=12.0),))
    console = Console(record=True, width=200, color_system=None)
    console.print(view(shown, urls=1))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "orders" in line).split()
    assert row[:6] == ["│", "orders", "│", "0.0", "│", "103.0"]  # no input topic consumed; (310-104)/2 runs/s
    assert "1/1 worker URL(s) answering" in text and "rates over the last 2.00 s" in text


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:6066", "http://127.0.0.1:6066/metrics"),
        ("http://host:7000", "http://host:7000/metrics"),
        ("https://host/ia/metrics", "https://host/ia/metrics"),
    ],
)
def test_a_worker_address_means_its_metrics_page(given: str, url: str) -> None:
    assert metrics_url(given) == url
