"""The committed Grafana dashboard (deploy/grafana/dashboards/ia-modules-pipelines.json) for tests: its panels'
queries, and those queries with Grafana's variables replaced, ready to send to a real Prometheus.

    for title, expr in panel_queries(load_dashboard()):
        query = substitute(expr, "custom_processing")
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "ia-modules-pipelines.json"
GENERATOR_FILE = GRAFANA_DIR / "build_dashboard.py"

# Grafana's built-in intervals, as fixed values a test can query with.
BUILT_IN = {"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
ANY = ".+"
"""What the `job` and `instance` variables stand for: any value (their "All" is `.+` in the dashboard too)."""

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_REGEX_SPECIAL = set("\\^$*+?.()|{}[]'")
"""Characters Grafana escapes in a multi-value variable's values (pipeline ids, ``[a-z0-9_]+``, have none)."""


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels a collapsed row holds, top to bottom."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, including those nested in rows."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def regex_value(value: str) -> str:
    """A variable's value as Grafana's Prometheus data source puts a multi-value variable into a query: each regex
    metacharacter escaped, and the escaping backslashes doubled for the PromQL string literal."""
    # A backslash becomes \\\\ (the regex's \\, a literal backslash), a metacharacter \\ and itself.
    return "".join("\\" * 4 if ch == "\\" else "\\" * 2 + ch if ch in _REGEX_SPECIAL else ch for ch in value)


def substitute(expr: str, pipeline: str) -> str:
    """``expr`` with Grafana's variables replaced: ``$__rate_interval`` and ``$__interval`` by ``1m``, ``$__range``
    by ``5m``, ``$pipeline`` by ``pipeline`` and ``$job`` and ``$instance`` by ``.+`` (``${name}`` forms too).
    Any other variable is an error: the query could not be run as it stands."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name in BUILT_IN:
            return BUILT_IN[name]
        if name == "pipeline":
            return regex_value(pipeline)
        if name in {"job", "instance"}:
            return ANY
        raise ValueError(f"unknown variable ${name} in {expr!r}")

    return _VARIABLE.sub(value, expr)
