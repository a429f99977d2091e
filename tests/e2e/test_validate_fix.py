"""Older pipeline formats from the command line: ``validate`` and ``run`` load them with one warning per file on
stderr showing the current form; ``validate --fix`` rewrites them in the current form and says what it changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ia-modules")
OLDER = ROOT / "tests" / "corpus" / "older_formats" / "Custom Processing (all older forms).json"
SHIPPED = ROOT / "pipelines" / "custom_processing.json"
EVENTS = ROOT / "pipelines" / "custom_processing.events.jsonl"
WARNED = ["parameters", "steps[1].inputs", "steps[2].inputs", "steps[3].inputs", "steps[4].inputs",
          "steps[5].inputs", "flow.paths"]  # fmt: skip


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def older_copy(tmp_path: Path, name: str = "My Old Pipeline.json") -> Path:
    file = tmp_path / name
    shutil.copy(OLDER, file)
    return file


def warnings_of(stderr: str, file: Path) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{file}: ") and ": warning: " in line]


def test_validate_loads_an_older_file_with_one_warning_showing_the_current_form(tmp_path: Path) -> None:
    file = older_copy(tmp_path)
    done = cli("validate", str(file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    lines = warnings_of(done.stderr, file)
    assert [line.split(": ")[1] for line in lines] == [*WARNED, "warning"]
    assert lines[0] == (
        f'{file}: parameters: warning: older form: list of parameters; read as {{"input_source": "kafka", '
        '"output_format": "json", "enable_validation": true, "quality_threshold": 0.8}; not kept: schema, '
        "description of 'input_source'; schema, description of 'quality_threshold'"
    )
    assert lines[1] == (
        f"{file}: steps[1].inputs: warning: older form: list of inputs; read as "
        '{"raw_data": "{{ data_loader.loaded_data }}"}; not kept: required of \'raw_data\''
    )
    assert lines[-2] == (
        f"{file}: flow.paths: warning: older form: 'from_step'/'to_step' in paths 0-5; read as 'from'/'to': "
        '{"from": "data_loader", "to": "data_cleaner"}'
    )
    assert lines[-1] == (
        f"{file}: warning: older pipeline format: ia-modules validate --fix '{file}' rewrites it in the current form"
    )
    assert f"ok {file} (my_old_pipeline: 6 steps, 6 paths)" in done.stderr


def test_run_warns_once_and_gives_the_results_of_the_current_form(tmp_path: Path) -> None:
    file = older_copy(tmp_path)
    older = cli("run", str(file), "--events", str(EVENTS))
    current = cli("run", str(SHIPPED), "--events", str(EVENTS))
    assert older.returncode == current.returncode == 0, older.stderr + current.stderr
    assert len(warnings_of(older.stderr, file)) == len(WARNED) + 1, "one warning for the file, not one per event"
    assert warnings_of(current.stderr, SHIPPED) == []
    records = [json.loads(line) for line in older.stdout.splitlines()]
    expected = [json.loads(line) for line in current.stdout.splitlines()]
    assert len(records) == len(expected) == 66
    assert {r["pipeline"] for r in records} == {"my_old_pipeline"}
    assert [(r["status"], r["outputs"]) for r in records] == [(r["status"], r["outputs"]) for r in expected]


def test_validate_fix_rewrites_the_file_in_the_current_form_and_says_what_changed(tmp_path: Path) -> None:
    file = older_copy(tmp_path)
    done = cli("validate", "--fix", str(file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    changed = [line for line in done.stderr.splitlines() if " rewritten as " in line]
    assert [line.split(": ")[1] for line in changed] == WARNED
    assert changed[0].startswith(f'{file}: parameters: list of parameters rewritten as {{"input_source": ')
    assert changed[0].endswith("; dropped: schema, description of 'input_source'; schema, description of "
                               "'quality_threshold'")  # fmt: skip
    assert f"{file}: rewritten in the current form" in done.stderr.splitlines()
    assert warnings_of(done.stderr, file) == [], "the rewritten file is checked, and is current"
    assert json.loads(file.read_text(encoding="utf-8")) == json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert [p.name for p in tmp_path.iterdir()] == [file.name]

    again = cli("validate", str(file))
    assert again.returncode == 0 and warnings_of(again.stderr, file) == []
    before = file.read_bytes(), file.stat().st_mtime_ns
    refix = cli("validate", "--fix", str(file))
    assert refix.returncode == 0
    assert "rewritten" not in refix.stderr
    assert (file.read_bytes(), file.stat().st_mtime_ns) == before, "fixing again changes nothing"


def test_validate_fix_on_a_folder_rewrites_only_the_older_files(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    current = folder / "custom_processing.json"
    shutil.copy(SHIPPED, current)
    older = older_copy(folder, "Older-Copy.json")
    before = current.read_bytes(), current.stat().st_mtime_ns
    done = cli("validate", "--fix", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (current.read_bytes(), current.stat().st_mtime_ns) == before, "a current file is left untouched"
    assert f"{older}: rewritten in the current form" in done.stderr.splitlines()
    assert f"{current}: rewritten in the current form" not in done.stderr
    assert f"ok {older} (older_copy: 6 steps, 6 paths)" in done.stderr


def test_validate_fix_leaves_refused_forms_to_the_author_and_reports_them(tmp_path: Path) -> None:
    config = json.loads(OLDER.read_text(encoding="utf-8"))
    config["flow"]["paths"][0]["condition"] = {"type": "field_exists", "field": "loaded_data"}
    file = tmp_path / "refused.json"
    file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    done = cli("validate", "--fix", str(file))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{file}: flow.paths[0].condition: condition type 'field_exists' is an older form that is no longer read: "
        'write {"type": "expression", "config": {"source": "result.loaded_data", "operator": "exists"}}'
    ]
    assert f"{file}: rewritten in the current form" in done.stderr.splitlines()
    rewritten = json.loads(file.read_text(encoding="utf-8"))
    assert rewritten["flow"]["paths"][0] == {
        "from": "data_loader",
        "to": "data_cleaner",
        "condition": {"type": "field_exists", "field": "loaded_data"},
    }
    assert isinstance(rewritten["parameters"], dict)
