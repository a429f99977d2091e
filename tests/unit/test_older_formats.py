"""Older pipeline formats (DESIGN.md section 3): the forms that mean one current form load as it, with one warning
per file showing the current form; the others are refused with the replacement to write; ``rewrite_in_current_form``
(``validate --fix``) writes the current form. The corpus tests/corpus/older_formats holds variants of the shipped
pipelines in the original project's formats: each gives the same results as the shipped file."""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from ia_modules.pipeline import Pipeline, PipelineConfigError
from ia_modules.pipeline.errors import OlderFormatWarning
from ia_modules.pipeline.loader import load_plan, rewrite_in_current_form
from ia_modules.pipeline.models import OPERATOR_ALIASES
from ia_modules.pipeline.older_forms import upgrade
from streams.process.serve import load_plans
from tests.unit.sample_steps import MODULE

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "older_formats"

#: older-format file -> (the shipped pipeline it is a variant of, the JSON paths its warning names)
OLDER_FILES: dict[str, tuple[str, list[str]]] = {
    "custom_processing_from_step.json": ("custom_processing", ["flow.paths"]),
    "custom_processing_list_parameters.json": ("custom_processing", ["parameters"]),
    "custom_processing_list_inputs.json": (
        "custom_processing",
        [f"steps[{i}].inputs" for i in range(1, 6)],
    ),
    "Custom Processing (all older forms).json": (
        "custom_processing",
        ["parameters", *(f"steps[{i}].inputs" for i in range(1, 6)), "flow.paths"],
    ),
    "order_enrichment_older.json": (
        "order_enrichment",
        ["parameters", *(f"steps[{i}].inputs" for i in (1, 2, 3, 4)), "flow.paths"],
    ),
}


def step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "step_class": "ConstStep", "module": MODULE, **extra}


def older_chain() -> dict[str, Any]:
    """a -> b in the older forms: list parameters, list inputs, from_step/to_step."""
    return {
        "name": "Older",
        "parameters": [
            {"name": "threshold", "default": 0.8, "schema": {"type": "number"}, "description": "cut-off"},
            {"name": "mode", "default": "fast"},
        ],
        "steps": [
            step("a"),
            step("b", inputs=[{"name": "raw", "source": "{{ a.text }}", "required": True}], timeout_s=5),
        ],
        "flow": {"start_at": "a", "paths": [{"from_step": "a", "to_step": "b", "condition": {"type": "always"}}]},
    }


def write(tmp_path: Path, config: Any, name: str = "older.json") -> Path:
    file = tmp_path / name
    file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return file


def refused(config: dict[str, Any]) -> list[str]:
    """The error's lines without the source."""
    with pytest.raises(PipelineConfigError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", OlderFormatWarning)
        Pipeline.from_dict(config, source="f.json")
    return [line.removeprefix("f.json: ") for line in str(caught.value).splitlines()]


# -- the conversions ---------------------------------------------------------------------------------------------


def test_each_older_form_is_read_as_its_current_form_keeping_every_other_key_and_its_place() -> None:
    raw = older_chain()
    before = copy.deepcopy(raw)
    upgraded = upgrade(raw)
    assert raw == before, "the parsed JSON is not changed"
    assert upgraded.problems == []
    config = upgraded.config
    assert list(config) == ["name", "parameters", "steps", "flow"]
    assert config["parameters"] == {"threshold": 0.8, "mode": "fast"}
    assert config["steps"][1] == step("b", inputs={"raw": "{{ a.text }}"}, timeout_s=5)
    assert list(config["steps"][1]) == ["id", "step_class", "module", "inputs", "timeout_s"]
    assert config["flow"]["paths"] == [{"from": "a", "to": "b", "condition": {"type": "always"}}]
    assert list(config["flow"]["paths"][0]) == ["from", "to", "condition"]


def test_the_warning_shows_the_current_form_and_names_what_is_not_kept() -> None:
    notes = [c.warning() for c in upgrade(older_chain()).conversions]
    assert [(n.path, n.message) for n in notes] == [
        (
            "parameters",
            'older form: list of parameters; read as {"threshold": 0.8, "mode": "fast"}; '
            "not kept: schema, description of 'threshold'",
        ),
        (
            "steps[1].inputs",
            'older form: list of inputs; read as {"raw": "{{ a.text }}"}; not kept: required of \'raw\'',
        ),
        (
            "flow.paths",
            """older form: 'from_step'/'to_step' in paths 0; read as 'from'/'to': {"from": "a", "to": "b"}""",
        ),
    ]


def test_a_parameter_without_a_default_is_null_and_the_warning_says_so() -> None:
    upgraded = upgrade({"parameters": [{"name": "limit", "required": True}]})
    assert upgraded.config["parameters"] == {"limit": None}
    assert upgraded.conversions[0].dropped == ("no default (null), required of 'limit'",)


def test_paths_with_only_one_older_key_and_their_indexes() -> None:
    paths = [{"from": "a", "to": "b"}, {"from_step": "b", "to": "c"}, {"from_step": "c", "to_step": "d"}]
    upgraded = upgrade({"flow": {"start_at": "a", "paths": paths}})
    assert upgraded.config["flow"]["paths"] == [{"from": p, "to": q} for p, q in ("ab", "bc", "cd")]
    assert upgraded.conversions[0].older == "'from_step'/'to_step' in paths 1-2"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"parameters": [{"name": "a"}, "b"]}, "parameters[1]: an older-form parameter is {\"name\": ..., \"default\": ...}, not text"),  # noqa: E501
        ({"parameters": [{"default": 1}]}, "parameters[0]: an older-form parameter needs a 'name' (text)"),
        ({"parameters": [{"name": "a"}, {"name": "a"}]}, "parameters[1].name: parameter 'a' is also parameters[0]"),
        ({"steps": [{"inputs": [{"name": "raw"}]}]}, "steps[0].inputs[0]: input 'raw' has no 'source' (its template)"),
        ({"steps": [{"inputs": [["raw", "{{ x }}"]]}]}, "steps[0].inputs[0]: an older-form input is {\"name\": ..., \"source\": ...}, not a list"),  # noqa: E501
        ({"flow": {"paths": [{"from": "a", "from_step": "a", "to": "b"}]}}, "flow.paths[0].from_step: both 'from' and its older form 'from_step': keep 'from'"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_malformed_older_form_is_left_as_it_was_and_reported(config: dict[str, Any], expected: str) -> None:
    upgraded = upgrade(config)
    assert [p.render("f.json") for p in upgraded.problems] == [f"f.json: {expected}"]
    assert upgraded.conversions == []
    assert upgraded.config == config


def test_a_malformed_list_is_reported_once_not_also_as_the_wrong_type() -> None:
    config = upgrade(older_chain()).config
    config["parameters"] = [{"name": "threshold", "default": 0.8}, {"default": 1}]
    assert refused(config) == ["parameters[1]: an older-form parameter needs a 'name' (text)"]


# -- refused forms -----------------------------------------------------------------------------------------------

EXPRESSION = '{{"type": "expression", "config": {{"source": "{source}", "operator": "{operator}"{value}}}}}'


def expression(source: str, operator: str, value: str | None = None) -> str:
    """The expression condition as the error shows it; ``operator`` may be a symbol (``>``), shown by its name."""
    name = OPERATOR_ALIASES.get(operator, operator)
    return EXPRESSION.format(source=source, operator=name, value="" if value is None else f', "value": {value}')


def with_condition(condition: dict[str, Any], **step_b: Any) -> dict[str, Any]:
    return {
        "parameters": {"threshold": 0.8},
        "steps": [step("a", **step_b), step("b")],
        "flow": {"start_at": "a", "paths": [{"from": "a", "to": "b", "condition": condition}]},
    }


OLDER = "flow.paths[0].condition: condition type '{}' is an older form that is no longer read: write "


@pytest.mark.parametrize(
    ("condition", "replacement"),
    [
        ({"type": "field_equals", "field": "status", "value": "ok"}, expression("result.status", "equals", '"ok"')),
        ({"type": "field_exists", "field": "score"}, expression("result.score", "exists")),
        ({"type": "field_greater_than", "field": "score", "value": 0.8}, expression("result.score", ">", "0.8")),
        ({"type": "field_less_than", "config": {"field": "steps.a.n", "value": 3}}, expression("steps.a.n", "<", "3")),
        (
            {"type": "threshold_condition", "config": {"field": "quality", "operator": "<", "value": "{{ p.x }}"}},
            expression("result.quality", "<", '"{{ p.x }}"'),
        ),
        (
            {"type": "threshold_condition", "config": {"field_path": "score", "operator": ">", "threshold": 2}},
            expression("result.score", ">", "2"),
        ),
        ({"type": "field_equals"}, expression("result.<field>", "equals", '"<value>"')),
        ({"type": "threshold_condition", "config": {"field": "x", "value": 1}}, expression("result.x", "<operator: greater_than, less_than, ...>", "1")),  # noqa: E501
    ],
)  # fmt: skip
def test_older_field_and_threshold_conditions_are_refused_with_the_expression_to_write(
    condition: dict[str, Any], replacement: str
) -> None:
    assert refused(with_condition(condition)) == [OLDER.format(condition["type"]) + replacement]


def test_success_is_refused_with_always_or_with_an_expression_on_a_continuing_step() -> None:
    assert refused(with_condition({"type": "success"})) == [
        OLDER.format("success") + """{"type": "always"} (a path leaves 'a' only once it succeeded)"""
    ]
    assert refused(with_condition({"type": "success"}, on_error="continue")) == [
        OLDER.format("success")
        + expression("result.status", "not_equals", '"failed"')
        + " (step 'a' has on_error continue: when it fails its status is 'failed')"
    ]


def test_an_older_condition_nested_in_compound_conditions_is_located() -> None:
    condition = {"type": "all", "conditions": [{"type": "always"}, {"type": "not", "condition": {"type": "success"}}]}
    [line] = refused(with_condition(condition))
    assert line.startswith("flow.paths[0].condition.conditions[1].condition: condition type 'success' is an older form")


def test_transitions_are_refused_and_do_not_make_every_step_unreachable() -> None:
    config = with_condition({"type": "always"})
    config["flow"] = {"start_at": "a", "transitions": config["flow"]["paths"]}
    assert refused(config) == [
        "flow.transitions: 'transitions' is an older form that is no longer read: write them as flow.paths, each "
        '{"from": <step>, "to": <step or end>, "condition": {...}} (paths may not form a cycle)'
    ]


def test_refused_forms_and_other_problems_come_together_with_the_older_forms_noted() -> None:
    config = older_chain()
    config["flow"]["paths"][0]["condition"] = {"type": "field_exists", "field": "x"}
    config["steps"][1]["inputs"][0]["source"] = "{{ ghost.text }}"
    with pytest.raises(PipelineConfigError) as caught, pytest.warns(OlderFormatWarning):
        Pipeline.from_dict(config, source="f.json")
    assert str(caught.value).splitlines() == [
        "f.json: flow.paths[0].condition: condition type 'field_exists' is an older form that is no longer read: "
        f"write {expression('result.x', 'exists')}",
        "f.json: steps[1].inputs.raw: 'ghost.text': unknown step 'ghost'",
    ]
    assert [note.path for note in caught.value.older_forms] == ["parameters", "steps[1].inputs", "flow.paths"]


# -- loading: one warning per file -----------------------------------------------------------------------------------


def test_an_older_file_loads_with_one_warning_showing_the_current_form(tmp_path: Path) -> None:
    file = write(tmp_path, older_chain())
    with pytest.warns(OlderFormatWarning) as caught:
        plan = load_plan(file)
    [warning] = caught.list
    message = warning.message
    assert isinstance(message, OlderFormatWarning)
    assert message.source == str(file)
    assert str(message).splitlines() == [
        *(note.render(str(file)) for note in plan.older_forms),
        f"('ia-modules validate --fix {file}' rewrites it in the current form)",
    ]
    assert [note.path for note in plan.older_forms] == ["parameters", "steps[1].inputs", "flow.paths"]
    assert plan.parameters == {"threshold": 0.8, "mode": "fast"}
    assert [(e.source, e.target) for e in plan.graph.edges] == [("a", "b"), ("b", "<end>")]


def test_python_shows_the_warning_once_per_file(tmp_path: Path) -> None:
    first, second = write(tmp_path, older_chain(), "one.json"), write(tmp_path, older_chain(), "two.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own rule outside tests: once per text and place
        for file in (first, second, first, second, first):
            load_plan(file)
    assert [w.message.source for w in caught if isinstance(w.message, OlderFormatWarning)] == [str(first), str(second)]


def test_a_current_file_loads_without_a_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = load_plan(ROOT / "pipelines" / "custom_processing.json")
    assert plan.older_forms == ()


def test_without_warn_the_notes_are_only_on_the_plan(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = load_plan(write(tmp_path, older_chain()), warn=False)
    assert len(plan.older_forms) == 3


def test_a_worker_logs_the_older_forms_of_its_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    file = write(folder, older_chain())
    caplog.set_level(logging.WARNING, logger="streams.process.serve")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [plan] = load_plans(folder)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        *(note.render(str(file)) for note in plan.older_forms),
        f"{file}: older pipeline format: ia-modules validate --fix rewrites it",
    ]


# -- the corpus: same results as the shipped files -------------------------------------------------------------------


def test_the_corpus_has_every_file_and_nothing_else() -> None:
    assert {p.name for p in CORPUS.glob("*.json")} == set(OLDER_FILES)


@pytest.mark.parametrize("name", sorted(OLDER_FILES))
async def test_an_older_file_of_the_corpus_gives_the_results_of_the_shipped_file(name: str) -> None:
    shipped_id, warned_paths = OLDER_FILES[name]
    with pytest.warns(OlderFormatWarning) as caught:
        older = await Pipeline.load(CORPUS / name)
    assert len(caught.list) == 1
    assert [note.path for note in older.plan.older_forms] == warned_paths
    current = await Pipeline.load(ROOT / "pipelines" / f"{shipped_id}.json")
    assert older.plan.parameters == current.plan.parameters
    lines = (ROOT / "pipelines" / f"{shipped_id}.events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    assert len(events) > 50
    for event in events:
        expected, got = await current.run(event), await older.run(event)
        assert (got.status, got.outputs, got.error) == (expected.status, expected.outputs, expected.error), event
        assert [(t["step"], t["status"], t.get("routes")) for t in got.trace] == [
            (t["step"], t["status"], t.get("routes")) for t in expected.trace
        ]


# -- rewriting in the current form (validate --fix) ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OLDER_FILES))
def test_the_rewritten_file_is_the_current_form_and_loads_without_a_warning(name: str, tmp_path: Path) -> None:
    shipped_id, warned_paths = OLDER_FILES[name]
    file = tmp_path / name
    file.write_bytes((CORPUS / name).read_bytes())
    os.chmod(file, 0o640)
    conversions = rewrite_in_current_form(file)
    assert [c.path for c in conversions] == warned_paths
    assert json.loads(file.read_text(encoding="utf-8")) == json.loads(
        (ROOT / "pipelines" / f"{shipped_id}.json").read_text(encoding="utf-8")
    )
    assert file.read_text(encoding="utf-8").endswith("}\n")
    assert os.stat(file).st_mode & 0o777 == 0o640, "the file keeps its permissions"
    assert [p.name for p in tmp_path.iterdir()] == [name], "no temporary file is left behind"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_plan(file)
    before = file.read_bytes(), file.stat().st_mtime_ns
    assert rewrite_in_current_form(file) == [], "a current file: nothing to do"
    assert (file.read_bytes(), file.stat().st_mtime_ns) == before, "and it is left untouched"


def test_rewriting_keeps_the_indentation_and_the_refused_forms(tmp_path: Path) -> None:
    config = older_chain()
    config["flow"]["paths"][0]["condition"] = {"type": "success"}
    file = tmp_path / "older.json"
    file.write_text(json.dumps(config, indent=4), encoding="utf-8")
    assert [c.path for c in rewrite_in_current_form(file)] == ["parameters", "steps[1].inputs", "flow.paths"]
    text = file.read_text(encoding="utf-8")
    assert text.startswith('{\n    "name": "Older",\n    "parameters": {\n        "threshold": 0.8,')
    assert not text.endswith("\n")
    assert json.loads(text)["flow"]["paths"] == [{"from": "a", "to": "b", "condition": {"type": "success"}}]


def test_rewriting_a_file_that_is_not_an_object_does_nothing(tmp_path: Path) -> None:
    file = tmp_path / "list.json"
    file.write_text("[1]", encoding="utf-8")
    assert rewrite_in_current_form(file) == []
    assert file.read_text(encoding="utf-8") == "[1]"


# -- every problem at once: schema and cross-reference problems together ---------------------------------------------


def test_schema_problems_of_a_step_do_not_hide_its_other_problems() -> None:
    config = with_condition({"type": "always"})
    config["steps"][1] |= {"timeout_s": -1, "module": "steps.no_such_module", "inputs": {"x": "{{ ghost.v }}"}}
    assert refused(config) == [
        "steps[1].timeout_s: Input should be greater than 0",
        "steps[1].module: cannot import module 'steps.no_such_module': No module named 'steps.no_such_module'",
        "steps[1].inputs.x: 'ghost.v': unknown step 'ghost'",
    ]


def test_a_path_whose_condition_does_not_parse_is_still_wired() -> None:
    config = with_condition({"type": "expression", "config": {"source": "result.x", "operator": "~", "value": 1}})
    config["steps"].append(step("c", inputs={"x": "{{ b.v }}"}))
    config["flow"]["paths"].append({"from": "a", "to": "c"})
    found = refused(config)
    assert [line.split(":")[0] for line in found] == ["flow.paths[0].condition.config.operator", "steps[2].inputs.x"]
    assert found[1] == "steps[2].inputs.x: 'b.v': step 'b' is not upstream of step 'c'"


def test_a_step_id_that_does_not_parse_is_still_known_to_references() -> None:
    config = with_condition({"type": "always"})
    config["steps"][0]["id"] = "a b"
    config["flow"] = {"start_at": "a b", "paths": [{"from": "a b", "to": "b"}]}
    config["steps"][1]["inputs"] = {"x": "{{ pipeline_input.v }}", "y": "{{ parameters.nope }}"}
    assert refused(config) == [
        "steps[0].id: step id 'a b' must match [A-Za-z0-9_-]+",
        "steps[1].inputs.y: 'parameters.nope': unknown parameter 'nope'",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"parameters": "fast"}, 'parameters: should be an object of parameter names and values, e.g. {"threshold": 0.8}, not text'),  # noqa: E501
        ({"flow": []}, 'flow: should be an object: {"start_at": <step>, "paths": [...]}, not a list'),
        ({"stream": 4}, 'stream: should be an object, e.g. {"key": "{{ pipeline_input.customer_id }}", "partitions": 4}, not the number 4'),  # noqa: E501
        ({"steps": []}, "steps: a pipeline needs at least one step"),
    ],
)  # fmt: skip
def test_wrong_types_say_what_form_is_expected(change: dict[str, Any], expected: str) -> None:
    config = with_condition({"type": "always"}) | change
    assert expected in refused(config)


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("inputs", "{{ a.text }}", 'steps[1].inputs: should be an object of input names and templates, e.g. {"raw": "{{ loader.text }}"}, not text'),  # noqa: E501
        ("config", [1], "steps[1].config: should be an object of config keys and values, not a list"),
        ("retry", 3, 'steps[1].retry: should be an object: {"max_attempts": 3, "backoff_s": 0.2, "max_backoff_s": 5}, not the number 3'),  # noqa: E501
    ],
)  # fmt: skip
def test_a_step_part_of_the_wrong_type_says_what_form_is_expected(where: str, value: Any, expected: str) -> None:
    config = with_condition({"type": "always"})
    config["steps"][1][where] = value
    assert refused(config) == [expected]


def test_a_condition_that_is_not_an_object_says_what_a_condition_is() -> None:
    assert refused(with_condition("always")) == [  # type: ignore[arg-type]
        'flow.paths[0].condition: should be a condition object, e.g. {"type": "always"}, not text'
    ]
    config = with_condition({"type": "all", "conditions": [{"type": "always"}, 3]})
    assert refused(config) == [
        'flow.paths[0].condition.conditions[1]: should be a condition object, e.g. {"type": "always"}, not the number 3'
    ]
