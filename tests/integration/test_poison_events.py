"""The poison corpus: hostile records among good ones, through a real worker on real Kafka into a real PostgreSQL.
Each record has one exact outcome (a bad_input letter and no run; a normal run and its row; a failed run, its row
and a step_failed or run_failed letter); every good event around them succeeds once; the worker keeps consuming."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from ia_modules.database import DatabaseManager
from streams.sink.results import read_json
from tests.integration.streaming_support import Namespace, WorkerProcess

pytestmark = pytest.mark.integration

MAX_DEPTH = 20
MAX_RECORD_BYTES = 800_000
PIPELINE = {
    "name": "Poison", "version": "1.0",
    "steps": [{"id": "check", "step_class": "PoisonStep", "module": "tests.integration.poison_steps",
               "timeout_s": 0.5}],
    "flow": {"start_at": "check", "paths": []},
    "outputs": {"total": "{{ check.total }}", "blob": "{{ check.blob }}"},
    "stream": {"id": "poison", "partitions": 2},
}  # fmt: skip


def nested(levels: int) -> Any:
    """A value ``levels`` containers deep."""
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


def event(**fields: Any) -> bytes:
    return orjson.dumps({"amount": 1, **fields})


#: (what, record key, record value, expected outcome)
BAD_INPUT: list[tuple[str, bytes | None, bytes | None]] = [
    ("invalid JSON", None, b'{"amount": 1,'),
    ("a JSON array", None, b"[1, 2]"),
    ("a JSON string", None, b'"amount"'),
    ("a JSON number", None, b"42"),
    ("JSON null", None, b"null"),
    ("an empty value", None, b""),
    ("a null value (tombstone)", b"k", None),
    ("whitespace only", None, b"   \n"),
    ("invalid UTF-8", None, b'{"amount": 1, "name": "\xff\xfe"}'),
    ("a lone surrogate escape", None, b'{"amount": 1, "name": "\\ud800"}'),
    ("a byte-order mark", None, b'\xef\xbb\xbf{"amount": 1}'),
    ("NaN", None, b'{"amount": NaN}'),
    ("Infinity", None, b'{"amount": Infinity}'),
    ("-Infinity", None, b'{"amount": -Infinity}'),
    ("1e400", None, b'{"amount": 1e400}'),
    ("deeper than IA_MAX_JSON_DEPTH", None, orjson.dumps({"amount": 1, "deep": nested(MAX_DEPTH)})),
]
NORMAL: list[tuple[str, bytes | None, bytes | None]] = [
    ("NUL in a value", None, event(name="a\u0000b")),
    ("NUL in a key", None, orjson.dumps({"amount": 1, "na\u0000me": "x"})),
    ("a 200 KB key", None, orjson.dumps({"amount": 1, "k" * 200_000: 1})),
    ("a 500 KB record key", b"r" * 500_000, event()),
    ("no record key", None, event()),
    ("duplicate keys (the last wins)", None, b'{"amount": 7, "amount": 1}'),
    ("exactly IA_MAX_JSON_DEPTH deep", None, orjson.dumps({"amount": 1, "deep": nested(MAX_DEPTH - 1)})),
]
STEP_FAILED: list[tuple[str, bytes | None, bytes | None]] = [
    ("a field the pipeline needs is missing", None, b'{"name": "no amount"}'),
    ("a field of the wrong type", None, b'{"amount": "ten"}'),
    ("a step that raises", None, event(do="raise")),
    ("a step that hangs past timeout_s", None, event(do="hang")),
    ("a step that returns a non-dict", None, event(do="list")),
]
RUN_FAILED: list[tuple[str, bytes | None, bytes | None]] = [
    ("a result over IA_MAX_RECORD_BYTES", None, event(do="big", size=MAX_RECORD_BYTES + 1000)),
]
GOOD_EVERY = 2  # a good event before every hostile one, and after the last


async def send(broker: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", max_request_size=2_000_000)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def rows(url: str, sql: str) -> list[dict[str, Any]]:
    db = DatabaseManager(url, project_migrations_dir=False)
    await db.connect()
    try:
        return await db.fetch_all(sql)
    finally:
        await db.close()


async def wait_for(url: str, sql: str, count: int, timeout_s: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await rows(url, sql)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    return found


async def test_every_poison_record_has_its_one_outcome_and_the_good_ones_succeed_once(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "poison.json").write_text(json.dumps(PIPELINE))
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_MAX_JSON_DEPTH=str(MAX_DEPTH),
                           IA_MAX_RECORD_BYTES=str(MAX_RECORD_BYTES))  # fmt: skip
    hostile = [*BAD_INPUT, *NORMAL, *STEP_FAILED, *RUN_FAILED]
    records: list[tuple[bytes | None, bytes | None]] = []
    good = 0
    for _what, key, value in hostile:
        for _ in range(GOOD_EVERY):
            records.append((None, event(seq=good)))
            good += 1
        records.append((key, value))
    records.append((None, event(seq=good)))
    good += 1
    try:
        await worker.wait_consuming()
        await send(kafka_broker, namespace.topic("poison", "input"), records)
        expected_rows = good + len(NORMAL) + len(STEP_FAILED) + len(RUN_FAILED)
        expected_letters = len(BAD_INPUT) + len(STEP_FAILED) + len(RUN_FAILED)
        runs = await wait_for(postgres_url, "SELECT status, input, error FROM pipeline_runs", expected_rows)
        letters = await wait_for(postgres_url, "SELECT kind, error_type, error_message FROM dead_letters",
                                 expected_letters)  # fmt: skip

        # the worker keeps consuming: one more good event after all of them gets its row
        await send(kafka_broker, namespace.topic("poison", "input"), [(None, event(seq=good, last=True))])
        runs = await wait_for(postgres_url, "SELECT status, input, error FROM pipeline_runs", expected_rows + 1)
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()

    def decoded(row: dict[str, Any], column: str) -> Any:
        value = row[column]
        return read_json(value) if isinstance(value, str | bytes) else value

    assert len(runs) == expected_rows + 1, log[-3000:]
    seqs = Counter(decoded(r, "input").get("seq") for r in runs if "seq" in decoded(r, "input"))
    assert set(seqs) == set(range(good + 1)) and set(seqs.values()) == {1}, "every good event succeeded once"
    statuses = Counter(r["status"] for r in runs)
    failures = Counter((decoded(r, "error") or {}).get("type") for r in runs if r["status"] == "failed")
    assert failures == {"ValueError": 1, "TypeError": 1, "RuntimeError": 1, "TimeoutError": 1, "StepOutputError": 1,
                        "RecordTooLarge": 1}, failures  # fmt: skip
    assert statuses == {"success": good + 1 + len(NORMAL), "failed": len(STEP_FAILED) + len(RUN_FAILED)}
    kinds = Counter(letter["kind"] for letter in letters)
    assert kinds == {"bad_input": len(BAD_INPUT), "step_failed": len(STEP_FAILED), "run_failed": len(RUN_FAILED)}
    types = Counter(letter["error_type"] for letter in letters if letter["kind"] != "bad_input")
    assert types == {"ValueError": 1, "TypeError": 1, "RuntimeError": 1, "TimeoutError": 1, "StepOutputError": 1,
                     "RecordTooLarge": 1}  # fmt: skip
    failed_inputs = [decoded(r, "input") for r in runs if r["status"] == "failed"]
    assert {"name": "no amount"} in failed_inputs
    nul = [decoded(r, "input") for r in runs if r["status"] == "success" and "seq" not in decoded(r, "input")]
    assert {"amount": 1, "name": "a\u0000b"} in nul and {"amount": 1, "na\u0000me": "x"} in nul, "stored losslessly"
    assert "Traceback" not in log, log[-3000:]
