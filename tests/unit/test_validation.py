"""Validation at load (DESIGN.md section 3): every invalid pipeline raises PipelineConfigError before any step
runs, naming the file, the JSON path and the offending id or value; problems are collected into one error."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from ia_modules.pipeline import Pipeline, PipelineConfigError, ServiceRegistry, run_pipeline
from ia_modules.pipeline.errors import PipelineNotFoundError
from ia_modules.pipeline.graph import END
from ia_modules.pipeline.templates import Scope
from tests.unit.sample_steps import MODULE, ConstStep


def step(step_id: str, cls: str = "ConstStep", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "step_class": cls, "module": MODULE, **extra}


def path(source: str, target: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"from": source, "to": target, **({"condition": condition} if condition else {})}


def expr(source: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "expression", "config": {"source": source, "operator": operator, "value": value}}


def chain(*ids: str, **extra: Any) -> dict[str, Any]:
    """A valid linear pipeline a -> b -> ...; tests break one thing in it."""
    return {
        "parameters": {"threshold": 0.5, "nothing": None},
        "steps": [step(i) for i in ids],
        "flow": {"start_at": ids[0], "paths": [path(a, b) for a, b in itertools.pairwise(ids)]},
        **extra,
    }


def write(tmp_path: Path, config: Any, name: str = "pipe.json") -> Path:
    file = tmp_path / name
    file.write_text(json.dumps(config) if not isinstance(config, str) else config, encoding="utf-8")
    return file


def problems(tmp_path: Path, config: Any, name: str = "pipe.json") -> list[str]:
    """The error's lines, after checking that loading the file raises PipelineConfigError."""
    file = write(tmp_path, config, name)
    with pytest.raises(PipelineConfigError) as caught:
        Pipeline.from_file(file)
    error = caught.value
    assert isinstance(error, ValueError)
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems)
    for line in lines:
        assert line.startswith(f"{file}: "), line
    return [line.removeprefix(f"{file}: ") for line in lines]


def only_problem(tmp_path: Path, config: Any) -> str:
    found = problems(tmp_path, config)
    assert len(found) == 1, found
    return found[0]


# -- ids and endpoints -----------------------------------------------------------------------------------------------


def test_duplicate_step_ids(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"].append(step("a"))
    assert only_problem(tmp_path, config) == "steps[2].id: duplicate step id 'a' (first at steps[0])"


def test_start_at_that_is_not_a_step(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["start_at"] = "nowhere"
    assert only_problem(tmp_path, config) == "flow.start_at: unknown step 'nowhere'"


def test_start_at_cannot_be_a_terminal(tmp_path: Path) -> None:
    config = chain("a")
    config["flow"]["start_at"] = "end"
    assert only_problem(tmp_path, config) == "flow.start_at: unknown step 'end'"


def test_path_from_unknown_step(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"].append(path("ghost", "b"))
    assert only_problem(tmp_path, config) == "flow.paths[1].from: unknown step 'ghost'"


def test_path_to_unknown_step_names_the_allowed_terminals(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"].append(path("a", "ghost"))
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[1].to: unknown step 'ghost'")
    assert "end_with_success" in found


def test_terminal_cannot_start_a_path(tmp_path: Path) -> None:
    config = chain("a")
    config["flow"]["paths"] = [path("end", "a")]
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[0].from: unknown step 'end'")
    assert "end target cannot start a path" in found


@pytest.mark.parametrize("terminal", ["end", "end_with_success", "end_with_failure"])
def test_terminals_are_allowed_targets(tmp_path: Path, terminal: str) -> None:
    config = chain("a", "b")
    config["flow"]["paths"].append(path("b", terminal))
    pipeline = Pipeline.from_file(write(tmp_path, config))
    assert list(pipeline.plan.steps) == ["a", "b"]
    assert [(e.source, e.target, e.terminal) for e in pipeline.plan.graph.outgoing["b"]] == [("b", END, terminal)]


@pytest.mark.parametrize("reserved", ["input", "output", "dlq"])
def test_reserved_step_ids(tmp_path: Path, reserved: str) -> None:
    config = chain("a", reserved)
    found = problems(tmp_path, config)
    assert found[0].startswith(f"steps[1].id: step id '{reserved}' is reserved")


@pytest.mark.parametrize("bad", ["has space", "dot.ted", "", "é"])
def test_step_id_pattern(tmp_path: Path, bad: str) -> None:
    config = chain("a")
    config["steps"][0]["id"] = bad
    assert f"steps[0].id: step id '{bad}' must match [A-Za-z0-9_-]+" in problems(tmp_path, config)


def test_step_ids_may_use_dashes_and_capitals(tmp_path: Path) -> None:
    pipeline = Pipeline.from_file(write(tmp_path, chain("Load-1", "score_2")))
    assert list(pipeline.plan.steps) == ["Load-1", "score_2"]


# -- graph -----------------------------------------------------------------------------------------------------------


def test_cycle(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["flow"]["paths"].append(path("c", "b"))
    assert only_problem(tmp_path, config) == "flow.paths: cycle: b -> c -> b"


def test_self_loop_is_a_cycle(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"].append(path("b", "b"))
    assert only_problem(tmp_path, config) == "flow.paths: cycle: b -> b"


def test_unreachable_step(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"].append(step("island"))
    assert only_problem(tmp_path, config) == "steps[2]: step 'island' is not reachable from start_at 'a'"


def test_every_unreachable_step_is_listed(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"] += [step("x"), step("y")]
    config["flow"]["paths"].append(path("x", "y"))
    assert problems(tmp_path, config) == [
        "steps[2]: step 'x' is not reachable from start_at 'a'",
        "steps[3]: step 'y' is not reachable from start_at 'a'",
    ]


# -- templates -------------------------------------------------------------------------------------------------------


def test_input_template_naming_an_unknown_step(tmp_path: Path) -> None:
    config = chain("loader", "scorer")
    config["steps"][1]["inputs"] = {"raw": "{{ loadr.text }}"}
    assert only_problem(tmp_path, config) == "steps[1].inputs.raw: 'loadr.text': unknown step 'loadr'"


def test_input_template_with_steps_prefix_naming_an_unknown_step(tmp_path: Path) -> None:
    config = chain("loader", "scorer")
    config["steps"][1]["inputs"] = {"deep": {"list": ["ok", "{{ steps.ghost.result.x }}"]}}
    assert (
        only_problem(tmp_path, config) == "steps[1].inputs.deep.list[1]: 'steps.ghost.result.x': unknown step 'ghost'"
    )


def test_template_naming_an_unknown_parameter(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["inputs"] = {"t": "{{ parameters.treshold }}"}
    assert only_problem(tmp_path, config) == "steps[0].inputs.t: 'parameters.treshold': unknown parameter 'treshold'"


def test_a_parameter_whose_value_is_null_is_known(tmp_path: Path) -> None:
    # The parameter exists; its value happens to be null. That is not an "unknown parameter".
    config = chain("a")
    config["steps"][0]["inputs"] = {"n": "{{ parameters.nothing }}"}
    config["steps"][0]["config"] = {"n": "{{ parameters.nothing || 'fallback' }}"}
    pipeline = Pipeline.from_file(write(tmp_path, config))
    assert pipeline.plan.steps["a"].config == {"n": "fallback"}


def test_unknown_parameter_inside_a_fallback_and_in_text(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["inputs"] = {"t": "value {{ pipeline_input.x || parameters.nope }} here"}
    assert only_problem(tmp_path, config) == "steps[0].inputs.t: 'parameters.nope': unknown parameter 'nope'"


def test_input_template_naming_a_downstream_step(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["steps"][1]["inputs"] = {"x": "{{ c.value }}"}
    assert only_problem(tmp_path, config) == "steps[1].inputs.x: 'c.value': step 'c' is not upstream of step 'b'"


def test_input_template_naming_a_sibling_branch(tmp_path: Path) -> None:
    config = {
        "steps": [step("a"), step("left"), step("right", inputs={"l": "{{ steps.left.v }}"})],
        "flow": {"start_at": "a", "paths": [path("a", "left"), path("a", "right")]},
    }
    assert (
        only_problem(tmp_path, config)
        == "steps[2].inputs.l: 'steps.left.v': step 'left' is not upstream of step 'right'"
    )


def test_input_template_naming_itself(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"][1]["inputs"] = {"x": "{{ b.value }}"}
    assert only_problem(tmp_path, config) == "steps[1].inputs.x: 'b.value': step 'b' is not upstream of step 'b'"


def test_input_templates_may_name_any_upstream_step(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["steps"][2]["inputs"] = {
        "x": "{{ a.v }}",
        "y": "{{ steps.b.result.v || pipeline_input.v || parameters.threshold }}",
    }
    plan = Pipeline.from_file(write(tmp_path, config)).plan
    assert plan.graph.upstream["c"] == {"a", "b"}
    inputs = plan.steps["c"].inputs
    parameters = plan.parameters
    outputs = {"a": {"v": 1}, "b": {"v": 2}}
    assert inputs.resolve(Scope({"v": "in"}, parameters, outputs)) == {"x": 1, "y": 2}
    assert inputs.resolve(Scope({"v": "in"}, parameters, {"a": {"v": 1}, "b": {}})) == {"x": 1, "y": "in"}
    assert inputs.resolve(Scope({}, parameters, {"a": {}, "b": {}})) == {"x": None, "y": 0.5}


@pytest.mark.parametrize(
    "template", ["{{ pipeline_input.x }}", "{{ a.value }}", "{{ steps.a.value }}", "{pipeline_input.x}"]
)
def test_config_templates_may_only_name_parameters(tmp_path: Path, template: str) -> None:
    config = chain("a", "b")
    config["steps"][1]["config"] = {"nested": {"v": template}}
    found = only_problem(tmp_path, config)
    assert found.startswith("steps[1].config.nested.v: '")
    assert found.endswith("': only parameters may be used here")


def test_config_templates_are_resolved_at_load(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["config"] = {"t": "{{ parameters.threshold }}", "s": "t={{ parameters.threshold }}"}
    assert Pipeline.from_file(write(tmp_path, config)).plan.steps["a"].config == {"t": 0.5, "s": "t=0.5"}


def test_outputs_may_name_any_step_but_not_unknown_ones(tmp_path: Path) -> None:
    config = chain("a", "b", outputs={"x": "{{ a.v }}", "y": "{{ steps.b.v }}", "z": "{{ ghost.v }}"})
    assert only_problem(tmp_path, config) == "outputs.z: 'ghost.v': unknown step 'ghost'"


def test_stream_key_may_not_name_steps(tmp_path: Path) -> None:
    config = chain("a", stream={"key": "{{ a.v }}"})
    assert only_problem(tmp_path, config) == "stream.key: 'a.v': only pipeline_input, parameters may be used here"


def test_template_syntax_error_is_located(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["inputs"] = {"x": "{{ pipeline_input.x"}
    found = only_problem(tmp_path, config)
    assert found.startswith("steps[0].inputs.x: unclosed template")


def test_result_root_is_not_allowed_in_inputs(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["inputs"] = {"x": "{{ result.score }}"}
    assert only_problem(tmp_path, config).startswith("steps[0].inputs.x: 'result.score'")


# -- conditions ------------------------------------------------------------------------------------------------------


def test_unknown_condition_type(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {"type": "sometimes"}
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[0].condition: unknown condition type 'sometimes'")


def test_condition_without_type(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {"config": {}}
    assert only_problem(tmp_path, config) == "flow.paths[0].condition: a condition needs a 'type'"


def test_unknown_operator(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = expr("result.x", "~=", 1)
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[0].condition.config.operator: unknown operator '~='")


def test_unknown_operator_nested_in_compound_conditions(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {
        "type": "all",
        "conditions": [{"type": "always"}, {"type": "not", "condition": expr("result.x", "approx", 1)}],
    }
    found = only_problem(tmp_path, config)
    assert found.startswith(
        "flow.paths[0].condition.conditions[1].condition.config.operator: unknown operator 'approx'"
    )


def test_unknown_key_in_a_condition(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {"type": "always", "config": {"x": 1}}
    assert only_problem(tmp_path, config).startswith("flow.paths[0].condition.config: unknown key")


def test_operator_without_value(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {
        "type": "expression",
        "config": {"source": "result.x", "operator": "greater_than"},
    }
    assert "flow.paths[0].condition.config: operator 'greater_than' needs a 'value'" in problems(tmp_path, config)


def test_invalid_regex(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = expr("result.x", "matches", "([a-z]")
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[0].condition.config.value: invalid regular expression")


def test_condition_naming_an_unknown_step_parameter_or_a_downstream_step(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["flow"]["paths"][0]["condition"] = {
        "type": "all",
        "conditions": [
            expr("ghost.x", "exists"),
            expr("result.x", ">", "{{ parameters.limit }}"),
            expr("steps.c.x", "exists"),
        ],
    }
    assert problems(tmp_path, config) == [
        "flow.paths[0].condition: 'ghost.x': unknown step 'ghost'",
        "flow.paths[0].condition: 'parameters.limit': unknown parameter 'limit'",
        "flow.paths[0].condition: 'steps.c.x': step 'c' is not upstream of path from 'a'",
    ]


def test_condition_may_name_the_step_it_leaves_and_its_upstream(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["flow"]["paths"][1]["condition"] = {
        "type": "all",
        "conditions": [expr("steps.a.x", "exists"), expr("b.y", "exists"), expr("result.z", "exists")],
    }
    plan = Pipeline.from_file(write(tmp_path, config)).plan
    [edge] = plan.graph.outgoing["b"]
    assert (edge.index, edge.source, edge.target) == (1, "b", "c")
    condition = edge.condition
    outputs = {"a": {"x": 1}, "b": {"y": 2}}
    assert condition.evaluate(Scope({}, plan.parameters, outputs, result={"z": 3})).taken is True
    assert condition.evaluate(Scope({}, plan.parameters, outputs, result={})).taken is False
    assert condition.evaluate(Scope({}, plan.parameters, {"a": {"x": 1}}, result={"z": 3})).taken is False
    assert plan.graph.outgoing["a"][0].condition.always  # the other path keeps its default condition


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        ("tests.unit.nowhere:check", "cannot import module 'tests.unit.nowhere'"),
        (f"{MODULE}:missing_check", f"module '{MODULE}' has no attribute 'missing_check'"),
        (f"{MODULE}:NOT_A_CLASS", "is not callable"),
    ],
)
def test_function_condition_that_cannot_be_imported(tmp_path: Path, function: str, fragment: str) -> None:
    config = chain("a", "b")
    config["flow"]["paths"][0]["condition"] = {"type": "function", "config": {"function": function}}
    found = only_problem(tmp_path, config)
    assert found.startswith("flow.paths[0].condition.config.function: ")
    assert fragment in found


# -- step classes ----------------------------------------------------------------------------------------------------


def test_module_that_cannot_be_imported(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"][1]["module"] = "steps.no_such_module_here"
    found = only_problem(tmp_path, config)
    assert found.startswith("steps[1].module: cannot import module 'steps.no_such_module_here'")


def test_class_that_does_not_exist(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"][1]["step_class"] = "MissingStep"
    assert only_problem(tmp_path, config) == f"steps[1].step_class: module '{MODULE}' has no attribute 'MissingStep'"


@pytest.mark.parametrize("name", ["NotAStep", "NOT_A_CLASS", "score_above"])
def test_class_that_is_not_a_step(tmp_path: Path, name: str) -> None:
    config = chain("a", "b")
    config["steps"][1]["step_class"] = name
    assert only_problem(tmp_path, config) == f"steps[1].step_class: '{MODULE}.{name}' is not a Step subclass"


def test_step_whose_constructor_raises(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["step_class"] = "BrokenInitStep"
    found = only_problem(tmp_path, config)
    assert found.startswith("steps[0].config: BrokenInitStep('a', config) raised RuntimeError: cannot build")


# -- shape -----------------------------------------------------------------------------------------------------------


def test_missing_required_fields(tmp_path: Path) -> None:
    config = chain("a")
    del config["steps"][0]["step_class"]
    del config["flow"]["start_at"]
    assert problems(tmp_path, config) == [
        "steps[0].step_class: required field is missing",
        "flow.start_at: required field is missing",
    ]


def test_a_pipeline_needs_steps(tmp_path: Path) -> None:
    assert only_problem(tmp_path, {"steps": [], "flow": {"start_at": "a"}}).startswith("steps: ")


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("retry", {"max_attempts": 0}, "steps[0].retry.max_attempts"),
        ("retry", {"max_attemps": 3}, "steps[0].retry.max_attemps"),
        ("timeout_s", 0, "steps[0].timeout_s"),
        ("on_error", "ignore", "steps[0].on_error"),
        ("concurrency", 0, "steps[0].concurrency"),
    ],
)
def test_bad_step_policies(tmp_path: Path, field: str, value: Any, where: str) -> None:
    config = chain("a")
    config["steps"][0][field] = value
    found = only_problem(tmp_path, config)
    assert found.startswith(f"{where}: ")


def test_unknown_keys_are_allowed_on_steps_and_the_pipeline(tmp_path: Path) -> None:
    config = chain("a")
    config["steps"][0]["name"] = "A friendly name"
    config["comment"] = "kept"
    plan = Pipeline.from_file(write(tmp_path, config)).plan
    assert list(plan.steps) == ["a"]
    assert plan.steps["a"].step_class is ConstStep
    assert plan.steps["a"].config == {}
    assert plan.parameters == {"threshold": 0.5, "nothing": None}
    assert [(e.source, e.target, e.terminal) for e in plan.graph.edges] == [("a", END, "end")]
    assert plan.model.model_extra == {"comment": "kept"}
    assert plan.model.steps[0].model_extra == {"name": "A friendly name"}


def test_a_pipeline_is_a_json_object(tmp_path: Path) -> None:
    assert only_problem(tmp_path, [1, 2]) == "$: a pipeline is a JSON object, not a list"


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "steps": [\n    {"id": "a",}\n  ]\n}\n'
    found = only_problem(tmp_path, text)
    assert found.startswith("$: invalid JSON at line 3 column 16")


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(PipelineNotFoundError):
        Pipeline.from_file(tmp_path / "absent.json")


def test_pipeline_id_from_the_file_stem_or_stream_id(tmp_path: Path) -> None:
    assert Pipeline.from_file(write(tmp_path, chain("a"), "text_quality.json")).id == "text_quality"
    named = chain("a", stream={"id": "custom_id"})
    assert Pipeline.from_file(write(tmp_path, named, "Other-Name.json")).id == "custom_id"


def test_a_file_name_that_is_not_a_pipeline_id_is_normalised(tmp_path: Path) -> None:
    assert Pipeline.from_file(write(tmp_path, chain("a"), "Text-Quality.json")).id == "text_quality"


def test_invalid_stream_id(tmp_path: Path) -> None:
    assert only_problem(tmp_path, chain("a", stream={"id": "Bad-Id"})).startswith(
        "stream.id: pipeline id 'Bad-Id' must match [a-z0-9_]+"
    )


# -- several problems, nothing runs ----------------------------------------------------------------------------------


def test_several_problems_are_collected_in_one_error(tmp_path: Path) -> None:
    config = chain("a", "b", "c")
    config["steps"][1]["module"] = "tests.unit.nowhere"
    config["steps"][2]["step_class"] = "NotAStep"
    config["steps"][2]["inputs"] = {"x": "{{ parameters.nope }}", "y": "{{ ghost.v }}"}
    config["steps"][0]["config"] = {"v": "{{ pipeline_input.v }}"}
    config["outputs"] = {"o": "{{ phantom.x }}"}
    found = problems(tmp_path, config)
    assert found == [
        "steps[0].config.v: 'pipeline_input.v': only parameters may be used here",
        "steps[1].module: cannot import module 'tests.unit.nowhere': No module named 'tests.unit.nowhere'",
        "steps[2].step_class: 'tests.unit.sample_steps.NotAStep' is not a Step subclass",
        "steps[2].inputs.x: 'parameters.nope': unknown parameter 'nope'",
        "steps[2].inputs.y: 'ghost.v': unknown step 'ghost'",
        "outputs.o: 'phantom.x': unknown step 'phantom'",
    ]


def test_several_shape_problems_are_collected(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"][0]["id"] = "input"
    config["steps"][1]["timeout_s"] = -1
    config["flow"]["paths"][0]["condition"] = expr("result.x", "===", 1)
    found = problems(tmp_path, config)
    assert [line.split(":")[0] for line in found] == [
        "steps[0].id",
        "steps[1].timeout_s",
        "flow.paths[0].condition.config.operator",
        "flow.paths[0].from",  # the step is no longer 'a': reported with the schema problems, not hidden by them
        "flow.start_at",
    ]


def test_several_reference_problems_are_collected(tmp_path: Path) -> None:
    config = chain("a", "b")
    config["steps"].append(step("a"))
    config["flow"]["paths"] += [path("ghost", "b"), path("a", "phantom")]
    config["flow"]["start_at"] = "nowhere"
    assert problems(tmp_path, config) == [
        "steps[2].id: duplicate step id 'a' (first at steps[0])",
        "flow.paths[1].from: unknown step 'ghost'",
        "flow.paths[2].to: unknown step 'phantom' (steps or end, end_with_success, end_with_failure)",
        "flow.start_at: unknown step 'nowhere'",
    ]


async def test_invalid_pipeline_fails_before_any_step_runs() -> None:
    calls: list[str] = []
    services = ServiceRegistry()
    services.register("calls", calls)
    config = chain("a", "b")
    config["steps"] = [step("a", "CountingStep"), step("b", "CountingStep", inputs={"x": "{{ ghost.v }}"})]
    with pytest.raises(PipelineConfigError, match=r"<dict>: steps\[1\]\.inputs\.x: 'ghost\.v': unknown step"):
        await run_pipeline(config, {"v": 1}, services)
    assert calls == []


async def test_invalid_file_fails_at_load(tmp_path: Path) -> None:
    config = chain("a")
    config["flow"]["paths"] = [path("a", "a")]
    with pytest.raises(PipelineConfigError, match="cycle"):
        await Pipeline.load(write(tmp_path, config))


# -- the design's example loads --------------------------------------------------------------------------------------

DESIGN_EXAMPLE: dict[str, Any] = {
    "name": "Text quality",
    "description": "Score a text and format it",
    "version": "2.0.0",
    "parameters": {"quality_threshold": 0.8},
    "steps": [
        {
            "id": "loader",
            "step_class": "CaptureStep",
            "module": MODULE,
            "inputs": {"raw": "{{ pipeline_input.body || pipeline_input.text }}"},
            "retry": {"max_attempts": 3, "backoff_s": 0.2, "max_backoff_s": 5},
            "timeout_s": 10,
            "on_error": "fail",
        },
        {"id": "scorer", "step_class": "ConstStep", "module": MODULE, "config": {"output": {"quality_score": 0.9}}},
        {"id": "advanced", "step_class": "ConstStep", "module": MODULE, "concurrency": 8},
        {"id": "standard", "step_class": "ConstStep", "module": MODULE},
        {
            "id": "formatter",
            "step_class": "ConstStep",
            "module": MODULE,
            "config": {"format": "json"},
            "inputs": {"processed": "{{ advanced.result || standard.result }}"},
        },
    ],
    "flow": {
        "start_at": "loader",
        "paths": [
            {"from": "loader", "to": "scorer", "condition": {"type": "always"}},
            {
                "from": "scorer",
                "to": "advanced",
                "condition": {
                    "type": "expression",
                    "config": {
                        "source": "result.quality_score",
                        "operator": "greater_than",
                        "value": "{{ parameters.quality_threshold }}",
                    },
                },
            },
            {
                "from": "scorer",
                "to": "standard",
                "condition": {
                    "type": "expression",
                    "config": {
                        "source": "result.quality_score",
                        "operator": "less_than_or_equal",
                        "value": "{{ parameters.quality_threshold }}",
                    },
                },
            },
            {"from": "advanced", "to": "formatter", "condition": {"type": "always"}},
            {"from": "standard", "to": "formatter", "condition": {"type": "always"}},
        ],
    },
    "outputs": {"final": "{{ formatter.formatted }}", "score": "{{ scorer.quality_score }}"},
    "stream": {"key": "{{ pipeline_input.customer_id }}", "partitions": 4},
}


def test_the_design_example_loads_with_its_settings(tmp_path: Path) -> None:
    pipeline = Pipeline.from_file(write(tmp_path, DESIGN_EXAMPLE, "text_quality.json"))
    plan = pipeline.plan
    assert (pipeline.id, pipeline.name, pipeline.version) == ("text_quality", "Text quality", "2.0.0")
    assert list(plan.steps) == ["loader", "scorer", "advanced", "standard", "formatter"]
    loader = plan.steps["loader"]
    assert (loader.retry.max_attempts, loader.retry.backoff_s, loader.retry.max_backoff_s) == (3, 0.2, 5)
    assert (loader.timeout_s, loader.on_error) == (10, "fail")
    assert plan.steps["advanced"].concurrency == 8
    assert plan.steps["formatter"].config == {"format": "json"}
    assert plan.partitions == 4
    assert [e.target for e in plan.graph.incoming["formatter"]] == ["formatter", "formatter"]
    assert [e.source for e in plan.graph.incoming["formatter"]] == ["advanced", "standard"]


def test_defaults(tmp_path: Path) -> None:
    plan = Pipeline.from_file(write(tmp_path, chain("a"), "defaults.json")).plan
    a = plan.steps["a"]
    assert (a.retry.max_attempts, a.timeout_s, a.on_error, a.concurrency) == (1, 30, "fail", 1)
    assert plan.partitions == 4
    assert plan.model.stream.join_timeout_s == 300


async def test_the_design_example_runs(tmp_path: Path) -> None:
    pipeline = await Pipeline.load(write(tmp_path, DESIGN_EXAMPLE, "text_quality.json"))
    result = await pipeline.run({"text": "hello", "customer_id": "c1"})
    assert result.status == "success"
    assert list(result) == ["loader", "scorer", "advanced", "formatter"]
    assert result["loader"]["received"]["raw"] == "hello"
    assert result.outputs == {"final": None, "score": 0.9}


def test_from_dict_reports_the_given_source() -> None:
    config = copy.deepcopy(DESIGN_EXAMPLE)
    config["steps"][1]["inputs"] = {"x": "{{ formatter.v }}"}
    with pytest.raises(PipelineConfigError) as caught:
        Pipeline.from_dict(config, source="inline")
    assert (
        str(caught.value)
        == "inline: steps[1].inputs.x: 'formatter.v': step 'formatter' is not upstream of step 'scorer'"
    )


def miswired_with_other_problems() -> dict[str, Any]:
    config = chain("a", "b", "c")
    config["steps"][0]["config"] = {"v": "{{ parameters.nope }}"}
    config["steps"][1]["step_class"] = "NotAStep"
    config["steps"][1]["inputs"] = {"x": "{{ ghost.v }}"}
    config["steps"][2]["module"] = "tests.unit.nowhere"
    config["flow"]["paths"][1]["condition"] = expr("result.x", ">", "{{ parameters.limit }}")
    config["outputs"] = {"o": "{{ phantom.v }}"}
    return config


OTHER_PROBLEMS = [
    "flow.paths[1].condition: 'parameters.limit': unknown parameter 'limit'",
    "steps[0].config.v: 'parameters.nope': unknown parameter 'nope'",
    "steps[1].step_class: 'tests.unit.sample_steps.NotAStep' is not a Step subclass",
    "steps[1].inputs.x: 'ghost.v': unknown step 'ghost'",
    "steps[2].module: cannot import module 'tests.unit.nowhere': No module named 'tests.unit.nowhere'",
    "outputs.o: 'phantom.v': unknown step 'phantom'",
]


def test_a_miswired_flow_does_not_hide_the_other_problems(tmp_path: Path) -> None:
    config = miswired_with_other_problems()
    config["flow"]["paths"].append(path("a", "bb"))
    assert problems(tmp_path, config) == [
        "flow.paths[2].to: unknown step 'bb' (steps or end, end_with_success, end_with_failure)",
        *OTHER_PROBLEMS,
    ]


def test_a_cycle_does_not_hide_the_other_problems(tmp_path: Path) -> None:
    config = miswired_with_other_problems()
    config["flow"]["paths"].append(path("c", "a"))
    assert problems(tmp_path, config) == ["flow.paths: cycle: a -> b -> c -> a", *OTHER_PROBLEMS]
