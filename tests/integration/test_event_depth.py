"""A worker on a real Kafka given an event nested deeper than ``IA_MAX_JSON_DEPTH`` among good ones: one
``bad_input`` dead letter naming the depth and the limit, every other event's result once, and the worker goes on
consuming. The limit is set (50) to show the setting reaches the worker's stage runner; the default (100) is
checked by tests/unit/test_event_depth.py."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from tests.integration.streaming_support import (
    Namespace,
    WorkerProcess,
    collect,
    pipelines_dir_with,
    publish_raw,
    topic_record_count,
)
from tests.unit.test_event_depth import nested

pytestmark = pytest.mark.integration

LIMIT = 50


def feedback_nested(seq: int, levels: int) -> bytes:
    return nested(levels, customer_id=f"c{seq}", seq=seq, text="The parcel came a day late but in one piece.")


async def test_a_worker_files_an_event_nested_too_deep_as_bad_input_and_runs_every_other_one_once(
    kafka_broker: str, tmp_path: Path
) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    namespace = Namespace.fresh(kafka_broker)
    input_topic, output, dlq = (namespace.topic("custom_processing", s) for s in ("input", "output", "dlq"))
    worker = WorkerProcess(namespace, folder, tmp_path / "worker.log", IA_MAX_JSON_DEPTH=str(LIMIT))
    too_deep = feedback_nested(2, LIMIT + 1)
    try:
        await worker.wait_consuming()
        await publish_raw(kafka_broker, input_topic, [feedback_nested(0, 2), feedback_nested(1, LIMIT), too_deep])
        await publish_raw(kafka_broker, input_topic, [feedback_nested(3, 2)])
        letters = await collect(kafka_broker, dlq, 1)
        first = await collect(kafka_broker, output, 3)
        # and it goes on consuming
        await publish_raw(kafka_broker, input_topic, [feedback_nested(4, LIMIT), feedback_nested(5, 2)])
        results = await collect(kafka_broker, output, 5)
        status, body = worker.health()
        counts = await topic_record_count(kafka_broker, [output, dlq])
    finally:
        assert worker.stop() == 0
    log = (tmp_path / "worker.log").read_text()
    [letter] = letters
    assert (letter["kind"], letter["error"]["type"]) == ("bad_input", "BadInput")
    assert (
        letter["error"]["message"]
        == "the event nests 51 levels deep, over the 50 an event may have (IA_MAX_JSON_DEPTH)"
    )
    assert base64.b64decode(letter["raw"]) == too_deep, "the record is kept as it came"
    assert sorted(record["input"]["seq"] for record in first) == [0, 1, 3]
    assert sorted(record["input"]["seq"] for record in results) == [0, 1, 3, 4, 5], "each good event's result once"
    assert counts == {output: 5, dlq: 1}
    by_seq = {record["input"]["seq"]: record for record in results}
    assert {by_seq[seq]["status"] for seq in by_seq} == {by_seq[0]["status"]}, "the same text, at any depth allowed"
    assert by_seq[1]["input"] == orjson.loads(feedback_nested(1, LIMIT)), "an event at the limit travels whole"
    assert status == 200, f"the worker is still consuming: {body}"
    assert "internal error" not in log and "Traceback" not in log
