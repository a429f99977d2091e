"""deploy/prometheus checked as Prometheus checks it: promtool validates the scrape configuration and the alert rules
and runs the rules' unit tests (alerts_test.yml); a real Prometheus loads the shipped configuration; and every alert
keeps to the conventions of docs/metrics.md (its severity, summary, description and runbook, and only documented
metrics in its expression).

What this does not see: the alerts on a real worker's series (tests/integration/test_prometheus_scrape.py runs each
expression against a Prometheus scraping one) and service discovery inside docker-compose.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.prometheus_rules import (
    CONFIG_FILE,
    ROOT,
    RULES_FILE,
    RULES_TEST_FILE,
    AlertRule,
    alert_expressions,
    alerting_rules,
    promtool,
    read_yaml,
)
from tests.prometheus_server import prometheus_running

METRICS_DOC = ROOT / "docs" / "metrics.md"
SEVERITIES = {"page", "ticket"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "atan2", "inf", "nan",
}  # fmt: skip
"""Keywords and binary operators of PromQL that look like names (functions are told by their parenthesis)."""


def run_promtool(*args: str) -> str:
    """``promtool ARGS`` from the repository's root; a failure fails the test with promtool's whole output."""
    done = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    output = f"$ promtool {' '.join(args)}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, f"promtool exited with {done.returncode}:\n{output}"
    return output


def documented_metrics() -> dict[str, str]:
    """docs/metrics.md's table: each metric's name and type."""
    metrics: dict[str, str] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `ia_"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            metrics[cells[0].strip("`")] = cells[1]
    return metrics


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left of it without its strings, label matchers, ranges,
    grouping label lists, function and aggregation calls, keywords and numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    if "__name__" in text:
        raise AssertionError(f"select metrics by their name, not by __name__: {expr}")
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def seconds(duration: str) -> float:
    """A Prometheus duration (``90s``, ``5m``, ``1h30m``; empty is 0) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, f"not a duration: {duration!r}"
    return sum(int(number) * units[unit] for number, unit in parts)


def rules_tests() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of alerts_test.yml, each with its test group's name as ``group``."""
    document = read_yaml(RULES_TEST_FILE)
    return [
        {**case, "group": test.get("name", f"test {number}")}
        for number, test in enumerate(document["tests"])
        for case in test.get("alert_rule_test") or []
    ]


# -- promtool -------------------------------------------------------------------------------------------------------


def test_promtool_finds_the_scrape_config_and_the_rules_it_names_valid() -> None:
    output = run_promtool("check", "config", str(CONFIG_FILE.relative_to(ROOT)))
    assert "1 rule files found" in output, output
    assert f"Checking {RULES_FILE.relative_to(ROOT)}" in output, output


def test_promtool_finds_the_rules_valid_and_reads_as_many_as_this_module() -> None:
    output = run_promtool("check", "rules", str(RULES_FILE.relative_to(ROOT)))
    found = re.search(r"SUCCESS: (\d+) rules found", output)
    assert found is not None, output
    assert int(found.group(1)) == len(alerting_rules()), f"{output}\nread here: {alert_expressions()}"


def test_the_rules_unit_tests_pass() -> None:
    output = run_promtool("test", "rules", str(RULES_TEST_FILE.relative_to(ROOT)))
    assert "SUCCESS" in output, output


# -- conventions ----------------------------------------------------------------------------------------------------


def test_alert_names_are_camel_case_prefixed_and_unique() -> None:
    names = [name for name, _ in alert_expressions()]
    assert len(names) >= 7, names
    assert [name for name in names if not re.fullmatch(r"IaModules(?:[A-Z][a-z0-9]+)+", name)] == []
    assert len(set(names)) == len(names), names


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_in_the_docs() -> None:
    docs = METRICS_DOC.read_text(encoding="utf-8")
    assert "\n## Alerts\n" in docs, "docs/metrics.md has no `## Alerts` section"
    alerts_section = docs.split("\n## Alerts\n", 1)[1]
    problems: list[str] = []
    for rule in alerting_rules():
        if rule.labels.get("severity") not in SEVERITIES:
            problems.append(f"{rule.name}: severity {rule.labels.get('severity')!r}, not one of {sorted(SEVERITIES)}")
        for annotation in ("summary", "description"):
            if not rule.annotations.get(annotation, "").strip():
                problems.append(f"{rule.name}: no {annotation} annotation")
        if "$labels" not in rule.annotations.get("summary", "") + rule.annotations.get("description", "") and (
            rule_output_labels(rule)
        ):
            problems.append(f"{rule.name}: neither summary nor description names the alert's labels ($labels)")
        runbook = f"docs/metrics.md#{rule.name.lower()}"
        if rule.annotations.get("runbook") != runbook:
            problems.append(f"{rule.name}: runbook {rule.annotations.get('runbook')!r}, expected {runbook!r}")
        if f"\n### {rule.name}\n" not in alerts_section:
            problems.append(f"{rule.name}: no `### {rule.name}` under `## Alerts` in docs/metrics.md")
    assert not problems, "\n".join(problems)


def rule_output_labels(rule: AlertRule) -> bool:
    """Whether the alert's series have labels of their own (``absent(...)`` of a regex matcher has none)."""
    return not rule.expr.startswith("absent(")


def test_every_alert_names_only_documented_metrics() -> None:
    documented = documented_metrics()
    assert len(documented) >= 20, f"docs/metrics.md's table has only {sorted(documented)}"
    allowed = {"up"}
    for name, kind in documented.items():
        allowed.add(name)
        if kind == "histogram":
            allowed.update(name + suffix for suffix in HISTOGRAM_SERIES)
    problems: list[str] = []
    for name, expr in alert_expressions():
        used = metric_names(expr)
        if not used:
            problems.append(f"{name}: no metric found in {expr!r}")
        problems += [f"{name}: {metric} is not in docs/metrics.md's table" for metric in sorted(used - allowed)]
    assert not problems, "\n".join(problems)


def test_metric_names_are_told_from_functions_labels_and_keywords() -> None:
    expr = """
        sum by (job, pipeline) (rate(ia_dead_letters_total{kind="bad_input", step=~"a|b"}[5m] offset 1m))
        / on (job) group_left (pipeline) sum without (process) (increase(ia_runs_total[1h:5m]))
        > bool 0.05 unless absent(up{job="ia-modules"}) or vector(1e3) and ia_x:rate5m @ start()
    """
    assert metric_names(expr) == {"ia_dead_letters_total", "ia_runs_total", "up", "ia_x:rate5m"}


def test_the_rules_tests_have_a_firing_and_a_quiet_case_for_every_alert() -> None:
    cases = rules_tests()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {name for name, _ in alert_expressions()}
    assert sorted(names - firing) == [], "alerts never expected to fire in alerts_test.yml"
    assert sorted(names - quiet) == [], "alerts never expected to stay quiet (exp_alerts: []) in alerts_test.yml"
    assert sorted({case["alertname"] for case in cases} - names) == [], "alerts_test.yml tests alerts that are gone"
    problems: list[str] = []
    for case in cases:
        for alert in case.get("exp_alerts") or []:
            labels, annotations = alert.get("exp_labels") or {}, alert.get("exp_annotations") or {}
            if "severity" not in labels or not {"summary", "description", "runbook"} <= set(annotations):
                problems.append(f"{case['group']!r} at {case['eval_time']}: {case['alertname']} without its severity "
                                "label or its summary, description and runbook annotations")  # fmt: skip
    assert not problems, "\n".join(problems)


# -- a real Prometheus ----------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_prometheus_starts_with_the_shipped_config_and_loads_the_rules_as_read_here(tmp_path: Path) -> None:
    """The shipped prometheus.yml (as the compose file mounts it, alerts.yml beside it) in a real server: it starts,
    and its rules are the ones ``alerting_rules`` reads, with the same labels, annotations and ``for``."""
    folder = tmp_path / "etc-prometheus"
    folder.mkdir()
    for path in (CONFIG_FILE, RULES_FILE):
        shutil.copy(path, folder / path.name)
    with prometheus_running(folder / CONFIG_FILE.name, tmp_path) as prometheus:
        loaded = {rule["name"]: rule for rule in prometheus.rules() if rule["type"] == "alerting"}
    read = alerting_rules()
    assert list(loaded) == [rule.name for rule in read]
    for rule in read:
        server = loaded[rule.name]
        assert server["labels"] == rule.labels, rule.name
        assert server["annotations"] == rule.annotations, rule.name
        assert server["duration"] == seconds(rule.for_), rule.name
        assert squeeze(server["query"]) == squeeze(rule.expr), rule.name


def squeeze(expr: str) -> str:
    """``expr`` without its whitespace, for comparing an expression with Prometheus's printing of it."""
    return re.sub(r"\s+", "", expr)
