"""A run works on its own JSON copy of the input, and permanent step errors are not retried."""

from __future__ import annotations

from typing import Any

import pytest

from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.errors import PermanentStepError


class MutatesInput(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        data["items"].append("added by the step")
        return {"count": len(data["items"])}


class RejectsRecord(Step):
    attempts = 0

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        RejectsRecord.attempts += 1
        raise PermanentStepError(f"record {data['id']} has no amount")


def pipeline(step_class: str, **step: Any) -> Pipeline:
    return Pipeline.from_dict(
        {"steps": [{"id": "s", "step_class": step_class, "module": __name__, **step}], "flow": {"start_at": "s"}}
    )


async def test_a_step_changing_its_input_does_not_change_the_callers_event() -> None:
    event = {"items": ["a"]}
    result = await pipeline("MutatesInput").run(event)
    assert result.status == "success" and result["s"] == {"count": 2}
    assert event == {"items": ["a"]}
    assert result.input == {"items": ["a"]}


async def test_an_input_json_cannot_carry_is_refused_before_any_step_runs() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        await pipeline("MutatesInput").run({"items": ["a"], "when": object()})


async def test_a_permanent_error_fails_the_step_at_once_despite_its_retry_policy() -> None:
    RejectsRecord.attempts = 0
    result = await pipeline("RejectsRecord", retry={"max_attempts": 5, "backoff_s": 0}).run({"id": 7})
    assert result.status == "failed"
    assert RejectsRecord.attempts == 1
    assert result.error is not None
    assert (result.error["type"], result.error["message"], result.error["attempts"]) == (
        "PermanentStepError",
        "record 7 has no amount",
        1,
    )


class ListMaker(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"items": [1]}


async def test_a_step_changing_an_upstream_output_does_not_change_what_the_run_keeps() -> None:
    flow = Pipeline.from_dict(
        {
            "steps": [
                {"id": "a", "step_class": "ListMaker", "module": __name__},
                {"id": "b", "step_class": "MutatesInput", "module": __name__},
            ],
            "flow": {"start_at": "a", "paths": [{"from": "a", "to": "b"}]},
            "outputs": {"kept": "{{ a.items }}", "seen_by_b": "{{ b.count }}"},
        }
    )
    result = await flow.run({})
    assert result.outputs == {"kept": [1], "seen_by_b": 2}
    assert result["a"] == {"items": [1]}
