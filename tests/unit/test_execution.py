"""Execution semantics (DESIGN.md section 4) through run_pipeline / Pipeline.run with small real steps: data
merging, fan-out, joins with dead-path elimination, terminals, outputs, retry/timeout/on_error, execution ids,
the trace, the result record and the result mapping."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ia_modules.pipeline import (
    Pipeline,
    PipelineResult,
    ServiceRegistry,
    Step,
    StepOutputError,
    run_pipeline,
    run_pipeline_from_json,
)
from ia_modules.pipeline.kernel import backoff_delay
from ia_modules.pipeline.models import RetryPolicy
from tests.unit.sample_steps import MODULE


def step(step_id: str, cls: str = "ConstStep", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "step_class": cls, "module": MODULE, **extra}


def const(step_id: str, **output: Any) -> dict[str, Any]:
    return step(step_id, config={"output": output})


def path(source: str, target: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"from": source, "to": target, **({"condition": condition} if condition else {})}


def expr(source: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "expression", "config": {"source": source, "operator": operator, "value": value}}


YES = expr("pipeline_input.go", "is_true")
NO = expr("pipeline_input.go", "is_false")


def pipeline(steps: list[dict[str, Any]], paths: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "Test pipe", "steps": steps, "flow": {"start_at": steps[0]["id"], "paths": paths}, **extra}


def services(**named: Any) -> ServiceRegistry:
    registry = ServiceRegistry()
    for name, service in named.items():
        registry.register(name, service)
    return registry


def trace_of(result: PipelineResult) -> dict[str, dict[str, Any]]:
    entries = {entry["step"]: entry for entry in result.trace}
    assert len(entries) == len(result.trace), "one trace entry per step reached"
    return entries


def statuses(result: PipelineResult) -> dict[str, str]:
    return {step_id: entry["status"] for step_id, entry in trace_of(result).items()}


# -- data merging ----------------------------------------------------------------------------------------------------


def join_config(first: str, second: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """s -> p1, s -> p2, then p1 -> j and p2 -> j in the order given (the order of the paths into the join)."""
    return pipeline(
        [
            const("s", x="s", s_only=1),
            const("p1", x="p1", k="p1", p1_only=1),
            const("p2", x="p2", p2_only=1),
            step("j", "CaptureStep", inputs=inputs or {}),
        ],
        [path("s", "p1"), path("s", "p2"), path(first, "j"), path(second, "j")],
    )


async def test_data_is_input_then_predecessors_in_path_order_then_inputs() -> None:
    config = join_config("p1", "p2", inputs={"y": "{{ p1.k }}", "k": "{{ pipeline_input.k }}-from-inputs"})
    result = await run_pipeline(config, {"x": "input", "k": "input", "in_only": True})
    assert result["j"]["received"] == {
        "x": "p2",  # the later path into the join wins over the earlier one and over the input
        "k": "input-from-inputs",  # resolved inputs win over everything
        "in_only": True,
        "p1_only": 1,
        "p2_only": 1,
        "y": "p1",
    }


async def test_later_path_wins_follows_the_file_order_of_paths() -> None:
    result = await run_pipeline(join_config("p2", "p1"), {"x": "input"})
    assert result["j"]["received"]["x"] == "p1"


async def test_only_direct_predecessors_are_merged() -> None:
    result = await run_pipeline(join_config("p1", "p2"), {})
    assert "s_only" not in result["j"]["received"]


async def test_a_predecessor_that_did_not_run_is_not_merged() -> None:
    config = join_config("p1", "p2")
    config["flow"]["paths"][1]["condition"] = NO  # s -> p2 not taken
    result = await run_pipeline(config, {"go": True})
    assert result["j"]["received"] == {"go": True, "x": "p1", "k": "p1", "p1_only": 1}
    assert "p2" not in result


async def test_a_single_predecessor_is_merged_over_the_input() -> None:
    config = pipeline([const("a", v="a", extra=[1, 2]), step("b", "CaptureStep")], [path("a", "b")])
    result = await run_pipeline(config, {"v": "input", "w": 1})
    assert result["b"]["received"] == {"v": "a", "w": 1, "extra": [1, 2]}


async def test_a_missing_input_is_present_as_null() -> None:
    config = pipeline(
        [step("a", "CaptureStep", inputs={"raw": "{{ pipeline_input.body || pipeline_input.text }}"})], []
    )
    assert (await run_pipeline(config, {}))["a"]["received"] == {"raw": None}
    assert (await run_pipeline(config, {"text": "t"}))["a"]["received"] == {"text": "t", "raw": "t"}
    assert (await run_pipeline(config, {"body": "", "text": "t"}))["a"]["received"]["raw"] == ""


async def test_inputs_keep_types_and_read_parameters_and_upstream_steps() -> None:
    config = pipeline(
        [
            const("a", score=0.75, rows=[{"id": 1}]),
            step(
                "b",
                "CaptureStep",
                inputs={
                    "score": "{{ steps.a.result.score }}",
                    "first": "{{ a.rows.0.id }}",
                    "limit": "{{ parameters.limit }}",
                    "label": "score={{ a.score }}",
                },
            ),
        ],
        [path("a", "b")],
        parameters={"limit": 5},
    )
    received = (await run_pipeline(config, {}))["b"]["received"]
    assert {k: received[k] for k in ("score", "first", "limit", "label")} == {
        "score": 0.75,
        "first": 1,
        "limit": 5,
        "label": "score=0.75",
    }


async def test_step_config_is_resolved_from_parameters() -> None:
    config = pipeline([step("a", "ConfigStep", config={"t": "{{ parameters.t }}", "fixed": [1]})], [])
    config["parameters"] = {"t": 0.8}
    assert (await run_pipeline(config, {}))["a"] == {"config": {"t": 0.8, "fixed": [1]}}


# -- fan-out ---------------------------------------------------------------------------------------------------------


async def test_every_matching_path_is_taken() -> None:
    config = pipeline(
        [const("s", n=5), const("a", a=1), const("b", b=1), const("c", c=1)],
        [
            path("s", "a", expr("result.n", ">", 1)),
            path("s", "b", expr("result.n", "<", 10)),
            path("s", "c", expr("result.n", ">", 10)),
        ],
    )
    result = await run_pipeline(config, {})
    assert statuses(result) == {"s": "ok", "a": "ok", "b": "ok", "c": "skipped"}
    assert sorted(result) == ["a", "b", "s"]
    routes = trace_of(result)["s"]["routes"]
    assert [(r["to"], r["taken"], r["observed"]) for r in routes] == [("a", True, 5), ("b", True, 5), ("c", False, 5)]


async def test_parallel_branches_run_concurrently() -> None:
    # Each branch sets its own event and waits for the other's: run one after the other, the first would wait
    # until its timeout and fail.
    config = pipeline(
        [
            const("s"),
            step("left", "RendezvousStep", config={"set": "L", "wait": "R"}, timeout_s=5),
            step("right", "RendezvousStep", config={"set": "R", "wait": "L"}, timeout_s=5),
            step("j", "CaptureStep"),
        ],
        [path("s", "left"), path("s", "right"), path("left", "j"), path("right", "j")],
    )
    result = await asyncio.wait_for(run_pipeline(config, {}, services(events=defaultdict(asyncio.Event))), 10)
    assert result.status == "success", result.error
    assert result["j"]["received"] == {"left": "met", "right": "met"}


async def test_a_skipped_branch_skips_everything_below_it() -> None:
    config = pipeline(
        [const("s"), const("a"), const("a2"), const("a3"), const("b", b=1)],
        [path("s", "a", NO), path("a", "a2"), path("a2", "a3"), path("s", "b")],
    )
    result = await run_pipeline(config, {"go": True})
    assert statuses(result) == {"s": "ok", "a": "skipped", "a2": "skipped", "a3": "skipped", "b": "ok"}
    assert trace_of(result)["a2"]["reason"] == "no path to it was taken"
    assert result.status == "success"


# -- joins and dead-path elimination ---------------------------------------------------------------------------------


def diamond(left: dict[str, Any] | None, right: dict[str, Any] | None, **steps: dict[str, Any]) -> dict[str, Any]:
    """s -> a (left), s -> b (right), a -> j, b -> j, j -> after."""
    return pipeline(
        [
            steps.get("s", step("s", "CountingStep")),
            steps.get("a", step("a", "CountingStep", config={"output": {"from_a": 1}})),
            steps.get("b", step("b", "CountingStep", config={"output": {"from_b": 1}})),
            steps.get("j", step("j", "CountingStep", config={"output": {"joined": True}})),
            steps.get("after", step("after", "CountingStep")),
        ],
        [path("s", "a", left), path("s", "b", right), path("a", "j"), path("b", "j"), path("j", "after")],
    )


async def test_join_runs_once_when_both_branches_run() -> None:
    calls: list[str] = []
    result = await run_pipeline(diamond(None, None), {}, services(calls=calls))
    assert sorted(calls) == ["a", "after", "b", "j", "s"]
    assert calls.count("j") == 1
    assert calls.index("j") > max(calls.index("a"), calls.index("b"))
    assert result.status == "success"


async def test_join_runs_once_when_one_branch_runs() -> None:
    calls: list[str] = []
    result = await run_pipeline(diamond(YES, NO), {"go": True}, services(calls=calls))
    assert calls == ["s", "a", "j", "after"]
    assert statuses(result) == {"s": "ok", "a": "ok", "b": "skipped", "j": "ok", "after": "ok"}


async def test_join_is_skipped_when_every_branch_is_skipped() -> None:
    calls: list[str] = []
    result = await run_pipeline(diamond(NO, NO), {"go": True}, services(calls=calls))
    assert calls == ["s"]
    assert statuses(result) == {"s": "ok", "a": "skipped", "b": "skipped", "j": "skipped", "after": "skipped"}
    assert result.status == "success"
    assert result.error is None


async def test_a_failed_branch_fails_the_join_without_running_it() -> None:
    calls: list[str] = []
    config = diamond(None, None, a=step("a", "FailStep", config={"message": "left broke"}))
    result = await asyncio.wait_for(run_pipeline(config, {}, services(calls=calls)), 5)
    assert sorted(calls) == ["a", "b", "s"]  # the other branch still ran; the join and below did not
    entries = trace_of(result)
    assert statuses(result) == {"s": "ok", "a": "failed", "b": "ok", "j": "skipped", "after": "skipped"}
    assert entries["j"]["reason"] == "upstream failed"
    assert entries["after"]["reason"] == "upstream failed"
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error["step"], result.error["type"], result.error["message"]) == ("a", "ValueError", "left broke")


async def test_a_failed_branch_and_a_skipped_branch_fail_the_join() -> None:
    calls: list[str] = []
    config = diamond(None, NO, a=step("a", "FailStep"))
    result = await run_pipeline(config, {"go": True}, services(calls=calls))
    assert calls == ["s", "a"]
    assert statuses(result)["j"] == "skipped"
    assert trace_of(result)["j"]["reason"] == "upstream failed"
    assert result.status == "failed"


async def test_a_join_waits_for_a_slow_branch() -> None:
    calls: list[str] = []
    config = diamond(None, None, a=step("a", "RendezvousStep", config={"set": "a_started", "wait": "release"}))

    async def release_later(events: dict[str, asyncio.Event]) -> None:
        await events["a_started"].wait()
        await asyncio.sleep(0.02)
        calls.append("released")
        events["release"].set()

    events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
    releaser = asyncio.create_task(release_later(events))
    result = await run_pipeline(config, {}, services(calls=calls, events=events))
    await releaser
    assert calls.index("j") > calls.index("released") > calls.index("b")
    assert result["j"] == {"joined": True}
    assert calls.count("j") == 1


async def test_nested_joins_and_dead_paths() -> None:
    # s -> a -> c, s -> b -> c, c -> e, s -> d -> e: d is skipped, c runs once, e runs once with c only.
    calls: list[str] = []
    config = pipeline(
        [step(x, "CountingStep", config={"output": {x: True}}) for x in ["s", "a", "b", "c", "d", "e"]],
        [
            path("s", "a"),
            path("s", "b"),
            path("a", "c"),
            path("b", "c"),
            path("s", "d", NO),
            path("c", "e"),
            path("d", "e"),
        ],
    )
    result = await run_pipeline(config, {"go": True}, services(calls=calls))
    assert sorted(calls) == ["a", "b", "c", "e", "s"]
    assert statuses(result)["d"] == "skipped"
    assert result.outputs == {"e": True}


# -- terminals -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["end", "end_with_success"])
async def test_end_and_end_with_success_finish_successfully(terminal: str) -> None:
    config = pipeline([const("a", v=1), const("b")], [path("a", terminal, YES), path("a", "b", NO)])
    result = await run_pipeline(config, {"go": True})
    assert result.status == "success"
    assert result.error is None
    assert statuses(result) == {"a": "ok", "b": "skipped"}
    routes = trace_of(result)["a"]["routes"]
    assert [(r["to"], r["taken"]) for r in routes] == [(terminal, True), ("b", False)]


async def test_end_with_failure_fails_the_run_and_names_the_step() -> None:
    config = pipeline(
        [const("check", ok=False), const("next")],
        [
            path("check", "end_with_failure", expr("result.ok", "is_false")),
            path("check", "next", expr("result.ok", "is_true")),
        ],
    )
    result = await run_pipeline(config, {})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "EndWithFailure"
    assert result.error["step"] == "check"
    assert "end_with_failure" in result.error["message"]
    assert statuses(result) == {"check": "ok", "next": "skipped"}
    assert result["check"] == {"ok": False}


async def test_end_with_failure_not_taken_leaves_the_run_a_success() -> None:
    config = pipeline([const("check", ok=True)], [path("check", "end_with_failure", expr("result.ok", "is_false"))])
    result = await run_pipeline(config, {})
    assert result.status == "success"
    assert trace_of(result)["check"]["routes"] == [{"to": "end_with_failure", "taken": False, "observed": True}]


# -- outputs ---------------------------------------------------------------------------------------------------------


async def test_outputs_are_resolved_at_the_end_and_missing_values_are_null() -> None:
    config = pipeline(
        [const("a", score=0.9, items=[1, 2]), const("b", label="x"), const("c", never=1)],
        [path("a", "b"), path("a", "c", NO)],
        parameters={"p": "param"},
        outputs={
            "score": "{{ a.score }}",
            "label": "{{ steps.b.result.label }}",
            "from_skipped": "{{ c.never }}",
            "absent": "{{ b.absent }}",
            "fallback": "{{ c.never || b.label }}",
            "text": "{{ b.label }}-{{ a.items }}",
            "param": "{{ parameters.p }}",
            "input": "{{ pipeline_input.go }}",
            "nested": ["{{ a.items.1 }}", {"k": "{{ b.label }}"}],
        },
    )
    result = await run_pipeline(config, {"go": True})
    assert result.outputs == {
        "score": 0.9,
        "label": "x",
        "from_skipped": None,
        "absent": None,
        "fallback": "x",
        "text": "x-[1,2]",
        "param": "param",
        "input": True,
        "nested": [2, {"k": "x"}],
    }


async def test_outputs_can_be_a_single_template() -> None:
    config = pipeline([const("a", v=1)], [], outputs="{{ a }}")
    assert (await run_pipeline(config, {})).outputs == {"v": 1}


async def test_without_outputs_the_last_steps_that_ran_are_merged() -> None:
    config = pipeline(
        [const("s", s=1), const("a", a=1, shared="a"), const("b", b=1, shared="b"), const("c", c=1)],
        [path("s", "a"), path("s", "b"), path("s", "c", NO)],
    )
    result = await run_pipeline(config, {"go": True})
    assert result.outputs == {"a": 1, "b": 1, "shared": "b"}


async def test_without_outputs_a_failed_run_merges_what_ran() -> None:
    config = pipeline([const("s", s=1), const("a", a=1), step("b", "FailStep")], [path("s", "a"), path("s", "b")])
    result = await run_pipeline(config, {})
    assert result.status == "failed"
    assert result.outputs == {"a": 1}


async def test_without_outputs_a_terminal_path_marks_a_last_step() -> None:
    config = pipeline([const("a", a=1), const("b", b=1)], [path("a", "end", YES), path("a", "b", NO)])
    assert (await run_pipeline(config, {"go": True})).outputs == {"a": 1}


# -- retry, timeout, on_error ----------------------------------------------------------------------------------------


async def test_retry_until_success() -> None:
    config = pipeline(
        [step("flaky", "FlakyStep", config={"failures": 2}, retry={"max_attempts": 3, "backoff_s": 0})], []
    )
    result = await run_pipeline(config, {})
    assert result.status == "success", result.error
    assert result["flaky"] == {"succeeded_on": 3}
    entry = trace_of(result)["flaky"]
    assert (entry["status"], entry["attempts"]) == ("ok", 3)


async def test_retries_exhausted_fail_the_step() -> None:
    config = pipeline(
        [step("flaky", "FlakyStep", config={"failures": 5}, retry={"max_attempts": 3, "backoff_s": 0}), const("b")],
        [path("flaky", "b")],
    )
    result = await run_pipeline(config, {})
    assert result.status == "failed"
    entry = trace_of(result)["flaky"]
    assert (entry["status"], entry["attempts"]) == ("failed", 3)
    assert entry["error"] == {"type": "ConnectionError", "message": "flaky attempt 3"}
    assert result.error is not None
    assert {k: result.error[k] for k in ("step", "type", "message", "attempts")} == {
        "step": "flaky",
        "type": "ConnectionError",
        "message": "flaky attempt 3",
        "attempts": 3,
    }
    assert "ConnectionError: flaky attempt 3" in result.error["traceback"]
    assert statuses(result)["b"] == "skipped"
    assert "flaky" not in result


async def test_no_retry_by_default() -> None:
    result = await run_pipeline(pipeline([step("flaky", "FlakyStep", config={"failures": 1})], []), {})
    assert result.status == "failed"
    assert trace_of(result)["flaky"]["attempts"] == 1


async def test_retries_wait_with_backoff() -> None:
    config = pipeline(
        [step("flaky", "FlakyStep", config={"failures": 2}, retry={"max_attempts": 3, "backoff_s": 0.04})], []
    )
    started = time.monotonic()
    result = await run_pipeline(config, {})
    elapsed = time.monotonic() - started
    assert result.status == "success"
    assert elapsed >= 0.04 * 0.5 + 0.08 * 0.5  # at least half of 0.04 then half of 0.08 (jitter)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_s=0.1, max_backoff_s=1.0)
    for attempt in range(1, 10):
        ceiling = min(1.0, 0.1 * 2 ** (attempt - 1))
        delays = [backoff_delay(policy, attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter
    assert backoff_delay(RetryPolicy(backoff_s=0), 3) == 0


async def test_timeout_fails_each_attempt_with_a_timeout_error() -> None:
    calls: list[str] = []
    config = pipeline(
        [step("hang", "HangStep", timeout_s=0.05, retry={"max_attempts": 2, "backoff_s": 0})],
        [],
    )
    started = time.monotonic()
    result = await asyncio.wait_for(run_pipeline(config, {}, services(calls=calls)), 5)
    assert time.monotonic() - started >= 0.1
    assert calls == ["hang", "hang"]
    assert result.status == "failed"
    entry = trace_of(result)["hang"]
    assert (entry["status"], entry["attempts"]) == ("failed", 2)
    assert entry["error"]["type"] == "TimeoutError"
    assert result.error is not None
    assert (result.error["type"], result.error["attempts"]) == ("TimeoutError", 2)
    assert result.error["message"] == "step 'hang' timed out after 0.05s"


async def test_a_timed_out_step_does_not_cancel_the_run_or_its_siblings() -> None:
    config = pipeline(
        [const("s"), step("hang", "HangStep", timeout_s=0.05, on_error="continue"), const("other", other=1)],
        [path("s", "hang"), path("s", "other")],
    )
    result = await run_pipeline(config, {}, services(calls=[]))
    assert result.status == "success"
    assert result["other"] == {"other": 1}
    assert result["hang"]["error"]["type"] == "TimeoutError"


async def test_on_error_continue_turns_the_output_into_a_failure_record_and_routes_on() -> None:
    config = pipeline(
        [
            step("risky", "FailStep", config={"message": "bad record"}, on_error="continue"),
            step("handle", "CaptureStep"),
            const("normal"),
        ],
        [
            path("risky", "handle", expr("result.status", "==", "failed")),
            path("risky", "normal", expr("result.status", "!=", "failed")),
        ],
    )
    result = await run_pipeline(config, {"id": 7})
    assert result.status == "success"
    assert result.error is None
    failure = {"status": "failed", "error": {"type": "ValueError", "message": "bad record"}}
    assert result["risky"] == failure
    assert result["handle"]["received"] == {"id": 7, **failure}
    entries = trace_of(result)
    assert entries["risky"]["status"] == "failed"
    assert entries["risky"]["on_error"] == "continue"
    assert statuses(result) == {"risky": "failed", "handle": "ok", "normal": "skipped"}


async def test_on_error_continue_after_retries() -> None:
    config = pipeline(
        [
            step(
                "flaky",
                "FlakyStep",
                config={"failures": 9},
                retry={"max_attempts": 2, "backoff_s": 0},
                on_error="continue",
            )
        ],
        [],
    )
    result = await run_pipeline(config, {})
    assert result.status == "success"
    assert result["flaky"] == {"status": "failed", "error": {"type": "ConnectionError", "message": "flaky attempt 2"}}
    assert trace_of(result)["flaky"]["attempts"] == 2
    assert result.outputs == result["flaky"]


async def test_on_error_fail_fails_the_run_and_names_step_type_message_attempts() -> None:
    config = pipeline(
        [const("a"), step("b", "FailStep", config={"message": "no good"}), const("c")], [path("a", "b"), path("b", "c")]
    )
    result = await run_pipeline(config, {"x": 1})
    assert result.status == "failed"
    assert result.error is not None
    assert set(result.error) >= {"step", "type", "message", "attempts", "traceback"}
    assert (result.error["step"], result.error["type"], result.error["message"], result.error["attempts"]) == (
        "b",
        "ValueError",
        "no good",
        1,
    )
    assert list(result) == ["a"]
    assert statuses(result) == {"a": "ok", "b": "failed", "c": "skipped"}


async def test_the_first_failure_is_the_run_error() -> None:
    config = pipeline(
        [
            const("s"),
            step("a", "FailStep", config={"message": "first"}),
            step("b", "FailStep", config={"message": "second"}),
        ],
        [path("s", "a"), path("a", "b")],
    )
    result = await run_pipeline(config, {})
    assert result.error is not None and result.error["message"] == "first"


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("list", "returned list, expected a dict"),
        ("none", "returned NoneType, expected a dict"),
        ("set", "not JSON-serialisable"),
        ("int_keys", "not JSON-serialisable"),
    ],
)
async def test_a_step_returning_a_non_dict_or_non_json_fails_clearly(kind: str, fragment: str) -> None:
    config = pipeline(
        [step("bad", "BadOutputStep", config={"kind": kind}, retry={"max_attempts": 3, "backoff_s": 0})], []
    )
    result = await run_pipeline(config, {})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "StepOutputError"
    assert result.error["step"] == "bad"
    assert fragment in result.error["message"]
    assert "'bad'" in result.error["message"]
    assert result.error["attempts"] == 1  # a wrong return type is not retried


async def test_step_outputs_are_what_json_gives_back() -> None:
    assert (await run_pipeline(pipeline([step("a", "TupleStep")], []), {}))["a"] == {"t": [1, 2]}


async def test_a_raising_condition_function_fails_the_run_without_raising() -> None:
    config = pipeline(
        [const("a"), const("b")],
        [path("a", "b", {"type": "function", "config": {"function": f"{MODULE}:raises"}})],
    )
    result = await run_pipeline(config, {})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "ConditionError"
    assert "KeyError" in result.error["message"]
    assert statuses(result) == {"a": "ok", "b": "skipped"}


async def test_function_conditions_route_with_the_run_context() -> None:
    config = pipeline(
        [const("a", score=0.9), const("hi"), const("lo")],
        [
            path(
                "a",
                "hi",
                {"type": "function", "config": {"function": f"{MODULE}:async_score_above", "args": {"threshold": 0.5}}},
            ),
            path(
                "a",
                "lo",
                {"type": "function", "config": {"function": f"{MODULE}:score_above", "args": {"threshold": 0.95}}},
            ),
        ],
    )
    result = await run_pipeline(config, {})
    assert statuses(result) == {"a": "ok", "hi": "ok", "lo": "skipped"}


async def test_an_incomparable_observed_value_skips_the_path_and_says_why() -> None:
    config = pipeline([const("a", score="high"), const("b")], [path("a", "b", expr("result.score", ">", 0.5))])
    result = await run_pipeline(config, {})
    assert result.status == "success"
    [route] = trace_of(result)["a"]["routes"]
    assert (route["to"], route["taken"], route["observed"]) == ("b", False, "high")
    assert "cannot order str against float" in route["note"]


# -- execution id ----------------------------------------------------------------------------------------------------


async def test_each_concurrent_run_sees_its_own_execution_id() -> None:
    pipe = Pipeline.from_dict(
        pipeline(
            [const("s"), step("left", "ExecutionIdStep"), step("right", "ExecutionIdStep")],
            [path("s", "left"), path("s", "right")],
        )
    )
    registry = ServiceRegistry()
    results = await asyncio.gather(*(pipe.run({"tag": i}, registry) for i in range(40)))
    assert len({r.run_id for r in results}) == 40
    for i, result in enumerate(results):
        for branch in ("left", "right"):
            assert result[branch] == {"before": result.run_id, "after": result.run_id, "tag": i}
    assert registry.get("execution_id") is None  # outside a run there is none


async def test_execution_id_with_the_default_services_and_a_given_run_id() -> None:
    pipe = Pipeline.from_dict(pipeline([step("a", "ExecutionIdStep")], []))
    result = await pipe.run({}, run_id="run-42")
    assert result.run_id == "run-42"
    assert result["a"]["before"] == "run-42"


def test_a_registered_execution_id_service_wins() -> None:
    registry = services(execution_id="fixed")
    assert registry.get("execution_id") == "fixed"


# -- trace -----------------------------------------------------------------------------------------------------------


async def test_trace_shape() -> None:
    config = pipeline(
        [const("a", score=0.4), const("high"), const("low"), step("bad", "FailStep", on_error="continue")],
        [
            path("a", "high", expr("result.score", ">", 0.5)),
            path("a", "low", expr("result.score", "<=", 0.5)),
            path("a", "bad", expr("result.missing", "exists")),
            path("low", "end_with_success"),
        ],
    )
    result = await run_pipeline(config, {})
    entries = trace_of(result)
    assert set(entries) == {"a", "high", "low", "bad"}
    for entry in result.trace:
        assert {"step", "status", "attempts", "duration_ms", "routes"} <= set(entry)
        assert entry["status"] in ("ok", "skipped", "failed")
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        for route in entry["routes"]:
            assert {"to", "taken", "observed"} <= set(route)
    a = entries["a"]
    assert (a["status"], a["attempts"]) == ("ok", 1)
    assert [{k: r[k] for k in ("to", "taken", "observed")} for r in a["routes"]] == [
        {"to": "high", "taken": False, "observed": 0.4},
        {"to": "low", "taken": True, "observed": 0.4},
        {"to": "bad", "taken": False, "observed": None},
    ]
    assert entries["low"]["routes"] == [{"to": "end_with_success", "taken": True, "observed": None}]
    assert entries["high"]["routes"] == [
        {"to": "end", "taken": False, "observed": None, "note": "no path to it was taken"}
    ]
    assert (entries["high"]["status"], entries["high"]["attempts"]) == ("skipped", 0)
    assert entries["bad"]["status"] == "skipped"
    assert entries["a"]["started_at"].endswith("Z")
    orjson.dumps(result.trace)


async def test_trace_of_a_linear_run_is_in_order() -> None:
    config = pipeline([const("a"), const("b"), const("c")], [path("a", "b"), path("b", "c")])
    result = await run_pipeline(config, {})
    assert [e["step"] for e in result.trace] == ["a", "b", "c"]
    assert trace_of(result)["c"]["routes"] == [{"to": "end", "taken": True, "observed": None}]


# -- the result ------------------------------------------------------------------------------------------------------


async def test_result_record_shape() -> None:
    config = pipeline([const("a", v=1)], [], version="1.2.0", outputs={"v": "{{ a.v }}"})
    result = await run_pipeline(config, {"in": 1})
    record = result.to_record()
    assert list(record) == [
        "run_id",
        "pipeline",
        "pipeline_version",
        "status",
        "outputs",
        "error",
        "trace",
        "input",
        "source",
    ]
    assert record["run_id"] == result.run_id
    assert record["pipeline"] == "test_pipe"
    assert record["pipeline_version"] == "1.2.0"
    assert (record["status"], record["outputs"], record["error"], record["source"]) == ("success", {"v": 1}, None, None)
    assert record["input"] == {"in": 1}
    assert record["trace"] == result.trace
    assert orjson.loads(orjson.dumps(record)) == record


async def test_failed_result_record_has_the_error_and_source_when_given() -> None:
    pipe = Pipeline.from_dict(pipeline([step("a", "FailStep")], [], stream={"id": "named"}))
    source = {"topic": "ia.named.input", "partition": 0, "offset": 5, "timestamp": 1}
    record = (await pipe.run({}, source=source)).to_record()
    assert record["pipeline"] == "named"
    assert record["status"] == "failed"
    assert record["error"]["step"] == "a"
    assert record["source"] == source
    json.dumps(record)


async def test_result_is_a_read_only_mapping_of_step_outputs() -> None:
    config = pipeline([const("a", v=1), const("b", w=2), const("c")], [path("a", "b"), path("a", "c", NO)])
    result = await run_pipeline(config, {"go": True})
    assert isinstance(result, Mapping)
    assert result["a"]["v"] == 1
    assert result["b"] == {"w": 2}
    assert list(result) == ["a", "b"]
    assert len(result) == 2
    assert "c" not in result
    assert dict(result) == {"a": {"v": 1}, "b": {"w": 2}}
    with pytest.raises(KeyError):
        result["c"]
    with pytest.raises(TypeError):
        result["a"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        del result["a"]  # type: ignore[attr-defined]
    assert not hasattr(result, "update")
    assert result.succeeded is True


async def test_run_pipeline_from_json_with_a_file(tmp_path: Path) -> None:
    file = tmp_path / "transform.json"
    config = pipeline(
        [
            step(
                "transform_step",
                "CaptureStep",
                inputs={"text": "{{ pipeline_input.text }}"},
                config={"output": {"transformed_text": "HI"}},
            )
        ],
        [],
    )
    file.write_text(json.dumps(config), encoding="utf-8")
    calls: list[str] = []
    result = await run_pipeline_from_json(str(file), {"text": "hi"}, services(calls=calls))
    assert result["transform_step"]["transformed_text"] == "HI"
    assert result.status == "success"
    assert result.pipeline == "transform"
    assert result.outputs == {"received": {"text": "hi"}, "transformed_text": "HI"}
    result = await run_pipeline_from_json(file, {"text": "again"})
    assert result["transform_step"]["received"] == {"text": "again"}


async def test_input_must_be_an_object() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        await run_pipeline(pipeline([const("a")], []), [1, 2])  # type: ignore[arg-type]


async def test_a_loaded_pipeline_runs_many_times_independently() -> None:
    pipe = Pipeline.from_dict(
        pipeline([const("s"), const("a", a=1), const("b", b=1)], [path("s", "a", YES), path("s", "b", NO)])
    )
    first, second = await pipe.run({"go": True}), await pipe.run({"go": False})
    assert list(first) == ["s", "a"]
    assert list(second) == ["s", "b"]
    assert first.run_id != second.run_id
    assert (await run_pipeline(pipe, {"go": True})).outputs == {"a": 1}


# -- services --------------------------------------------------------------------------------------------------------


class _Service:
    def __init__(self, log: list[str], name: str, fail_cleanup: bool = False) -> None:
        self.log, self.name, self.fail_cleanup = log, name, fail_cleanup

    async def initialize(self) -> None:
        self.log.append(f"init {self.name}")

    def cleanup(self) -> None:
        self.log.append(f"cleanup {self.name}")
        if self.fail_cleanup:
            raise RuntimeError("cleanup failed")


async def test_service_registry() -> None:
    log: list[str] = []
    registry = services(db=_Service(log, "db", fail_cleanup=True), http=_Service(log, "http"), plain=object())
    assert registry.has("db") and not registry.has("cache")
    assert registry.get("cache") is None
    await registry.initialize_all()
    await registry.cleanup_all()
    assert log == ["init db", "init http", "cleanup http", "cleanup db"]


async def test_steps_reach_services() -> None:
    config = pipeline([step("a", "ServiceUserStep")], [])
    result = await run_pipeline(config, {}, services(database="the-db", http="the-http"))
    assert result["a"] == {"db": "the-db", "http": "the-http", "cache": None}
    given_none = Pipeline.from_dict(config).steps_for(None)["a"]  # the defaults `ia-modules run` gives too
    assert given_none.get_db() is None and isinstance(given_none.get_http(), httpx.AsyncClient)
    assert given_none.get_service("cache") is not None


async def test_step_work_rejects_a_non_dict() -> None:
    class Bad(Step):
        async def run(self, data: dict[str, Any]) -> Any:
            return "text"

    with pytest.raises(StepOutputError, match="returned str"):
        await Bad("bad").work({})
    with pytest.raises(NotImplementedError):
        await Step("plain").work({})
