"""The real ``ia-modules`` command given database URLs and broker addresses whose password holds URL characters
(``/ # ? @ [ ] : %``, spaces), unencoded: one error line, exit code as documented, no traceback, and the password
nowhere in stdout or stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "ia-modules")
PIPELINE = str(ROOT / "pipelines" / "custom_processing.json")

COMMANDS = {
    "migrate": (["migrate"], 1),
    "dlq-list": (["dlq", "list", PIPELINE], 2),
    "dlq-replay": (["dlq", "replay", PIPELINE, "--all"], 2),
    "worker": (["worker", "--pipelines", str(ROOT / "pipelines")], 1),
}
"""Each command reading IA_DATABASE_URL, and its exit code when the database cannot be reached."""

ALL_AT_ONCE = "Pw/#?@[x]:%zz q"


def run(command: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "IA_WEB_PORT": str(free_port()), **settings}
    return subprocess.run([CLI, *command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def nowhere() -> str:
    """A broker address nothing listens on."""
    return f"kafka://127.0.0.1:{free_port()}"


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def assert_hidden(done: subprocess.CompletedProcess[str], password: str) -> None:
    printed = done.stdout + done.stderr
    assert password not in printed
    assert "Traceback" not in printed
    for piece in (part for part in password.replace("%zz", " ").split() if len(part) >= 4):
        assert piece not in printed


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("password", ["S3cr3tPW/x", ALL_AT_ONCE], ids=["slash", "all-at-once"])
def test_a_database_that_cannot_be_reached_is_one_line_without_the_password(
    tmp_path: Path, name: str, password: str
) -> None:
    command, code = COMMANDS[name]
    port = free_port()
    done = run(
        command, tmp_path, IA_DATABASE_URL=f"postgresql://ia:{password}@127.0.0.1:{port}/x4", IA_BROKER=nowhere()
    )
    assert done.returncode == code, done.stderr
    assert error_lines(done) == [
        f"error: connecting to postgresql://ia:***@127.0.0.1:{port}/x4 failed: ConnectionRefusedError: "
        "[Errno 111] Connection refused"
    ]
    assert_hidden(done, password)


@pytest.mark.parametrize("character", ["/", "#", "?", "@", "[", "]", ":", "%", " ", "%2F", "%40"])
def test_migrate_masks_a_password_holding_any_url_character(tmp_path: Path, character: str) -> None:
    password = f"S3c{character}r3tPW"
    port = free_port()
    done = run(["migrate"], tmp_path, IA_DATABASE_URL=f"postgresql://ia:{password}@127.0.0.1:{port}/x4")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"database: postgresql://ia:***@127.0.0.1:{port}/x4",
        f"error: connecting to postgresql://ia:***@127.0.0.1:{port}/x4 failed: ConnectionRefusedError: "
        "[Errno 111] Connection refused",
    ]
    assert_hidden(done, password)


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ia:S3c[r3tPW@127.0.0.1:port/x4",
        "postgresql://ia:S3cr3tPW/x",
        "postgresql://ia:S3c#r3tPW@[::1/x4",
        "postgresql://ia:S3c?r3tPW@db/x4?sslmode",
        "ia:S3cr3tPW@db://x4",
    ],
    ids=["bad-port", "no-host", "open-bracket", "bad-query", "no-scheme"],
)
def test_a_database_url_that_cannot_be_parsed_is_one_line_naming_the_setting(
    tmp_path: Path, name: str, url: str
) -> None:
    command, _code = COMMANDS[name]
    done = run(command, tmp_path, IA_DATABASE_URL=url, IA_BROKER=nowhere())
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: IA_DATABASE_URL: "), line
    assert "S3c" not in line and "r3tPW" not in line and "127.0.0.1" not in line and "db" not in line.split(": ")[2]
    assert_hidden(done, "S3cr3tPW")
    assert not (tmp_path / ".ia").exists(), "nothing started"


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "--pipelines", str(ROOT / "pipelines")],
        ["publish", PIPELINE, str(ROOT / "pipelines" / "custom_processing.events.jsonl")],
        ["consume", PIPELINE, "--timeout", "1"],
    ],
    ids=["worker", "publish", "consume"],
)
def test_a_broker_password_never_prints(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    done = run(command, tmp_path, IA_BROKER=f"kafka://svc:{ALL_AT_ONCE}@127.0.0.1:{port}", IA_DATABASE_URL="none")
    assert done.returncode == 2, done.stderr
    assert error_lines(done) == [
        f"error: cannot reach the Kafka broker at kafka://svc:***@127.0.0.1:{port} (IA_BROKER): is it running?"
    ]
    assert_hidden(done, ALL_AT_ONCE)


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "--pipelines", str(ROOT / "pipelines")],
        ["consume", PIPELINE],
        ["dlq", "replay", PIPELINE, "--id", "1"],
    ],
    ids=["worker", "consume", "dlq-replay"],
)
def test_a_broker_address_that_cannot_be_parsed_is_one_line_naming_the_setting(
    tmp_path: Path, command: list[str]
) -> None:
    done = run(command, tmp_path, IA_BROKER=f"kafka://svc:{ALL_AT_ONCE}@127.0.0.1:port", IA_DATABASE_URL="none")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: IA_BROKER: a broker address is not host:port (expected kafka://host:port[,host:port...]; "
        "a user and password end at the last '@')"
    )
    assert_hidden(done, ALL_AT_ONCE)
    assert not (tmp_path / ".ia").exists(), "nothing started"
