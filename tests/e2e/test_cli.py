"""The ``ia-modules`` command as a user runs it: a real process, real files, stdout, stderr and exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ia-modules")

PIPELINE = {
    "name": "Shout",
    "version": "1.2",
    "steps": [
        {"id": "upper", "step_class": "DataTransformStep", "module": "steps.my_custom_steps",
         "config": {"transform_type": "uppercase", "field_name": "text"}},
        {"id": "reverse", "step_class": "DataTransformStep", "module": "steps.my_custom_steps",
         "config": {"transform_type": "reverse", "field_name": "shout"},
         "inputs": {"shout": "{{ upper.transformed_text }}"}},
    ],
    "flow": {"start_at": "upper", "paths": [
        {"from": "upper", "to": "reverse", "condition": {"type": "expression", "config": {
            "source": "result.transformed_text", "operator": "starts_with", "value": "H"}}},
    ]},
    "outputs": {"shout": "{{ upper.transformed_text }}", "reversed": "{{ reverse.transformed_text }}"},
}  # fmt: skip


def cli(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, env=None, check=False
    )


@pytest.fixture
def shout(tmp_path: Path) -> Path:
    path = tmp_path / "shout.json"
    path.write_text(json.dumps(PIPELINE))
    return path


def test_validate_accepts_the_shipped_pipelines() -> None:
    done = cli("validate", "pipelines")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "custom_processing" in done.stderr


def test_validate_prints_one_line_per_problem_with_file_and_json_path(tmp_path: Path, shout: Path) -> None:
    broken = json.loads(json.dumps(PIPELINE))
    broken["steps"][1]["inputs"]["shout"] = "{{ uper.transformed_text }}"
    broken["flow"]["paths"].append({"from": "reverse", "to": "nowhere"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    done = cli("validate", str(shout), str(bad))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{bad}: flow.paths[1].to: unknown step 'nowhere' (steps or end, end_with_success, end_with_failure)",
        f"{bad}: steps[1].inputs.shout: 'uper.transformed_text': unknown step 'uper'",
    ]


def test_validate_reports_invalid_json_with_its_location(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"name": "x",\n  "steps": [}\n')
    done = cli("validate", str(bad))
    assert done.returncode == 1
    assert done.stdout.startswith(f"{bad}: $: invalid JSON at line 2 column")


def test_run_with_input_prints_one_result_record(shout: Path) -> None:
    done = cli("run", str(shout), "--input", '{"text": "hello"}')
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert set(record) == {"run_id", "pipeline", "pipeline_version", "status", "outputs", "error", "trace", "input",
                           "source"}  # fmt: skip
    assert record["pipeline"] == "shout" and record["pipeline_version"] == "1.2"
    assert record["status"] == "success" and record["error"] is None and record["source"] is None
    assert record["outputs"] == {"shout": "HELLO", "reversed": "OLLEH"}
    assert [t["step"] for t in record["trace"]] == ["upper", "reverse"]
    assert record["trace"][0]["routes"] == [{"to": "reverse", "taken": True, "observed": "HELLO"}]


def test_run_events_runs_every_good_line_and_reports_the_bad_ones(tmp_path: Path, shout: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"text": "hi"}\nnot json\n\n[1, 2]\n{"text": "ok"}\n')
    done = cli("run", str(shout), "--events", str(events))
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["outputs"] for r in records] == [
        {"shout": "HI", "reversed": "IH"},
        {"shout": "OK", "reversed": None},  # "OK" does not start with H: the path is not taken
    ]
    assert f"{events}:2: invalid JSON" in done.stderr
    assert f"{events}:4: an event must be a JSON object, not list" in done.stderr


def test_run_reads_events_from_stdin_and_explains_on_stderr(shout: Path) -> None:
    done = cli("run", str(shout), "--events", "-", "--explain", stdin='{"text": "yo"}\n')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"shout": "YO", "reversed": None}
    assert "upper" in done.stderr and "skipped" in done.stderr and '(saw "YO")' in done.stderr


def test_run_looks_up_a_pipeline_id_in_the_pipelines_dir() -> None:
    event = '{"customer_id": "c-1", "text": "The parcel came quickly and the support team answered every question."}'
    done = cli("run", "custom_processing", "--input", event)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["pipeline"] == "custom_processing" and record["status"] == "success"


def test_run_refuses_an_input_that_is_not_an_object(shout: Path) -> None:
    done = cli("run", str(shout), "--input", "[1]")
    assert done.returncode == 2
    assert "--input: an event must be a JSON object, not list" in done.stderr
    assert done.stdout == ""


def test_run_of_an_unknown_pipeline_names_what_exists() -> None:
    done = cli("run", "no_such_pipeline", "--input", "{}")
    assert done.returncode == 2
    assert "no pipeline 'no_such_pipeline' in pipelines" in done.stderr
    assert "custom_processing" in done.stderr


def test_run_uses_the_services_factory_named_by_ia_services(tmp_path: Path, shout: Path) -> None:
    (tmp_path / "my_services.py").write_text(
        "from ia_modules.pipeline.services import ServiceRegistry\n"
        "async def build():\n"
        "    services = ServiceRegistry()\n"
        "    services.register('greeting', 'hello from the factory')\n"
        "    return services\n"
    )
    (tmp_path / "greet.py").write_text(
        "from ia_modules.pipeline.core import Step\n"
        "class Greet(Step):\n"
        "    async def run(self, data):\n"
        "        return {'greeting': self.get_service('greeting'), 'run': self.services.get('execution_id')}\n"
    )
    pipeline = tmp_path / "greet.json"
    pipeline.write_text(json.dumps({"steps": [{"id": "g", "step_class": "Greet", "module": "greet"}],
                                    "flow": {"start_at": "g"}}))  # fmt: skip
    done = subprocess.run(
        [CLI, "run", str(pipeline), "--input", "{}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**__import__("os").environ, "IA_SERVICES": "my_services:build", "IA_STEP_PACKAGES": "steps,greet"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["outputs"] == {"greeting": "hello from the factory", "run": record["run_id"]}


def test_graph_draws_mermaid_and_dot(shout: Path) -> None:
    mermaid = cli("graph", str(shout))
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("flowchart TD\n")
    assert "s_upper -->|\"result.transformed_text starts_with 'H'\"| s_reverse" in mermaid.stdout
    dot = cli("graph", str(shout), "--format", "dot")
    assert dot.returncode == 0
    assert dot.stdout.startswith('digraph "shout" {')
    assert '"s_upper" -> "s_reverse" [label="result.transformed_text starts_with \'H\'"];' in dot.stdout


def test_topics_lists_every_topic_whole_with_its_role_and_steps() -> None:
    done = cli("topics", "custom_processing")  # piped, as into grep: no name may be cut off
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("custom_processing: 4 stage(s), 4 partitions per topic\n")
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│")}
    assert list(rows) == [
        "ia.custom_processing.input",
        "ia.custom_processing.data_loader",
        "ia.custom_processing.advanced_processor",
        "ia.custom_processing.standard_processor",
        "ia.custom_processing.output_formatter",
        "ia.custom_processing.output",
        "ia.custom_processing.dlq",
        "ia-modules.custom_processing.joins-changelog",
    ]
    assert "runs stage data_loader" in rows["ia.custom_processing.input"]
    assert "data_loader → data_cleaner → quality_checker" in rows["ia.custom_processing.data_loader"]
    assert "join state (compacted)" in rows["ia-modules.custom_processing.joins-changelog"]
    assert "…" not in done.stdout


def test_topics_follow_the_topic_prefix_and_fuse_settings() -> None:
    env = {**os.environ, "IA_TOPIC_PREFIX": "acme", "IA_APP_ID": "billing", "IA_FUSE": "0"}
    done = subprocess.run([CLI, "topics", "custom_processing"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("custom_processing: 6 stage(s)")
    for topic in ("acme.custom_processing.input", "acme.custom_processing.data_cleaner",
                  "acme.custom_processing.output", "billing.custom_processing.joins-changelog"):  # fmt: skip
        assert f"│ {topic} " in done.stdout


def test_topics_of_an_unknown_pipeline_names_what_exists() -> None:
    done = cli("topics", "no_such_pipeline")
    assert done.returncode == 2
    assert "no pipeline 'no_such_pipeline' in pipelines" in done.stderr
    assert "custom_processing" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["through-a-worker", "in-process"])
def test_demo_runs_every_shipped_pipeline(mode: list[str]) -> None:
    done = cli("demo", *mode)
    assert done.returncode == 0, done.stderr
    shipped = sorted(p.stem for p in (ROOT / "pipelines").glob("*.json"))
    assert len(shipped) >= 3
    summary = done.stdout[done.stdout.index("demo summary") :]
    for pipeline_id in shipped:
        events = sum(1 for line in (ROOT / "pipelines" / f"{pipeline_id}.events.jsonl").open() if line.strip())
        row = next(line for line in summary.splitlines() if f" {pipeline_id} " in line)
        assert f" {events} " in row, row
    assert done.stdout.count("✓") + done.stdout.count("✗") >= 150
    if not mode:
        assert "worker consuming on 127.0.0.1:" in done.stderr
        assert not (ROOT / ".ia" / "broker.json").exists(), "the embedded broker was stopped"
        # the summary's figures are the worker's metrics, checked against the rows its results sink wrote
        assert "demo summary (from the worker's /metrics)" in done.stdout
        rows = sum(sum(1 for line in path.open() if line.strip()) for path in (ROOT / "pipelines").glob("*.jsonl"))
        assert f"✓ the worker's metrics agree with the results read and the {rows} pipeline_runs rows" in done.stdout
        routes = done.stdout[done.stdout.index("routes taken (ia_route_total)") :]
        branches = [line for line in routes.splitlines() if "quality_checker → " in line]
        assert sum(int(line.split("│")[-2]) for line in branches) == 66, branches  # each event takes one branch
        assert "SELECT pipeline, status, count(*) FROM pipeline_runs" in done.stdout
        assert "ia-modules top" in done.stdout


def test_graph_dot_renders_with_graphviz_and_boxes_each_stage_with_its_topic() -> None:
    dot = cli("graph", "custom_processing", "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    rendered = subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, text=True, check=False)
    assert rendered.returncode == 0, rendered.stderr
    svg = rendered.stdout
    for step in ("data_loader", "quality_checker", "advanced_processor", "standard_processor", "output_formatter"):
        assert f">{step}</text>" in svg
    assert "stage advanced_processor ← ia.custom_processing.advanced_processor" in svg
    assert "result.quality_score &gt; parameters.quality_threshold" in svg


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("IA_PROCESSES", "0", "error: IA_PROCESSES: Input should be greater than or equal to 1 (got '0')"),
        ("IA_EVENT_LOOP", "trio", "error: IA_EVENT_LOOP: Input should be 'auto', 'uvloop' or 'asyncio' (got 'trio')"),
        ("IA_WEB_PORT", "0", "error: IA_WEB_PORT: Input should be greater than or equal to 1 (got '0')"),
    ],
    ids=["a-number-out-of-range", "an-unknown-choice", "port-zero"],
)
def test_a_bad_setting_is_named_with_what_is_wrong_and_nothing_starts(setting: str, value: str, error: str) -> None:
    done = subprocess.run(
        [CLI, "worker"], cwd=ROOT, env={**os.environ, setting: value},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == error
    assert not (ROOT / ".ia" / "broker.json").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["publish", "custom_processing", "pipelines/custom_processing.events.jsonl"],
        ["consume", "custom_processing", "--timeout", "1"],
    ],
    ids=["worker", "publish", "consume"],
)
def test_a_broker_that_does_not_answer_is_named_without_a_traceback(command: list[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "IA_BROKER": f"kafka://127.0.0.1:{port}", "IA_DATABASE_URL": "none"}
    done = subprocess.run([CLI, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert (
        f"error: cannot reach the Kafka broker at kafka://127.0.0.1:{port} (IA_BROKER): is it running?" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr


@pytest.mark.parametrize(("folder", "error"), [("missing", "error: no folder {path} (--pipelines or IA_PIPELINES_DIR)"),
                                              ("empty", "error: no pipeline files (*.json) in {path}")])  # fmt: skip
def test_a_worker_without_pipelines_says_why_and_starts_nothing(tmp_path: Path, folder: str, error: str) -> None:
    path = tmp_path / folder
    if folder == "empty":
        path.mkdir()
    done = cli("worker", "--pipelines", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == error.format(path=path)
    assert not (tmp_path / ".ia").exists()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_database_that_does_not_answer_is_named_without_its_password(tmp_path: Path, processes: str) -> None:
    url = f"postgresql://ia:s3cret-pw@127.0.0.1:{free_port()}/ia"  # nothing listens there
    environment = {**os.environ, "IA_DATABASE_URL": url, "IA_PROCESSES": processes, "IA_WEB_PORT": str(free_port())}
    done = subprocess.run([CLI, "worker", "--pipelines", str(ROOT / "pipelines")], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"error: connecting to {url.replace(':s3cret-pw@', ':***@')} failed: ConnectionRefusedError" in done.stderr
    assert "s3cret-pw" not in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".ia" / "broker.json").exists(), "the embedded broker was stopped"


def test_worker_processes_that_fail_on_their_configuration_stop_the_command(tmp_path: Path) -> None:
    """The services factory is loaded in each worker process: its error is printed, the others are stopped,
    and the command exits 2 rather than starting them again and again."""
    environment = {**os.environ, "IA_BROKER": "kafka://127.0.0.1:1", "IA_DATABASE_URL": "none",
                   "IA_SERVICES": "no_such_module:factory", "IA_WEB_PORT": str(free_port())}  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [CLI, "worker", "--processes", "2", "--pipelines", str(ROOT / "pipelines")], cwd=tmp_path,
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "error: IA_SERVICES=no_such_module:factory: cannot import module 'no_such_module'" in done.stderr
    assert "stopped with a configuration error (its output above says which)" in done.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("processes", ["1", "2"], ids=["one-process", "two-processes"])
def test_a_worker_that_cannot_serve_its_health_page_says_so_and_exits_2(tmp_path: Path, processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environment = {**os.environ, "IA_BROKER": "kafka://127.0.0.1:1", "IA_DATABASE_URL": "none",
                       "IA_WEB_PORT": str(port)}  # fmt: skip
        done = subprocess.run(
            [CLI, "worker", "--processes", processes, "--pipelines", str(ROOT / "pipelines")], cwd=tmp_path,
            env=environment, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"error: cannot serve /health on port {port} (IA_WEB_PORT): " in done.stderr
    assert "Traceback" not in done.stderr


def test_an_event_loop_that_is_not_installed_is_named_and_nothing_starts(tmp_path: Path) -> None:
    """``IA_EVENT_LOOP=uvloop`` on a machine without uvloop (hidden from this process: it is a dependency)."""
    without_uvloop = "import sys; sys.modules['uvloop'] = None; from streams.cli import main; main()"
    environment = {**os.environ, "IA_EVENT_LOOP": "uvloop", "IA_DATABASE_URL": "none", "IA_WEB_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-c", without_uvloop, "worker", "--pipelines", str(ROOT / "pipelines")], cwd=tmp_path,
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: IA_EVENT_LOOP=uvloop but uvloop is not installed here (pip install uvloop; not on Windows)"
    )
    assert not (tmp_path / ".ia").exists(), "no embedded broker was started"


@pytest.mark.parametrize("command", [["validate"], ["run", "--input", '{"text": "hi"}'], ["worker", "--pipelines"]])
def test_a_pipeline_naming_code_outside_the_step_packages_runs_nothing(tmp_path: Path, command: list[str]) -> None:
    hostile = json.loads(json.dumps(PIPELINE))
    marker = tmp_path / "pwned"
    hostile["flow"]["paths"][0]["condition"] = {
        "type": "function",
        "config": {"function": "subprocess:call", "args": {"args": ["touch", str(marker)]}},
    }
    folder = tmp_path / "pipelines"
    folder.mkdir()
    file = folder / "hostile.json"
    file.write_text(json.dumps(hostile))
    done = cli(*command, str(folder if command[0] == "worker" else file), cwd=tmp_path)
    assert done.returncode in (1, 2), done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "flow.paths[0].condition.config.function: module 'subprocess' is outside IA_STEP_PACKAGES" in said
    assert "Traceback" not in said
    assert not marker.exists(), "the command in the pipeline file never ran"
    assert not (tmp_path / ".ia").exists(), "nothing started"
