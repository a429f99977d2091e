"""The envelope's encoding and the identities it carries: run ids and partitions must never change."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka.partitioner import murmur2

from ia_modules.pipeline.wire import RUN_ID_NAMESPACE, run_id_for
from streams import envelope as envelope_module
from streams.envelope import Envelope, EnvelopeError, join_trace, partition_for


@pytest.mark.parametrize(
    ("cluster", "topic", "partition", "offset"),
    [("c", "t", 0, 0), ("MkU3OEVBNTcwNTJENDM2Qk", "ia.orders.input", 3, 1_234_567), ("ü-cluster", "ia.é", 11, 9)],
)
def test_run_id_is_uuid5_of_cluster_topic_partition_offset(
    cluster: str, topic: str, partition: int, offset: int
) -> None:
    expected = uuid.uuid5(RUN_ID_NAMESPACE, f"{cluster}:{topic}:{partition}:{offset}")
    assert run_id_for(cluster, topic, partition, offset) == str(expected)
    assert uuid.UUID(run_id_for(cluster, topic, partition, offset)).version == 5


def test_run_id_is_uuid5_for_every_offset_of_a_partition() -> None:
    """The hashed prefix is reused across offsets (and the variant digit takes all four values)."""
    for offset in range(2_000):
        assert run_id_for("c", "ia.p.input", 2, offset) == str(uuid.uuid5(RUN_ID_NAMESPACE, f"c:ia.p.input:2:{offset}"))


def test_run_ids_differ_by_offset_and_by_cluster() -> None:
    ids = {run_id_for(c, "t", 0, o) for c in ("a", "b") for o in range(100)}
    assert len(ids) == 200


def test_partition_is_kafkas_default_partitioner_and_survives_its_cache_emptying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(envelope_module, "_PARTITION_CACHE_SIZE", 8)
    monkeypatch.setattr(envelope_module, "_partitions_of_keys", {})
    keys = [f"customer-{i}".encode() for i in range(50)]
    for _ in range(2):
        for key in keys:
            for partitions in (1, 4, 12):
                assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions
    assert len(envelope_module._partitions_of_keys) <= 8


def _envelope() -> Envelope:
    return Envelope(
        run_id="r",
        pipeline="p",
        version="1",
        key="k",
        input={"a": 1, "text": "line one\nline two"},
        resume_at="s",
        outputs={"x": {"y": [1, 2]}},
        trace_json=orjson.dumps([{"step": "x", "status": "ok"}]),
        join_tokens={3: "run", 4: "skip"},
        carried={"join": {5: "skip"}, "<end>": {7: "fail"}},
        replay=2,
        replay_from="s",
    )


def test_envelope_round_trip_keeps_everything_and_the_trace_as_sent() -> None:
    sent = _envelope()
    raw = sent.encode()
    assert raw.count(b"\n") == 2, "header, trace and input lines (newlines inside strings are escaped)"
    received = Envelope.decode(raw, "p")
    assert received == sent
    assert received.trace() == [{"step": "x", "status": "ok"}]
    assert received.encode() == raw


def test_the_dead_letter_form_is_one_object_and_decodes_to_the_same_run() -> None:
    sent = _envelope()
    letter_form = sent.as_dict()
    assert letter_form["v"] == 1 and letter_form["input"] == sent.input
    assert letter_form["trace"] == [{"step": "x", "status": "ok"}]
    assert letter_form["join_tokens"] == {"3": "run", "4": "skip"}, "as JSON has it"
    replayed = Envelope.decode(orjson.dumps(letter_form), "p")
    assert replayed.input == sent.input and replayed.trace() == sent.trace()
    assert (replayed.join_tokens, replayed.carried, replayed.replay) == (sent.join_tokens, sent.carried, 2)


def test_join_trace_appends_entries_to_encoded_entries() -> None:
    first = [{"step": "a"}]
    assert join_trace(b"[]", []) == b"[]"
    assert orjson.loads(join_trace(b"[]", first)) == first
    assert join_trace(orjson.dumps(first), []) == orjson.dumps(first)
    assert orjson.loads(join_trace(orjson.dumps(first), [{"step": "b"}, {"step": "c"}])) == [
        {"step": "a"},
        {"step": "b"},
        {"step": "c"},
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "empty message"),
        (b"{", "not JSON"),
        (b"[1]", "not an envelope of version"),
        (b'{"v": 2, "pipeline": "p"}', "not an envelope of version"),
        (b'{"v": 2, "pipeline": "p", "run_id": "r", "version": "1", "key": "k", "resume_at": "s"}\n[]\n[1]',
         "malformed envelope: ValueError: the input is list, not an object"),
        (b'{"v": 2, "pipeline": "p", "run_id": "r", "version": "1", "key": "k", "resume_at": "s"}\n[]\n{',
         "malformed envelope: JSONDecodeError"),
        (b'{"v": 1, "pipeline": "q"}', "an envelope of pipeline 'q', not 'p'"),
        (b'{"v": 1, "pipeline": "p"}', "malformed envelope: KeyError"),
        (b'{"v": 1, "pipeline": "p", "run_id": "r", "version": "1", "key": "k", "input": {}, "resume_at": "s",'
         b' "carried": {"j": {"x": "run"}}}', "malformed envelope: ValueError"),
    ],
)  # fmt: skip
def test_what_is_not_an_envelope_says_what_is_wrong(raw: bytes | None, problem: str) -> None:
    with pytest.raises(EnvelopeError, match=problem):
        Envelope.decode(raw, "p")
