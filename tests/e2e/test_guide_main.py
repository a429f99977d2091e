"""The developer guide's main.py programs, run as a user runs them: ``python main.py`` in a project laid out as
the guide recommends (pipelines/, steps/, migrations/, config/, services/), ten times in a row each. They must
exit 0 and print nothing on stderr: no "Event loop is closed" from a database connection or HTTP session the
program never closed, no "Unclosed client session", no traceback.

The programs are in tests/guide_samples/main_project/, copied from the guide; the project's pipeline and steps
are the shipped ones the guide's pipeline names (pipelines/custom_processing.json, the steps package)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "guide_samples" / "main_project"
MIGRATION = ROOT / "tests" / "guide_samples" / "migrations" / "V003__add_pipeline_results_table.sql"
RUNS = 10


def guide_project(where: Path, main: str) -> Path:
    """A project as the guide lays it out, with ``main`` (a file of SAMPLES) as its main.py."""
    where.mkdir()
    shutil.copy(SAMPLES / main, where / "main.py")
    for folder in ("config", "services"):
        shutil.copytree(SAMPLES / folder, where / folder)
    (where / "migrations").mkdir()  # the guide's Custom Migration file, as the database samples use it
    shutil.copy(MIGRATION, where / "migrations")
    (where / "custom_migrations").mkdir()  # the second migration path of the guide's DatabaseConfig
    (where / "data").mkdir()
    (where / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / "custom_processing.json", where / "pipelines")
    shutil.copytree(ROOT / "steps", where / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    return where


def run_main(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NOTIFICATION_WEBHOOK_URL")}
    env["ENVIRONMENT"] = "development"  # the guide's DatabaseConfig: sqlite:///./dev_data.db
    return subprocess.run(
        [sys.executable, "main.py"], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize(
    ("main", "database", "status"),
    [
        ("main.py", "app_data.db", "failed"),  # its input has no text: the run fails, the program does not
        ("service_main.py", "dev_data.db", "success"),
    ],
    ids=["pipeline_execution", "service_configuration"],
)
def test_the_guides_main_exits_quietly_every_time(tmp_path: Path, main: str, database: str, status: str) -> None:
    project = guide_project(tmp_path / "my_project", main)
    for attempt in range(1, RUNS + 1):
        done = run_main(project)
        where = f"run {attempt} of {main}"
        assert done.returncode == 0, f"{where}:\n{done.stderr}"
        assert "Event loop is closed" not in done.stderr, f"{where}:\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{where}:\n{done.stderr}"
        assert done.stderr == "", f"{where}:\n{done.stderr}"
        assert "Pipeline execution completed!" in done.stdout
        assert f"status='{status}'" in done.stdout, done.stdout
    assert "pipeline_results" in tables(project / database), "the guide's migration (migrations/V003) applied"
