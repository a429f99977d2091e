"""The alert rules of deploy/prometheus, read for the tests: ``alert_expressions()`` gives each alert's name and PromQL
expression, ``alerting_rules()`` the whole rules, ``promtool()`` the path of Prometheus's checker.

tests/e2e/test_prometheus_rules.py checks what is read here against what a real Prometheus loads from the same file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "alerts.yml"
"""The alert rules Prometheus evaluates (``rule_files`` of prometheus.yml)."""
RULES_TEST_FILE = PROMETHEUS_DIR / "alerts_test.yml"
"""``promtool test rules`` cases of every alert."""
CONFIG_FILE = PROMETHEUS_DIR / "prometheus.yml"
"""The scrape configuration of the docker-compose deployment."""

PROMTOOL = "/usr/bin/promtool"
"""Where the Debian package ``prometheus`` puts the checker."""


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule as the rules file writes it (``for`` as written, e.g. ``"5m"``, or ``""``)."""

    name: str
    expr: str
    for_: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def alerting_rules(path: Path = RULES_FILE) -> list[AlertRule]:
    """Every alerting rule of every group of ``path``, in file order (recording rules are left out)."""
    document = read_yaml(path)
    rules: list[AlertRule] = []
    for group in (document or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" not in rule:
                continue
            rules.append(
                AlertRule(
                    name=str(rule["alert"]),
                    expr=str(rule["expr"]).strip(),
                    for_=str(rule.get("for") or ""),
                    labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                    annotations={str(k): str(v) for k, v in (rule.get("annotations") or {}).items()},
                )
            )
    return rules


def alert_expressions(path: Path = RULES_FILE) -> list[tuple[str, str]]:
    """``(alert name, PromQL expression)`` of every alerting rule of ``path``, in file order."""
    return [(rule.name, rule.expr) for rule in alerting_rules(path)]


def promtool() -> str:
    """The path of ``promtool``; fails the test (never skips it) when it is not installed."""
    found = PROMTOOL if Path(PROMTOOL).is_file() else shutil.which("promtool")
    if found is None:
        pytest.fail(
            f"promtool is not installed ({PROMTOOL} is missing): run `make system-packages`, which installs the "
            "Debian package `prometheus` (it brings promtool, which checks deploy/prometheus)",
            pytrace=False,
        )
    return found


def read_yaml(path: Path) -> Any:
    """``path`` parsed with PyYAML (a dev dependency)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
