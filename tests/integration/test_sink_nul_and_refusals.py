"""Every input record lands somewhere: events whose JSON holds NUL (``\\u0000``), which PostgreSQL's text and jsonb
cannot hold, and rows the database refuses for another reason, with workers on real Kafka and real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ia_modules.database import DatabaseManager
from ia_modules.pipeline.wire import result_record, run_error
from streams.envelope import Envelope
from streams.sink.results import MARK, FinishedRun, ResultsSink, read_json, read_text
from tests.integration.streaming_support import (
    Namespace,
    WorkerProcess,
    collect,
    pipelines_dir_with,
    publish,
    publish_raw,
    records_of,
)
from tests.integration.test_results_sink import cli

pytestmark = pytest.mark.integration

NUL = "\0"


async def wait_for_rows(url: str, sql: str, count: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    async with DatabaseManager(url, project_migrations_dir=False) as db:
        while True:
            rows = await db.fetch_all(sql)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.3)


# -- the sink on both databases -----------------------------------------------------------------------------------

RUN_ID = "0b7a5c8e-1d2f-5a3b-9c4d-5e6f7a8b9c0d"
EVENT = {"name": "a\0b", "mark": MARK + "0", "deep": [{"k\0ey": ["\0"]}], "plain": "x"}


def nul_run() -> FinishedRun:
    record = result_record(
        run_id=RUN_ID, pipeline="p", pipeline_version="1", status="failed", outputs={"out\0": "v\0"},
        error=run_error("ValueError", "bad \0 here", step="s", attempts=1),
        trace=orjson.Fragment(b'[{"step":"s","status":"failed","started_at":"2026-01-02T03:04:05.678Z"}]'),
        input=orjson.Fragment(orjson.dumps(EVENT)),
        source={"topic": "ia.p.input", "partition": 0, "offset": 1, "timestamp": 1_700_000_000_000},
    )  # fmt: skip
    return FinishedRun(record, 1_700_000_000_500)


async def test_nul_in_every_column_is_stored_on_both_databases_and_reads_back_as_it_was(db_url: str) -> None:
    letter = {"kind": "step_failed", "run_id": RUN_ID, "pipeline": "p", "step": "s\0", "attempts": 1,
              "error": {"type": "ValueError", "message": "bad \0 here", "traceback": "Traceback\n\0"},
              "input": EVENT, "envelope": {"replay": 0, "input": EVENT}, "source": {"topic": "ia.p.input"}}  # fmt: skip
    async with DatabaseManager(db_url) as db:
        await db.initialize()
        await ResultsSink(db).write([nul_run()], [letter])
        run = await db.fetch_one("SELECT input, output, trace, error FROM pipeline_runs")
        stored = await db.fetch_one("SELECT step, error_message, error_traceback, payload FROM dead_letters")
        assert run is not None and stored is not None
        assert read_json(run["input"]) == EVENT
        assert read_json(run["output"]) == {"out\0": "v\0"}
        assert read_json(run["error"])["message"] == "bad \0 here"
        assert read_json(run["trace"])[0]["status"] == "failed"
        assert [read_text(stored[c]) for c in ("step", "error_message", "error_traceback")] == [
            "s\0", "bad \0 here", "Traceback\n\0"
        ]  # fmt: skip
        assert read_json(stored["payload"]) == letter
        if db.dialect == "postgresql":  # the SQL docs/database.md shows
            restored, mark_value = (
                "replace(replace({}, E'\\uE000' || '0', '\\u0000'), E'\\uE000' || 'e', E'\\uE000')",
                "input->>'mark'",
            )
            row = await db.fetch_one(
                "SELECT input->>'name' = 'a' || E'\\uE000' || '0' || 'b' AS matched, "
                f"{restored.format(mark_value)} AS shown, {restored.format('input::text')} AS json, "
                "input::text LIKE '%' || E'\\uE000' || '%' AS escaped FROM pipeline_runs"
            )
            assert row is not None and row["matched"] and row["escaped"]
            assert row["shown"] == MARK + "0", "the MARK pair read back as the MARK"
            assert json.loads(row["json"]) == EVENT
        else:
            row = await db.fetch_one(
                "SELECT replace(replace(json_extract(input, '$.name'), char(57344) || '0', char(0)), "
                "char(57344) || 'e', char(57344)) AS name FROM pipeline_runs"
            )
            assert row is not None and row["name"] == "a\0b"


# -- workers on Kafka and PostgreSQL ------------------------------------------------------------------------------


async def test_events_with_nul_in_a_value_and_in_a_key_have_their_rows_and_their_results(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = [
        {"seq": 0, "customer_id": "cust-1", "text": "All good here."},
        {"seq": 1, "customer_id": "cust-1", "body": "broken\u0000 text in the value"},
        {"seq": 2, "customer_id": "cust-2", "text": "Fine.", "meta": {"deep\u0000key": ["x\u0000", MARK + "0"]}},
        {"seq": 3, "customer_id": "cust\u00003", "text": "A NUL in the partition key."},
        {"seq": 4, "customer_id": "cust-1", "text": "All good here too."},
    ]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(namespace, folder, log)
    try:
        await worker.wait_consuming()
        assert publish(namespace, "custom_processing", events_file, folder).returncode == 0
        results = await collect(kafka_broker, namespace.topic("custom_processing", "output"), len(events))
        rows = await wait_for_rows(
            postgres_url, "SELECT run_id::text AS run_id, input::text AS input, output::text AS output, "
            "status FROM pipeline_runs", len(events),
        )  # fmt: skip
    finally:
        worker.stop()
    assert sorted(r["input"]["seq"] for r in results) == list(range(len(events)))
    assert len(rows) == len(events), f"{len(rows)} of {len(events)} rows:\n{log.read_text()[-3000:]}"
    by_run = {row["run_id"]: row for row in rows}
    for result in results:
        row = by_run[result["run_id"]]
        assert read_json(row["input"]) == events[result["input"]["seq"]] == result["input"]
        assert read_json(row["output"]) == result["outputs"]
        assert row["status"] == result["status"]
    assert "refused" not in log.read_text()


def fixable_pipeline(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "fixable.json").write_text(json.dumps({
        "steps": [{"id": "check", "step_class": "NeedsFlagStep", "module": "tests.integration.streaming_steps"},
                  {"id": "after", "step_class": "StampStep", "module": "tests.integration.streaming_steps"}],
        "flow": {"start_at": "check", "paths": [{"from": "check", "to": "after"}]},
        "outputs": {"checked": "{{ check.checked }}"},
        "stream": {"key": "{{ pipeline_input.customer }}"},
    }))  # fmt: skip
    return folder


async def test_a_failed_run_with_nul_is_listed_and_replayed_with_its_nul_intact(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    folder = fixable_pipeline(tmp_path)
    flag = tmp_path / "fixed"
    event = {"order": "5\0x", "customer": "c\0" + MARK}
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_TEST_FLAG_FILE=str(flag))
    try:
        await worker.wait_consuming()
        await publish_raw(kafka_broker, namespace.topic("fixable", "input"), [orjson.dumps(event)])
        [failed] = await collect(kafka_broker, namespace.topic("fixable", "output"), 1)
        assert failed["status"] == "failed"
        deadline = time.monotonic() + 30
        listed: list[dict[str, Any]] = []
        while not listed and time.monotonic() < deadline:
            done = cli(namespace, folder, "dlq", "list", "fixable", "--json")
            assert done.returncode == 0, done.stderr
            listed = [json.loads(line) for line in done.stdout.splitlines()]
            await asyncio.sleep(0.3)
        table = cli(namespace, folder, "dlq", "list", "fixable", COLUMNS="400")
        flag.write_text("fixed")
        replayed = cli(namespace, folder, "dlq", "replay", "fixable", "--all")
        results = await collect(kafka_broker, namespace.topic("fixable", "output"), 2)
        [replayed_envelope] = await records_of(
            kafka_broker, namespace.topic("fixable", "check"), 1, where=lambda r: b'"replay":1' in (r.value or b"")
        )
    finally:
        worker.stop()
    [letter] = listed
    assert letter["kind"] == "step_failed" and letter["replayable"]
    assert letter["error_message"] == letter["letter"]["error"]["message"] == "order 5\0x cannot be checked yet"
    assert letter["letter"]["envelope"]["input"] == event and letter["letter"]["envelope"]["key"] == "c\0" + MARK
    assert "order 5\\u0000x cannot be checked yet" in table.stdout + table.stderr
    assert replayed.returncode == 0 and "1 run(s) replayed" in replayed.stderr, replayed.stderr
    envelope = Envelope.decode(replayed_envelope.value, "fixable")
    assert envelope.input == event and envelope.key == "c\0" + MARK and envelope.run_id == failed["run_id"]
    assert [(r["run_id"], r["status"]) for r in results] == [
        (failed["run_id"], "failed"),
        (failed["run_id"], "success"),
    ]
    assert results[1]["outputs"] == {"checked": "5\0x"}
    [row] = await wait_for_rows(postgres_url, "SELECT status, output::text AS output FROM pipeline_runs", 1)
    assert row["status"] == "success" and read_json(row["output"]) == {"checked": "5\0x"}


REFUSE_MARKED_RUNS = """
CREATE FUNCTION refuse_marked_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.input->>'refuse' = 'yes' THEN
        RAISE EXCEPTION 'run % refused by the test trigger', NEW.run_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION refuse_marked_runs();
"""


async def test_a_row_the_database_refuses_becomes_an_internal_error_letter_and_the_rows_around_it_are_written(
    kafka_broker: str, postgres_url: str, tmp_path: Path
) -> None:
    async with DatabaseManager(postgres_url) as db:
        await db.initialize()
        await db.execute_script(REFUSE_MARKED_RUNS)
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    events = [{"seq": i, "customer_id": "cust-9", "text": f"Event {i} is fine."} for i in range(7)]
    events[3] = {**events[3], "refuse": "yes"}
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    namespace = Namespace.fresh(kafka_broker, postgres_url)
    # published before the worker starts, so that its first batch takes them all
    assert publish(namespace, "custom_processing", events_file, folder).returncode == 0
    log = tmp_path / "worker.log"
    worker = WorkerProcess(namespace, folder, log)
    try:
        await worker.wait_consuming()
        output = await records_of(kafka_broker, namespace.topic("custom_processing", "output"), len(events))
        [sent] = await records_of(kafka_broker, namespace.topic("custom_processing", "dlq"), 1)
        letters = await wait_for_rows(
            postgres_url, "SELECT run_id::text AS run_id, kind, error_type, error_message, payload::text AS payload "
            "FROM dead_letters", 1,
        )  # fmt: skip
        rows = await wait_for_rows(
            postgres_url, "SELECT run_id::text AS run_id, input::text AS input FROM pipeline_runs", len(events) - 1
        )
        listed = cli(namespace, folder, "dlq", "list", "custom_processing", "--json")
    finally:
        worker.stop()
    results = {orjson.loads(r.value or b"")["input"]["seq"]: r for r in output}
    assert sorted(results) == list(range(len(events))), "every event has its result on the output topic"
    refused = results[3]
    refused_id = orjson.loads(refused.value or b"")["run_id"]
    assert sorted(json.loads(r["input"])["seq"] for r in rows) == [0, 1, 2, 4, 5, 6], "the rows around it written"
    letter = orjson.loads(sent.value or b"")
    assert (letter["kind"], letter["run_id"], letter["error"]["type"]) == ("internal_error", refused_id, "RowRefused")
    assert "SQLSTATE 23514" in letter["error"]["message"]
    assert f"run {refused_id} refused by the test trigger" in letter["error"]["message"]
    assert sent.key == refused.key == b"cust-9" and sent.partition == refused.partition
    assert ("ia-run-id", refused_id.encode()) in list(sent.headers)
    assert base64.b64decode(letter["raw"]) == refused.value, "the result record the row was refused for"
    [row] = letters
    assert (row["run_id"], row["kind"], row["error_type"]) == (refused_id, "internal_error", "RowRefused")
    assert row["error_message"] == letter["error"]["message"] and read_json(row["payload"]) == letter
    [shown] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert shown["kind"] == "internal_error" and not shown["replayable"]
    assert shown["letter"] == letter
    assert log.read_text().count(f"pipeline_runs refused run {refused_id}") == 1
