"""The committed dashboard against Grafana's own Dashboard type (@grafana/schema, pinned in
deploy/grafana/schema-check/package.json to the version of the Grafana image in docker-compose.yml), checked by
TypeScript: a check that owes nothing to the Python generator. embed.mjs turns the JSON into an object literal
that `satisfies` the type (its header says why not a JSON import), and tsc must accept it; broken copies show
that it can fail.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.grafana_dashboard import DASHBOARD_FILE, GRAFANA_DIR

SCHEMA_CHECK = GRAFANA_DIR / "schema-check"
NODE_MODULES = SCHEMA_CHECK / "node_modules"
STAMP = NODE_MODULES / ".installed-from-lock"
"""The package-lock.json hash node_modules was installed from: another hash (or none) means `npm ci` again."""
PROJECT_FILES = ("package.json", "tsconfig.json", "check.ts", "embed.mjs")


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def installed() -> Path:
    """node_modules as package-lock.json says, installed by `npm ci` only when missing or stale."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"no {tool} on PATH: the dashboard schema check needs Node.js (20 or later) and npm")
    lock = hashlib.sha256((SCHEMA_CHECK / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != lock or not (NODE_MODULES / "typescript").is_dir():
        result = run(["npm", "ci", "--no-audit", "--no-fund"], SCHEMA_CHECK, timeout=600)
        assert result.returncode == 0, output(result)
        STAMP.write_text(lock + "\n")
    return NODE_MODULES


def typecheck(dashboard: Path, project: Path, node_modules: Path) -> subprocess.CompletedProcess[str]:
    """embed.mjs and tsc on ``dashboard``, in a copy of the check project (so that the tree's own copy is never
    written by a test), sharing the installed node_modules."""
    project.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(SCHEMA_CHECK / name, project / name)
    (project / "node_modules").symlink_to(node_modules, target_is_directory=True)
    embedded = run(["node", "embed.mjs", str(dashboard), "dashboard.gen.ts"], project, timeout=60)
    assert embedded.returncode == 0, output(embedded)
    # --no-install: a tsc missing from node_modules is an error, never a download (npm's "tsc" is another package).
    return run(["npx", "--no-install", "tsc", "--noEmit", "-p", "."], project, timeout=300)


def test_the_project_pins_exact_versions_and_keeps_node_modules_out_of_git() -> None:
    package = (SCHEMA_CHECK / "package.json").read_text()
    for name in ("@grafana/schema", "typescript"):
        assert re.search(rf'"{re.escape(name)}": "\d+\.\d+\.\d+"', package), f"{name} is not pinned to one version"
    assert (SCHEMA_CHECK / "package-lock.json").is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(NODE_MODULES / "typescript" / "package.json")], cwd=GRAFANA_DIR, check=False
    )
    assert ignored.returncode == 0, "node_modules is not ignored by git"


def test_the_schema_is_the_one_of_the_grafana_image_in_compose() -> None:
    schema = re.search(r'"@grafana/schema": "([^"]+)"', (SCHEMA_CHECK / "package.json").read_text())
    image = re.search(r"image: grafana/grafana:(\S+)", (GRAFANA_DIR.parents[1] / "docker-compose.yml").read_text())
    assert schema and image
    assert schema[1] == image[1]


def test_the_committed_dashboard_is_a_grafana_dashboard(installed: Path, tmp_path: Path) -> None:
    result = typecheck(DASHBOARD_FILE, tmp_path / "check", installed)
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize(
    ("original", "broken", "named"),
    [
        ('"gridPos": {', '"gridPos": "0 0 4 4", "was": {', "gridPos"),  # a panel's gridPos as a string
        ('"type": "query"', '"type": "querry"', "VariableType"),  # a variable of no type Grafana knows
        ('"fieldConfig": {', '"fieldConfg": {', "fieldConfg"),  # a misspelt key
        ('"mode": "absolute"', '"mode": "absolut"', '"absolut"'),  # a value outside a (string enum's) union
    ],
    ids=["gridPos-string", "variable-type", "misspelt-key", "threshold-mode"],
)
def test_a_broken_dashboard_fails_the_check(
    installed: Path, tmp_path: Path, original: str, broken: str, named: str
) -> None:
    text = DASHBOARD_FILE.read_text(encoding="utf-8")
    assert original in text, f"nothing to break: {original!r}"
    copy = tmp_path / "broken.json"
    copy.write_text(text.replace(original, broken, 1), encoding="utf-8")
    result = typecheck(copy, tmp_path / "check", installed)
    assert result.returncode != 0, output(result)
    assert "error TS" in result.stdout and named in result.stdout, output(result)
