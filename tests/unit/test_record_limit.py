"""Runs whose records would be larger than the broker takes (``IA_MAX_RECORD_BYTES``): the run fails with
RecordTooLarge, and its result and dead letter are small enough to produce; nothing else is lost."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from ia_modules.pipeline.core import Pipeline, Step
from tests.unit.test_stage_runner import InMemoryTopics

LIMIT = 20_000


class Blob(Step):
    """Returns ``size`` characters (from the event), as a step that fetched a large document would."""

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * int(data.get("size", 1)), "n": data.get("n")}


class Boom(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"cannot take event {data.get('n')}")


def two_stages(second: str = "Blob") -> Pipeline:
    """make -> check (conditional, so a stage boundary: the run's envelope travels between them) -> ``second``."""
    step = {"module": __name__}
    return Pipeline.from_dict(
        {
            "steps": [
                {"id": "make", "step_class": "Blob", **step},
                {"id": "check", "step_class": second, **step},
            ],
            "flow": {
                "start_at": "make",
                "paths": [{"from": "make", "to": "check", "condition": {
                    "type": "expression", "config": {"source": "result.n", "operator": "exists"}}}],
            },
            "outputs": {"n": "{{ pipeline_input.n }}", "blob": "{{ check.blob }}"},
        }
    )  # fmt: skip


def events(*sizes: int) -> list[bytes]:
    return [orjson.dumps({"n": n, "size": size}) for n, size in enumerate(sizes)]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_run_too_large_to_forward_or_to_report_fails_with_a_small_result_and_letter(fuse: bool) -> None:
    topics = InMemoryTopics(two_stages(), fuse, max_record_bytes=LIMIT)
    await topics.run(events(10, 3 * LIMIT, 10))
    assert [r["source"]["offset"] for r in topics.outputs] == [0, 1, 2], "one result per event, the others intact"
    ok, big, after = topics.outputs
    assert ok["status"] == after["status"] == "success" and ok["outputs"] == {"n": 0, "blob": "x" * 10}
    assert big["status"] == "failed" and big["outputs"] is None and big["input"] == {"n": 1, "size": 3 * LIMIT}
    assert big["error"]["type"] == "RecordTooLarge"
    assert "IA_MAX_RECORD_BYTES" in big["error"]["message"] and f"{LIMIT:,}" in big["error"]["message"]
    [letter] = topics.dead_letters
    assert letter["kind"] == "run_failed" and letter["run_id"] == big["run_id"]
    assert letter["error"]["type"] == "RecordTooLarge"
    assert max(len(orjson.dumps(r)) for r in [*topics.outputs, letter]) <= LIMIT
    finished, written = topics.finished, topics.letters_for_sink
    assert [run.record["status"] for run in finished] == ["success", "failed", "success"]
    assert [w["run_id"] for w in written] == [big["run_id"]]


async def test_a_too_large_result_names_the_output_topic() -> None:
    big_output = Pipeline.from_dict(
        {
            "steps": [{"id": "make", "step_class": "Blob", "module": __name__}],
            "flow": {"start_at": "make", "paths": []},
        }
    )
    topics = InMemoryTopics(big_output, fuse=True, max_record_bytes=LIMIT)
    await topics.run(events(LIMIT + 1))  # one stage: the run's only record is its result
    [result] = topics.outputs
    assert result["status"] == "failed" and "result for ia." in result["error"]["message"]


async def test_a_dead_letter_too_large_keeps_what_went_wrong_and_drops_the_bulk() -> None:
    topics = InMemoryTopics(two_stages(second="Boom"), fuse=True, max_record_bytes=LIMIT)
    await topics.run(events(LIMIT))  # fits as an envelope, not twice over (input and envelope) in a letter
    [result] = topics.outputs
    assert result["status"] == "failed" and result["error"]["type"] == "ValueError"
    [letter] = topics.dead_letters
    assert letter["kind"] == "step_failed" and letter["error"]["message"] == "cannot take event 0"
    assert letter["envelope"] is None and letter["input"] is None
    assert letter["omitted"]["fields"] == ["envelope", "input"]
    assert letter["omitted"]["bytes"] > LIMIT >= len(orjson.dumps(letter))


async def test_a_bad_input_too_large_for_its_letter_keeps_the_reason_not_the_bytes() -> None:
    topics = InMemoryTopics(two_stages(), fuse=True, max_record_bytes=LIMIT)
    small, large = b"not json", b"not json " * (LIMIT // 8)
    await topics.run([small, large])
    first, second = topics.dead_letters
    assert base64.b64decode(first["raw"]) == small and "omitted" not in first
    assert second["raw"] is None and second["omitted"]["fields"] == ["raw"]
    assert second["error"]["message"].startswith("invalid JSON: ")


class Tiny(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {f"{self.name}_done": True}


async def test_a_join_whose_state_would_be_too_large_ends_the_run_once() -> None:
    """Three branches of 60 % of the limit each: the join's state after two of them is too large to keep. The
    run ends there (one result, one letter); the third branch's token finds the join closed."""
    step = {"module": __name__}
    pipeline = Pipeline.from_dict(
        {
            "steps": [
                {"id": "a", "step_class": "Tiny", **step},
                *({"id": branch, "step_class": "Blob", **step} for branch in "bcd"),
                {"id": "j", "step_class": "Tiny", **step},
            ],
            "flow": {
                "start_at": "a",
                "paths": [
                    *({"from": "a", "to": branch} for branch in "bcd"),
                    *({"from": branch, "to": "j"} for branch in "bcd"),
                ],
            },
            "outputs": {"b": "{{ b.n }}", "c": "{{ c.n }}", "d": "{{ d.n }}"},
            "stream": {"join_timeout_s": 60},
        }
    )
    topics = InMemoryTopics(pipeline, fuse=True, max_record_bytes=LIMIT)
    await topics.run(events(int(LIMIT * 0.6), 10))
    assert [r["source"]["offset"] for r in topics.outputs] == [0, 1]
    big, small = topics.outputs
    assert big["status"] == "failed" and big["error"]["type"] == "RecordTooLarge"
    assert "join state" in big["error"]["message"]
    assert small["status"] == "success" and small["outputs"] == {"b": 1, "c": 1, "d": 1}
    assert [letter["run_id"] for letter in topics.dead_letters] == [big["run_id"]]
    assert list(topics.store.waiting_since(2**62)) == [], "no join is left waiting (no timeout, no second result)"


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
async def test_a_branch_too_large_to_go_on_closes_the_join_its_sibling_goes_to(fuse: bool) -> None:
    """a fans out to b -> b2 and to c; both branches meet at j. b's output is too large to carry on (unfused: in
    the envelope to b2's stage; fused: in the join's state): the run ends there, once, and c's token, before or
    after, leaves nothing waiting at j to time out into a second result."""
    step = {"module": __name__}
    pipeline = Pipeline.from_dict(
        {
            "steps": [
                {"id": "a", "step_class": "Tiny", **step},
                {"id": "b", "step_class": "Blob", **step},
                {"id": "b2", "step_class": "Tiny", **step},
                {"id": "c", "step_class": "Tiny", **step},
                {"id": "j", "step_class": "Tiny", **step},
            ],
            "flow": {
                "start_at": "a",
                "paths": [{"from": "a", "to": "b"}, {"from": "b", "to": "b2"}, {"from": "a", "to": "c"},
                          {"from": "b2", "to": "j"}, {"from": "c", "to": "j"}],
            },
            "outputs": {"b": "{{ b.blob }}", "c": "{{ c.c_done }}"},
        }
    )  # fmt: skip
    topics = InMemoryTopics(pipeline, fuse, max_record_bytes=LIMIT)
    await topics.run(events(2 * LIMIT, 10))
    assert [(r["source"]["offset"], r["status"]) for r in topics.outputs] == [(0, "failed"), (1, "success")]
    assert topics.outputs[0]["error"]["type"] == "RecordTooLarge"
    assert list(topics.store.waiting_since(2**62)) == [], "no join is left waiting (no timeout, no second result)"
