"""The shipped dashboard and alerts on real data: a real worker runs every shipped pipeline's sample events into
PostgreSQL, a real Prometheus scrapes it every second and evaluates deploy/prometheus/alerts.yml, and every panel
query and alert expression is asked of that Prometheus, over its HTTP API, as Grafana and the rule engine ask it.
The counters are checked against what the in-process runner makes of the same events.

Prometheus is the Debian package ``prometheus``, installed by ``make system-packages``; without it these tests
fail saying so (tests/prometheus_server.py), they are never skipped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.loader import load_plan
from streams.metrics.reading import Page
from tests.grafana_dashboard import load_dashboard, panel_queries, substitute
from tests.integration.streaming_support import ROOT, Namespace, WorkerProcess, pipelines_dir_with, publish
from tests.postgres_server import PostgresForTests, fresh_database, run_in_thread
from tests.prometheus_rules import alert_expressions
from tests.prometheus_server import PrometheusServer, prometheus_binary, prometheus_server

pytestmark = pytest.mark.integration

SHIPPED = sorted(path.stem for path in (ROOT / "pipelines").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB = "ia-modules"
STATUSES = ("success", "failed")
STEP_STATUSES = ("ok", "failed", "skipped")


@dataclass
class Expected:
    """What the in-process runner made of the sample events."""

    events: dict[str, int]
    runs: dict[tuple[str, str], int]
    """(pipeline, status) to runs; both statuses of every pipeline, 0 included."""
    routes: dict[tuple[str, str, str], int]
    """(pipeline, from, to) to paths taken after a step ran; every path of every pipeline, 0 included."""
    steps: dict[tuple[str, str, str], int]
    """(pipeline, step, status) to the trace entries of that step with that status; 0 included."""
    retries: dict[tuple[str, str], int]
    """(pipeline, step) to attempts after the first."""


@dataclass
class Scraped:
    prometheus: PrometheusServer
    expected: Expected
    worker_page: str
    """The worker's /metrics once every run was counted."""


def sample_events(pipeline: str) -> list[dict[str, Any]]:
    lines = (ROOT / "pipelines" / f"{pipeline}.events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def run_in_process() -> Expected:
    """Every shipped pipeline's sample events through ``Pipeline.run`` (what ``ia-modules run --events`` does):
    runs by status, and the routes taken by the steps that ran (ok, or failed with ``on_error: continue``)."""
    events: dict[str, int] = {}
    runs: Counter[tuple[str, str]] = Counter()
    routes: Counter[tuple[str, str, str]] = Counter()
    steps: Counter[tuple[str, str, str]] = Counter()
    retries: Counter[tuple[str, str]] = Counter()
    for pipeline_id in SHIPPED:
        pipeline = Pipeline(load_plan(ROOT / "pipelines" / f"{pipeline_id}.json"))
        for edge in pipeline.plan.graph.edges:  # the flow's paths and the implicit ones of last steps to the end
            routes[(pipeline_id, edge.source, edge.label)] += 0
        for status in STATUSES:
            runs[(pipeline_id, status)] += 0
        for step in pipeline.plan.graph.steps:
            retries[(pipeline_id, step)] += 0
            for status in STEP_STATUSES:
                steps[(pipeline_id, step, status)] += 0
        samples = sample_events(pipeline_id)
        events[pipeline_id] = len(samples)
        for event in samples:
            record = (await pipeline.run(event)).to_record()
            runs[(pipeline_id, record["status"])] += 1
            for entry in record["trace"]:
                steps[(pipeline_id, entry["step"], entry["status"])] += 1
                retries[(pipeline_id, entry["step"])] += max(0, entry["attempts"] - 1)
                if entry["status"] == "ok" or entry.get("on_error") == "continue":
                    for route in entry["routes"]:
                        routes[(pipeline_id, entry["step"], route["to"])] += route["taken"]
    return Expected(events, dict(runs), dict(routes), dict(steps), dict(retries))


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, logs: Callable[[], str]) -> None:
    """``check()`` until it returns something true; after ``timeout_s`` fails saying ``what``, with the logs."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout_s}s (last: {last!r})\n{logs()}")


def by_labels(prometheus: PrometheusServer, expr: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """The vector ``expr`` as label values to value."""
    return {
        tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
        for sample in prometheus.vector(expr)
    }


def runs_by_pipeline(prometheus: PrometheusServer) -> dict[tuple[str, ...], float]:
    return by_labels(prometheus, f'sum by (pipeline) (ia_runs_total{{job="{JOB}"}})', ("pipeline",))


def rules_evaluated(prometheus: PrometheusServer) -> bool:
    rules = prometheus.rules()
    return bool(rules) and all(rule["health"] != "unknown" for rule in rules)


@dataclass
class Worker:
    process: WorkerProcess
    namespace: Namespace
    folder: Path
    """Its IA_PIPELINES_DIR: every shipped pipeline and its sample events."""

    def logs(self) -> str:
        return self.process.log.read_text()[-3000:]


@contextmanager
def worker_of_every_pipeline(kafka_broker: str, database_url: str, tmp: Path) -> Iterator[Worker]:
    """``ia-modules worker`` started on every shipped pipeline, its results sink on ``database_url``; stopped at
    the end, and its exit code checked."""
    namespace, folder = Namespace.fresh(kafka_broker, database_url), pipelines_dir_with(tmp, *SHIPPED)
    process = WorkerProcess(namespace, folder, tmp / "worker.log")
    try:
        yield Worker(process, namespace, folder)
    finally:
        exit_code = process.stop()
    assert exit_code == 0, f"the worker exited with {exit_code}:\n{process.log.read_text()[-3000:]}"


def publish_samples(worker: Worker, pool: ThreadPoolExecutor) -> None:
    """Every shipped pipeline's sample events, with ``ia-modules publish`` (keyed by ``stream.key``), at once."""

    def publish_one(pipeline: str) -> None:
        done = publish(worker.namespace, pipeline, worker.folder / f"{pipeline}.events.jsonl", worker.folder)
        assert done.returncode == 0, f"publish {pipeline}: exit {done.returncode}: {done.stderr}"

    list(pool.map(publish_one, SHIPPED))


@pytest.fixture(scope="module")
def scraped(
    kafka_broker: str, postgres_server: PostgresForTests, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scraped]:
    """A worker running every shipped pipeline (results into PostgreSQL), scraped every second by Prometheus from
    before the first event until every run is counted; Prometheus, then the worker, stopped after the module."""
    prometheus_binary()
    assert ALERTS.is_file(), f"{ALERTS} is missing: the alerts Prometheus is to evaluate"
    tmp = tmp_path_factory.mktemp("prometheus-scrape")
    with (
        ThreadPoolExecutor(max_workers=len(SHIPPED)) as pool,
        fresh_database(postgres_server) as database_url,
        worker_of_every_pipeline(kafka_broker, database_url, tmp) as worker,
    ):
        expected_soon = pool.submit(run_in_thread, run_in_process)
        target = f"127.0.0.1:{worker.process.port}"
        # started with the worker: Prometheus takes a few seconds to start scraping a new target
        with prometheus_server(tmp / "prometheus", job=JOB, target=target, rule_files=[ALERTS]) as prometheus:

            def logs() -> str:
                return f"prometheus:\n{prometheus.log_tail()}\nworker:\n{worker.logs()}"

            run_in_thread(worker.process.wait_consuming)
            # a scrape of the consuming worker before any event: every series there at 0, so the runs show in rates
            consuming = f'ia_assigned_partitions{{job="{JOB}"}} > 0 and on () ia_sink_up{{job="{JOB}"}} == 1'
            wait_for("no scrape of the consuming worker", lambda: prometheus.vector(consuming), 30, logs)
            publish_samples(worker, pool)
            expected = expected_soon.result()
            final = {(pipeline,): float(count) for pipeline, count in expected.events.items()}
            wait_for("ia_runs_total short of the events", lambda: runs_by_pipeline(prometheus) == final, 45, logs)
            wait_for("rules not all evaluated", lambda: rules_evaluated(prometheus), 15, logs)
            page = httpx.get(f"http://{target}/metrics", timeout=10, trust_env=False)
            assert page.status_code == 200, page.text
            yield Scraped(prometheus, expected, page.text)


def test_prometheus_scrapes_the_worker(scraped: Scraped) -> None:
    up = by_labels(scraped.prometheus, f'up{{job="{JOB}"}}', ("instance",))
    assert list(up.values()) == [1.0], up
    scrapes = scraped.prometheus.vector(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 2')
    assert scrapes, "fewer than two scrapes"


def test_every_dashboard_panel_has_data_for_every_shipped_pipeline(scraped: Scraped) -> None:
    queries = panel_queries(load_dashboard())
    assert queries, "the dashboard has no panel query"
    problems: list[str] = []
    asked: set[str] = set()
    for pipeline in SHIPPED:
        for title, expr in queries:
            query = substitute(expr, pipeline)
            assert "$" not in query, f"{title}: a variable is left in {query}"
            if query in asked:  # a panel not filtered by pipeline: once is enough
                continue
            asked.add(query)
            body = scraped.prometheus.query(query)
            if body.get("status") != "success":
                problems.append(f"{title!r} ({pipeline}): {body.get('errorType')}: {body.get('error')}: {query}")
            elif not body["data"]["result"]:
                problems.append(f"{title!r} ({pipeline}): no data: {query}")
    assert not problems, f"{len(problems)} of {len(asked)} panel queries fail:\n" + "\n".join(problems)


def test_every_alert_parses_and_every_rule_is_loaded_and_healthy(scraped: Scraped) -> None:
    alerts = alert_expressions()
    assert alerts, f"{ALERTS} has no alert"
    for name, expr in alerts:
        body = scraped.prometheus.query(expr)
        assert body.get("status") == "success", f"alert {name}: {body.get('errorType')}: {body.get('error')}: {expr}"
    rules = scraped.prometheus.rules()
    assert sorted(rule["name"] for rule in rules if rule["type"] == "alerting") == sorted(name for name, _ in alerts)
    unhealthy = [
        f"{rule['name']}: {rule['health']}: {rule.get('lastError')}" for rule in rules if rule["health"] != "ok"
    ]
    assert unhealthy == []


def test_runs_by_status_equal_the_in_process_runs_of_the_same_events(scraped: Scraped) -> None:
    query = f'sum by (pipeline, status) (ia_runs_total{{job="{JOB}"}})'
    counted = by_labels(scraped.prometheus, query, ("pipeline", "status"))
    assert counted == {key: float(runs) for key, runs in scraped.expected.runs.items()}


def test_every_event_is_consumed_once_and_its_run_timed(scraped: Scraped) -> None:
    events = {(pipeline,): float(count) for pipeline, count in scraped.expected.events.items()}
    for query in (
        f'sum by (pipeline) (ia_events_consumed_total{{job="{JOB}", topic=~".+[.]input"}})',
        f'sum by (pipeline) (ia_run_duration_seconds_count{{job="{JOB}"}})',
        f'sum by (pipeline) (ia_end_to_end_latency_seconds_count{{job="{JOB}"}})',
    ):
        assert by_labels(scraped.prometheus, query, ("pipeline",)) == events, query


def test_routes_taken_equal_the_routes_of_the_in_process_traces(scraped: Scraped) -> None:
    query = f'sum by (pipeline, from, to) (ia_route_total{{job="{JOB}", taken="true"}})'
    counted = by_labels(scraped.prometheus, query, ("pipeline", "from", "to"))
    assert counted == {edge: float(taken) for edge, taken in scraped.expected.routes.items()}


def test_steps_by_status_and_retries_equal_the_in_process_traces(scraped: Scraped) -> None:
    query = f'sum by (pipeline, step, status) (ia_step_runs_total{{job="{JOB}"}})'
    counted = by_labels(scraped.prometheus, query, ("pipeline", "step", "status"))
    assert counted == {key: float(entries) for key, entries in scraped.expected.steps.items()}
    query = f'sum by (pipeline, step) (ia_step_retries_total{{job="{JOB}"}})'
    retried = by_labels(scraped.prometheus, query, ("pipeline", "step"))
    assert retried == {key: float(attempts) for key, attempts in scraped.expected.retries.items()}
    assert sum(retried.values()) > 0, "the samples retry lookup_calibration"


def test_every_run_is_one_row_and_every_failed_run_one_dead_letter(scraped: Scraped) -> None:
    failed = {(pipeline,): float(runs) for (pipeline, status), runs in scraped.expected.runs.items()
              if status == "failed"}  # fmt: skip
    query = f'sum by (pipeline) (ia_dead_letters_total{{job="{JOB}"}})'
    assert by_labels(scraped.prometheus, query, ("pipeline",)) == failed
    query = f'sum by (table, status) (ia_sink_rows_total{{job="{JOB}", sink="postgres"}})'
    rows = by_labels(scraped.prometheus, query, ("table", "status"))
    assert rows == {
        ("pipeline_runs", "written"): sum(scraped.expected.events.values()),
        ("pipeline_runs", "refused"): 0,
        ("dead_letters", "written"): sum(failed.values()),
        ("dead_letters", "refused"): 0,
    }


def first_scraped(prometheus: PrometheusServer, selector: str) -> dict[str, float]:
    """Each series of ``selector`` (as ``name{labels}``) to the first value Prometheus scraped of it."""
    body = prometheus.query(f"{selector}[10m]")
    assert body.get("status") == "success", body
    first = {}
    for series in body["data"]["result"]:
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        first[f"{name}{labels}"] = float(series["values"][0][1])
    return first


def test_every_counter_was_scraped_at_zero_before_it_counted_anything(scraped: Scraped) -> None:
    """Prometheus scraped the worker before the first event: a series not there at 0 then (one that appeared with
    its first count) hides that count from rate() and increase(), so from the panels and the alerts. The counters
    (dead letters included) and histogram counts, but the rebalances (the first assignment comes before the first
    scrape)."""
    counting = '__name__=~"ia_.+_total|ia_.+_count", __name__!="ia_rebalances_total"'
    first = first_scraped(scraped.prometheus, f'{{job="{JOB}", {counting}}}')
    assert len(first) > 100, sorted(first)
    assert {series: value for series, value in first.items() if value} == {}


def documented_metrics() -> list[str]:
    """The names docs/metrics.md's table lists, histograms by their ``_bucket`` series."""
    names = []
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if line.startswith("| `ia_"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            name = cells[0].strip("`")
            names.append(f"{name}_bucket" if cells[1] == "histogram" else name)
    return names


def test_every_documented_metric_reaches_prometheus(scraped: Scraped) -> None:
    documented = documented_metrics()
    assert len(documented) >= 20, documented
    found = by_labels(scraped.prometheus, 'count by (__name__) ({__name__=~"ia_.*"})', ("__name__",))
    assert sorted(set(documented) - {name for (name,) in found}) == []


def test_the_worker_page_has_its_process_metrics(scraped: Scraped) -> None:
    page = Page.parse(scraped.worker_page)
    assert page.total("process_cpu_seconds_total") > 0
    assert page.total("process_resident_memory_bytes") > 0
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert scraped.prometheus.vector(f'{name}{{job="{JOB}"}} > 0'), f"{name} is not in Prometheus"
