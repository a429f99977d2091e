"""The Grafana dashboard (deploy/grafana): the committed JSON is what the generator writes, and it keeps our own
rules: one datasource variable used everywhere, `$__rate_interval` for every range, a unit and a description on
every panel, only metrics docs/metrics.md lists (or prometheus-client's process metrics), and every query filtered
on job and instance (and pipeline where the metric has it). Grafana's own type check is
tests/e2e/test_dashboard_schema.py; running every query against a real Prometheus is an integration test's job.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector

from tests.grafana_dashboard import (
    DASHBOARD_FILE,
    GENERATOR_FILE,
    ROOT,
    load_dashboard,
    panel_queries,
    panels,
    regex_value,
    substitute,
)

METRICS_DOC = ROOT / "docs" / "metrics.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|deriv|delta|idelta|[a-z]+_over_time)\s*\(")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
METRIC_NAME = re.compile(r"\b(?:ia|process)_[a-z_]+\b|\bup\b")
WORKER_FILTERS = ('job=~"$job"', 'instance=~"$instance"')
PIPELINE_FILTER = 'pipeline=~"$pipeline"'
# Labels every scraped series may carry besides its own: Prometheus's target labels and the supervisor's `process`.
TARGET_LABELS = {"job", "instance", "process"}


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/metrics.md's table: {name: (type, labels)}."""
    found: dict[str, tuple[str, set[str]]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `ia_"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            name, kind, labels = cells[0].strip("`"), cells[1], cells[2]
            found[name] = (kind, {label.strip() for label in labels.split(",") if label.strip()})
    assert len(found) > 20, "docs/metrics.md's table was not found"
    return found


def process_metrics() -> set[str]:
    """The sample names prometheus-client's process collector exposes (what every worker process serves)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return {sample.name for family in registry.collect() for sample in family.samples}


def metric_labels(name: str, documented: dict[str, tuple[str, set[str]]]) -> set[str]:
    """The labels a metric (or one of a histogram's `_bucket`, `_sum`, `_count` series) has; KeyError if unknown."""
    if name in documented:
        kind, labels = documented[name]
        return labels | ({"le"} if kind == "histogram" else set())
    base, _, suffix = name.rpartition("_")
    if suffix in {"bucket", "sum", "count"} and documented.get(base, ("",))[0] == "histogram":
        return documented[base][1] | ({"le"} if suffix == "bucket" else set())
    raise KeyError(name)


def call_argument(expr: str, open_paren: int) -> str:
    """The text between the parenthesis at ``open_paren`` and its match."""
    depth = 0
    for index in range(open_paren, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[index], 0)
        if depth == 0:
            return expr[open_paren + 1 : index]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = panel_queries(dashboard)
    assert len(found) > 30
    return found


def content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(dashboard) if panel["type"] != "row"]


# ---------------------------------------------------------------------------------------------------------------
# The generator


def test_the_committed_dashboard_is_what_the_generator_writes(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.json"
    result = subprocess.run(
        [sys.executable, str(GENERATOR_FILE), str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == DASHBOARD_FILE.read_text(encoding="utf-8"), (
        "deploy/grafana/dashboards/ia-modules-pipelines.json is stale: run python deploy/grafana/build_dashboard.py"
    )


# ---------------------------------------------------------------------------------------------------------------
# Identity, variables, data source


def test_panel_ids_are_unique_and_the_uid_is_unique_among_the_dashboards(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert dashboard["uid"] == "ia-modules-pipelines"
    assert dashboard["title"] == "IA Modules: pipelines"
    uids = [load_dashboard(path)["uid"] for path in sorted(DASHBOARD_FILE.parent.glob("*.json"))]
    assert len(uids) == len(set(uids)), uids


def test_the_variables_are_datasource_job_instance_and_pipeline(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "pipeline"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["query"] == "label_values(ia_build_info, job)"
    assert variables["instance"]["query"] == 'label_values(ia_build_info{job=~"$job"}, instance)'
    assert (
        variables["pipeline"]["query"] == 'label_values(ia_pipeline_info{job=~"$job", instance=~"$instance"}, pipeline)'
    )
    for name in ("job", "instance", "pipeline"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE, name
        assert variable["multi"] and variable["includeAll"], name
        assert variable["allValue"] == ".+", f"{name}: All must match any value, also one that appeared later"


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in content_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_every_panel_has_a_unit_and_a_description(dashboard: dict[str, Any]) -> None:
    for panel in content_panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel.get("description", "").strip(), panel["title"]
    assert all(panel["title"].strip() for panel in panels(dashboard))


def test_rows_hold_panels_only_when_collapsed(dashboard: dict[str, Any]) -> None:
    """Grafana shows a row's own `panels` only once the row is expanded; an open row's panels follow it."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row" and not panel["collapsed"]:
            assert panel["panels"] == [], panel["title"]
        if panel["type"] == "row" and panel["collapsed"]:
            assert panel["panels"], panel["title"]


# ---------------------------------------------------------------------------------------------------------------
# The queries


def test_every_range_is_the_rate_interval(queries: list[tuple[str, str]]) -> None:
    for title, expr in queries:
        assert set(re.findall(r"\[([^\]]*)\]", expr)) <= {"$__rate_interval"}, f"{title}: {expr}"
        for call in RANGE_FUNCTIONS.finditer(expr):
            argument = call_argument(expr, call.end() - 1)
            assert argument.rstrip().endswith("[$__rate_interval]"), f"{title}: {call[1]}({argument})"


def test_every_metric_is_documented_or_a_process_metric(queries: list[tuple[str, str]]) -> None:
    documented = documented_metrics()
    from_process = process_metrics()
    assert "process_cpu_seconds_total" in from_process
    used = set()
    for title, expr in queries:
        for name in METRIC_NAME.findall(expr):
            used.add(name)
            if name.startswith("ia_"):
                try:
                    metric_labels(name, documented)
                except KeyError:
                    pytest.fail(f"{title}: {name} is not in docs/metrics.md's table")
            elif name.startswith("process_"):
                assert name in from_process, f"{title}: {name} is no metric of prometheus-client's"
    # The dashboard shows every documented metric somewhere (the variables use the two info metrics).
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert set(documented) - {"ia_build_info", "ia_pipeline_info"} <= shown, set(documented) - shown


def test_every_selector_filters_on_job_and_instance_and_pipeline_where_it_has_one(
    queries: list[tuple[str, str]],
) -> None:
    documented = documented_metrics()
    for title, expr in queries:
        selectors = SELECTOR.findall(expr)
        assert len(selectors) == len(METRIC_NAME.findall(expr)), f"{title}: a metric without a selector: {expr}"
        for name, matchers in selectors:
            for required in WORKER_FILTERS:
                assert required in matchers, f"{title}: {name} lacks {required}"
            if name.startswith("ia_") and "pipeline" in metric_labels(name, documented):
                assert PIPELINE_FILTER in matchers, f"{title}: {name} lacks {PIPELINE_FILTER}"


def test_grouping_and_legend_labels_exist_on_the_metrics_queried(dashboard: dict[str, Any]) -> None:
    """A `by (...)` or `{{label}}` naming a label that no metric of the query has would show one unlabelled series."""
    documented = documented_metrics()
    for panel in content_panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            labels = set(TARGET_LABELS)
            for name in METRIC_NAME.findall(expr):
                if name.startswith("ia_"):
                    labels |= metric_labels(name, documented)
            named = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for label in group.split(",")}
            named |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert named <= labels, f"{panel['title']}: {named - labels} in {expr}"


def test_sums_over_processes_never_mix_in_the_le_of_another_quantile(queries: list[tuple[str, str]]) -> None:
    for title, expr in queries:
        for call in re.finditer(r"histogram_quantile\(", expr):
            argument = call_argument(expr, call.end() - 1)
            assert re.search(r"sum by \(le\b[^)]*\) \(rate\(ia_\w+_bucket\{", argument), f"{title}: {argument}"


# ---------------------------------------------------------------------------------------------------------------
# The helper another test uses to run the queries


def test_substitute_replaces_every_variable_of_every_query(queries: list[tuple[str, str]]) -> None:
    for _, expr in queries:
        ready = substitute(expr, "custom_processing")
        assert "$" not in ready, ready
        assert '=~"$' not in ready
    sample = 'rate(ia_runs_total{job=~"$job", instance=~"${instance}", pipeline=~"$pipeline"}[$__rate_interval])'
    assert substitute(sample, "text_quality") == (
        'rate(ia_runs_total{job=~".+", instance=~".+", pipeline=~"text_quality"}[1m])'
    )
    assert substitute("x[$__range] y[${__interval}]", "p") == "x[5m] y[1m]"
    with pytest.raises(ValueError, match=r"\$tenant"):
        substitute('x{tenant=~"$tenant"}', "p")


def test_a_pipeline_id_is_escaped_as_grafana_escapes_a_multi_value_variable() -> None:
    assert regex_value("custom_processing") == "custom_processing"
    assert regex_value("a.b") == "a\\\\.b"  # the query text a\\.b: the regex a\.b
    assert regex_value("a\\b") == "a\\\\\\\\b"
