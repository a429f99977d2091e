"""What the supervisor of ``worker --processes N`` reports and hands its processes, and how bad settings read."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from pydantic import ValidationError

from streams.process.supervisor import WorkerSlot, combined_health, relay_lines, worker_environment
from streams.settings import Settings, settings_problems


def slot(index: int, status: int, body: dict[str, Any], restarts: int = 0) -> WorkerSlot:
    answered = WorkerSlot(index, 7000 + index, restarts=restarts)
    answered.health = (status, body)
    return answered


def consuming(partitions: dict[str, list[int]], consumed: int, database: str = "ok") -> dict[str, Any]:
    return {"status": "consuming", "partitions": partitions, "consumed": consumed, "produced": 2 * consumed,
            "database": database}  # fmt: skip


def test_health_is_200_once_every_process_consumes_with_all_their_partitions() -> None:
    slots = [
        slot(0, 200, consuming({"ia.p.input": [0, 1], "ia.p.second": [0, 1]}, 10)),
        slot(1, 200, consuming({"ia.p.input": [3, 2], "ia.p.second": [2, 3]}, 5), restarts=2),
    ]
    status, body = combined_health(slots, ["p"])
    assert status == 200
    assert body["status"] == "consuming" and body["pipelines"] == ["p"]
    assert body["partitions"] == {"ia.p.input": [0, 1, 2, 3], "ia.p.second": [0, 1, 2, 3]}
    assert (body["consumed"], body["produced"], body["database"]) == (15, 30, "ok")
    assert [p["partitions"]["ia.p.input"] for p in body["processes"]] == [[0, 1], [3, 2]]
    assert [p["restarts"] for p in body["processes"]] == [0, 2]


def test_health_is_503_while_one_process_starts_or_does_not_answer() -> None:
    starting = [slot(0, 200, consuming({"ia.p.input": [0, 1, 2, 3]}, 1)), slot(1, 503, {"status": "starting"})]
    status, body = combined_health(starting, ["p"])
    assert status == 503 and body["status"] == "starting"
    assert [p["status"] for p in body["processes"]] == ["consuming", "starting"]
    silent = [starting[0], slot(1, 0, {})]
    status, body = combined_health(silent, ["p"])
    assert status == 503 and body["processes"][1]["status"] == "not answering"
    assert body["processes"][1]["pid"] is None


def test_health_reports_the_database_unreachable_when_one_process_cannot_reach_it() -> None:
    slots = [slot(0, 200, consuming({}, 0, "ok")), slot(1, 200, consuming({}, 0, "unreachable"))]
    assert combined_health(slots, [])[1]["database"] == "unreachable"
    assert combined_health(slots[:1], [])[1]["database"] == "ok"


def test_a_worker_process_gets_the_shared_broker_and_database_and_a_web_port_of_its_own() -> None:
    base = {"PATH": "/bin", "IA_APP_ID": "mine", "IA_WEB_PORT": "6066", "IA_PROCESSES": "4"}
    environment = worker_environment(base, "127.0.0.1:9092", 2000, "postgresql://u@/db?host=/tmp", 40001)
    assert environment == {
        "PATH": "/bin",
        "IA_APP_ID": "mine",
        "IA_BROKER": "kafka://127.0.0.1:9092",
        "IA_SESSION_TIMEOUT_MS": "2000",
        "IA_DATABASE_URL": "postgresql://u@/db?host=/tmp",
        "IA_WEB_PORT": "40001",
        "IA_PROCESSES": "1",
    }
    given = worker_environment(base, "kafka://a:1,kafka://b:2", 10_000, None, 40002)
    assert given["IA_BROKER"] == "kafka://a:1,kafka://b:2" and given["IA_DATABASE_URL"] == "none"


def test_bad_settings_name_the_variable_and_hide_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IA_PROCESSES", "0")
    monkeypatch.setenv("IA_WEB_PORT", "http")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)
    assert settings_problems(raised.value) == [
        "IA_WEB_PORT: Input should be a valid integer, unable to parse string as an integer (got 'http')",
        "IA_PROCESSES: Input should be greater than or equal to 1 (got '0')",
    ]
    monkeypatch.delenv("IA_PROCESSES")
    monkeypatch.delenv("IA_WEB_PORT")
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, database_url=["postgresql://user:s3cret@db/x"])
    (line,) = settings_problems(raised.value)
    assert line.startswith("IA_DATABASE_URL: ") and "s3cret" not in line


async def test_a_worker_process_output_is_relayed_line_by_line_marked_with_the_process() -> None:
    source = asyncio.StreamReader(limit=8)
    source.feed_data(b"ready\n" + b"a line longer than the limit\n" + b"partial")
    source.feed_eof()
    target = io.BytesIO()
    await relay_lines(source, target, b"[worker 2] ")
    assert target.getvalue().splitlines() == [
        b"[worker 2] ready",
        b"[worker 2] a line longer than the limit",
        b"[worker 2] partial",
    ]
