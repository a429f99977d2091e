"""Path conditions (DESIGN.md section 3): every operator and alias, missing and incomparable values, compound
and function conditions, templated values and every source root."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ia_modules.pipeline.conditions import (
    CompiledCondition,
    ConditionCompileError,
    Observation,
    compile_condition,
)
from ia_modules.pipeline.errors import ConditionError
from ia_modules.pipeline.models import OPERATOR_ALIASES, Condition
from ia_modules.pipeline.templates import Scope
from tests.unit import sample_steps

ADAPTER: TypeAdapter[Any] = TypeAdapter(Condition)
MODULE = sample_steps.MODULE

RESULT = {
    "score": 0.9,
    "count": 3,
    "label": "approved",
    "tags": ["a", "b", 1],
    "flag": True,
    "off": False,
    "nothing": None,
    "zero": 0,
    "nested": {"deep": {"value": 5}},
    "items": [{"id": 10}, {"id": 20}],
    "meta": {"key": "v"},
}
SCOPE = Scope(
    pipeline_input={"customer": "acme", "amount": 120, "region": "eu"},
    parameters={"threshold": 0.8, "limit": 100, "allowed": ["eu", "us"], "prefix": "app"},
    outputs={"scorer": {"score": 0.9, "result": {"grade": "A"}}, "loader": {"rows": 4}},
    result=RESULT,
)


def compile_(condition: dict[str, Any]) -> CompiledCondition:
    return compile_condition(ADAPTER.validate_python(condition))


def expr(source: str, operator: str, *value: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"source": source, "operator": operator}
    if value:
        config["value"] = value[0]
    return {"type": "expression", "config": config}


def evaluate(condition: dict[str, Any], scope: Scope = SCOPE) -> Observation:
    return compile_(condition).evaluate(scope)


def holds(source: str, operator: str, *value: Any) -> bool:
    return evaluate(expr(source, operator, *value)).taken


# -- every operator, true and false ----------------------------------------------------------------------------------

CASES = [
    # operator, value, true source, false source
    ("equals", "approved", "result.label", "result.count"),
    ("equals", 3, "result.count", "result.score"),
    ("equals", ["a", "b", 1], "result.tags", "result.label"),
    ("equals", {"deep": {"value": 5}}, "result.nested", "result.meta"),
    ("not_equals", "rejected", "result.label", None),
    ("greater_than", 0.8, "result.score", "result.zero"),
    ("greater_than_or_equal", 3, "result.count", "result.zero"),
    ("less_than", 1, "result.zero", "result.count"),
    ("less_than_or_equal", 0.9, "result.score", "result.count"),
    ("in", ["approved", "pending"], "result.label", "pipeline_input.customer"),
    ("in", "the approved list", "result.label", "pipeline_input.customer"),
    ("not_in", ["rejected"], "result.label", None),
    ("contains", "prov", "result.label", "pipeline_input.customer"),
    ("contains", "a", "result.tags", "result.items"),
    ("contains", "key", "result.meta", "result.nested"),
    ("not_contains", "zzz", "result.label", None),
    ("starts_with", "app", "result.label", "pipeline_input.customer"),
    ("ends_with", "oved", "result.label", "pipeline_input.customer"),
    ("matches", r"^appr\w+$", "result.label", "pipeline_input.customer"),
]


@pytest.mark.parametrize(("operator", "value", "true_source", "false_source"), CASES)
def test_every_operator_true_and_false(operator: str, value: Any, true_source: str, false_source: str | None) -> None:
    seen = evaluate(expr(true_source, operator, value))
    assert seen.taken is True
    assert seen.note is None
    if false_source is not None:
        assert evaluate(expr(false_source, operator, value)).taken is False


def test_not_equals_and_not_in_false_cases() -> None:
    assert holds("result.label", "not_equals", "approved") is False
    assert holds("result.label", "not_in", ["approved"]) is False
    assert holds("result.tags", "not_contains", "a") is False


@pytest.mark.parametrize(
    ("alias", "name"),
    list(OPERATOR_ALIASES.items()),
)
def test_symbolic_aliases_behave_like_their_names(alias: str, name: str) -> None:
    for source in ["result.score", "result.count", "result.zero"]:
        for value in [0, 0.9, 3, 4]:
            assert holds(source, alias, value) == holds(source, name, value), (source, value)


@pytest.mark.parametrize(
    ("alias", "value", "expected"),
    [
        ("==", 3, True),
        ("==", 4, False),
        ("!=", 4, True),
        ("!=", 3, False),
        (">", 2, True),
        (">", 3, False),
        (">=", 3, True),
        (">=", 4, False),
        ("<", 4, True),
        ("<", 3, False),
        ("<=", 3, True),
        ("<=", 2, False),
    ],
)
def test_symbolic_alias_results(alias: str, value: int, expected: bool) -> None:
    assert holds("result.count", alias, value) is expected


def test_boundaries_of_ordering() -> None:
    assert holds("result.score", "greater_than", 0.9) is False
    assert holds("result.score", "greater_than_or_equal", 0.9) is True
    assert holds("result.score", "less_than", 0.9) is False
    assert holds("result.score", "less_than_or_equal", 0.9) is True


def test_text_is_ordered_as_text() -> None:
    assert holds("result.label", "greater_than", "abc") is True
    assert holds("result.label", "less_than", "b") is True


def test_int_and_float_compare_as_numbers() -> None:
    assert holds("result.count", "equals", 3.0) is True
    assert holds("result.count", "less_than", 3.5) is True


# -- missing, null and incomparable values ---------------------------------------------------------------------------

BINARY = [
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
]


@pytest.mark.parametrize("operator", [*BINARY, "matches", "is_true", "is_false"])
@pytest.mark.parametrize("source", ["result.absent", "result.nothing", "result.nested.absent.deeper", "ghost.x"])
def test_missing_or_null_observed_value_is_false_with_a_note(operator: str, source: str) -> None:
    value = "x" if operator in ("matches", "starts_with", "ends_with") else ["x"] if "in" in operator else 1
    seen = evaluate(expr(source, operator, value))
    assert seen.taken is False
    assert seen.observed is None
    assert seen.note and "missing" in seen.note


@pytest.mark.parametrize(
    ("source", "operator", "value"),
    [
        ("result.label", "greater_than", 3),
        ("result.count", "less_than", "a"),
        ("result.tags", "greater_than_or_equal", 1),
        ("result.meta", "less_than_or_equal", 1),
        ("result.flag", "greater_than", 0),
        ("result.count", "in", "text"),
        ("result.tags", "in", "text"),
        ("result.count", "contains", "x"),
        ("result.label", "contains", 1),
        ("result.meta", "contains", 1),
        ("result.count", "starts_with", "x"),
        ("result.label", "ends_with", 3),
        ("result.count", "matches", r"\d"),
        ("result.tags", "matches", "a"),
    ],
)
def test_incomparable_values_are_false_with_a_note(source: str, operator: str, value: Any) -> None:
    seen = evaluate(expr(source, operator, value))
    assert seen.taken is False
    assert seen.observed == evaluate(expr(source, "exists")).observed
    assert seen.note


@pytest.mark.parametrize("operator", ["not_in", "not_contains"])
def test_negated_operators_are_false_too_when_values_cannot_be_compared(operator: str) -> None:
    seen = evaluate(expr("result.count", operator, "text"))
    assert seen.taken is False
    assert seen.note


def test_templated_value_that_is_missing_or_incomparable_is_false_with_a_note() -> None:
    seen = evaluate(expr("result.score", "greater_than", "{{ parameters.absent }}"))
    assert (seen.taken, seen.observed) == (False, 0.9)
    assert seen.note and "missing" in seen.note
    seen = evaluate(expr("result.score", "greater_than", "{{ parameters.allowed }}"))
    assert seen.taken is False and seen.note
    seen = evaluate(expr("result.label", "in", "{{ parameters.threshold }}"))
    assert seen.taken is False and seen.note


def test_in_an_object_looks_at_its_keys_and_never_raises_for_unhashable_values() -> None:
    assert holds("result.label", "in", "{{ result.nested }}") is False
    assert holds("pipeline_input.region", "in", "{{ pipeline_input }}") is False
    assert holds("result.nested.deep", "in", "{{ result.nested }}") is False  # a dict observed, not hashable
    seen = evaluate(expr("result.tags", "in", "{{ result.meta }}"))
    assert seen.taken is False and seen.note
    seen = evaluate(expr("result.tags", "not_in", "{{ result.meta }}"))
    assert seen.taken is False and seen.note


@pytest.mark.parametrize(
    ("source", "operator", "value", "expected"),
    [
        ("result.flag", "equals", 1, False),
        ("result.flag", "equals", True, True),
        ("result.off", "equals", 0, False),
        ("result.zero", "equals", False, False),
        ("result.count", "not_equals", True, True),
        ("result.flag", "in", [1, 2], False),
        ("result.flag", "in", [True], True),
        ("result.zero", "in", [False], False),
        ("result.tags", "contains", True, False),
    ],
)
def test_bool_is_not_a_number(source: str, operator: str, value: Any, expected: bool) -> None:
    assert holds(source, operator, value) is expected


# -- unary operators -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "exists"),
    [
        ("result.label", True),
        ("result.zero", True),
        ("result.off", True),
        ("result.tags", True),
        ("result.nothing", False),
        ("result.absent", False),
        ("scorer.score", True),
        ("loader.absent", False),
    ],
)
def test_exists_and_not_exists(source: str, exists: bool) -> None:
    assert holds(source, "exists") is exists
    assert holds(source, "not_exists") is (not exists)


@pytest.mark.parametrize(
    ("source", "is_true", "is_false"),
    [
        ("result.flag", True, False),
        ("result.off", False, True),
        ("result.count", False, False),
        ("result.zero", False, False),
        ("result.label", False, False),
        ("result.absent", False, False),
    ],
)
def test_is_true_and_is_false_are_strict(source: str, is_true: bool, is_false: bool) -> None:
    assert holds(source, "is_true") is is_true
    assert holds(source, "is_false") is is_false


def test_unary_operators_need_no_value_but_others_do() -> None:
    compile_(expr("result.x", "exists"))
    with pytest.raises(ValidationError, match="needs a 'value'"):
        compile_(expr("result.x", "equals"))


def test_observed_value_is_recorded() -> None:
    assert evaluate(expr("result.score", ">", 0.8)) == Observation(True, 0.9)
    assert evaluate(expr("result.score", "<", 0.8)) == Observation(False, 0.9)
    assert evaluate(expr("result.tags", "exists")).observed == ["a", "b", 1]


# -- matches ---------------------------------------------------------------------------------------------------------


def test_matches_searches_anywhere_unless_anchored() -> None:
    assert holds("result.label", "matches", "prov") is True
    assert holds("result.label", "matches", "^prov") is False
    assert holds("result.label", "matches", r"(?i)APPROVED") is True
    assert holds("pipeline_input.customer", "matches", "^a.*e$") is True


def test_matches_compiles_the_regex_once_and_rejects_bad_ones() -> None:
    compiled = compile_(expr("result.label", "matches", "^a"))
    assert compiled.pattern is not None  # type: ignore[attr-defined]
    with pytest.raises(ConditionCompileError, match="regular expression"):
        compile_(expr("result.label", "matches", "(unclosed"))
    with pytest.raises(ConditionCompileError, match="literal"):
        compile_(expr("result.label", "matches", "{{ parameters.prefix }}"))


def test_compile_rejects_constant_values_that_can_never_compare() -> None:
    with pytest.raises(ConditionCompileError, match="list or text"):
        compile_(expr("result.label", "in", 3))
    with pytest.raises(ConditionCompileError, match="number or text"):
        compile_(expr("result.count", "greater_than", [1]))
    with pytest.raises(ConditionCompileError, match="number or text"):
        compile_(expr("result.count", ">", True))


# -- sources and templated values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "observed"),
    [
        ("result.score", 0.9),
        ("result.nested.deep.value", 5),
        ("result.items.1.id", 20),
        ("pipeline_input.amount", 120),
        ("parameters.limit", 100),
        ("scorer.score", 0.9),
        ("steps.scorer.score", 0.9),
        ("steps.scorer.result.grade", "A"),
        ("steps.loader.result.rows", 4),
        ("steps.loader.output.rows", 4),
        ("{{ result.score }}", 0.9),
        ("result.absent || result.count", 3),
    ],
)
def test_source_roots(source: str, observed: Any) -> None:
    seen = evaluate(expr(source, "exists"))
    assert seen == Observation(True, observed)
    assert evaluate(expr(source, "equals", observed)).taken is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ parameters.threshold }}", True),
        ("{{ pipeline_input.amount }}", False),
        ("{{ steps.scorer.score }}", False),
        ("{parameters.threshold}", True),
    ],
)
def test_templated_value(value: str, expected: bool) -> None:
    assert holds("result.score", "greater_than", value) is expected


def test_templated_value_in_a_list() -> None:
    assert holds("pipeline_input.region", "in", "{{ parameters.allowed }}") is True
    assert holds("pipeline_input.region", "in", ["{{ parameters.prefix }}", "eu"]) is True
    assert holds("pipeline_input.customer", "in", ["{{ parameters.prefix }}", "eu"]) is False


def test_templated_value_is_resolved_per_evaluation() -> None:
    condition = compile_(expr("result.score", ">", "{{ parameters.threshold }}"))
    low = Scope({}, {"threshold": 0.1}, {}, {"score": 0.5})
    high = Scope({}, {"threshold": 0.9}, {}, {"score": 0.5})
    assert condition.evaluate(low).taken is True
    assert condition.evaluate(high).taken is False


def test_the_design_example_conditions() -> None:
    above = compile_(expr("result.quality_score", "greater_than", "{{ parameters.quality_threshold }}"))
    at_most = compile_(expr("result.quality_score", "less_than_or_equal", "{{ parameters.quality_threshold }}"))
    for score, high in [(0.95, True), (0.8, False), (0.1, False)]:
        scope = Scope({}, {"quality_threshold": 0.8}, {}, {"quality_score": score})
        assert above.evaluate(scope).taken is high
        assert at_most.evaluate(scope).taken is (not high)
    missing = Scope({}, {"quality_threshold": 0.8}, {}, {})
    assert not above.evaluate(missing).taken and not at_most.evaluate(missing).taken


# -- always, all, any, not -------------------------------------------------------------------------------------------


def test_always() -> None:
    assert evaluate({"type": "always"}).taken is True
    assert compile_({"type": "always"}).evaluate(Scope({}, {}, {})).taken is True


TRUE = expr("result.flag", "is_true")
FALSE = expr("result.off", "is_true")
MISSING = expr("result.absent", ">", 1)


@pytest.mark.parametrize(
    ("kind", "parts", "expected"),
    [
        ("all", [TRUE], True),
        ("all", [TRUE, TRUE], True),
        ("all", [TRUE, FALSE], False),
        ("all", [FALSE, TRUE], False),
        ("all", [TRUE, MISSING], False),
        ("any", [FALSE], False),
        ("any", [FALSE, TRUE], True),
        ("any", [TRUE, FALSE], True),
        ("any", [FALSE, FALSE], False),
        ("any", [MISSING, TRUE], True),
    ],
)
def test_all_and_any(kind: str, parts: list[dict[str, Any]], expected: bool) -> None:
    assert evaluate({"type": kind, "conditions": parts}).taken is expected


def test_not() -> None:
    assert evaluate({"type": "not", "condition": TRUE}).taken is False
    assert evaluate({"type": "not", "condition": FALSE}).taken is True
    assert evaluate({"type": "not", "condition": {"type": "not", "condition": TRUE}}).taken is True


def test_nesting() -> None:
    condition = {
        "type": "all",
        "conditions": [
            {"type": "any", "conditions": [FALSE, expr("result.score", ">", "{{ parameters.threshold }}")]},
            {"type": "not", "condition": expr("pipeline_input.region", "in", ["us"])},
            {"type": "all", "conditions": [expr("steps.scorer.result.grade", "==", "A"), {"type": "always"}]},
        ],
    }
    assert evaluate(condition).taken is True
    other = Scope({"region": "us"}, SCOPE.parameters, SCOPE.outputs, RESULT)
    assert evaluate(condition, other).taken is False


def test_compound_notes_say_why_a_part_failed() -> None:
    seen = evaluate({"type": "all", "conditions": [TRUE, MISSING]})
    assert seen.taken is False
    assert seen.note and "result.absent" in seen.note
    assert seen.observed == [True, None]


def test_empty_compounds_are_rejected() -> None:
    with pytest.raises(ValidationError):
        compile_({"type": "all", "conditions": []})
    with pytest.raises(ValidationError):
        compile_({"type": "any", "conditions": []})


def test_all_and_any_short_circuit() -> None:
    sample_steps.CALLS.clear()
    spy = {"type": "function", "config": {"function": f"{MODULE}:recording_check"}}
    assert evaluate({"type": "all", "conditions": [FALSE, spy]}).taken is False
    assert evaluate({"type": "any", "conditions": [TRUE, spy]}).taken is True
    assert sample_steps.CALLS == []
    assert evaluate({"type": "all", "conditions": [TRUE, spy]}).taken is True
    assert evaluate({"type": "any", "conditions": [FALSE, spy]}).taken is True
    assert len(sample_steps.CALLS) == 2


# -- function conditions ---------------------------------------------------------------------------------------------


def function(name: str, **args: Any) -> dict[str, Any]:
    return {"type": "function", "config": {"function": f"{MODULE}:{name}", "args": args}}


def test_sync_function_condition() -> None:
    assert evaluate(function("score_above", threshold=0.5)).taken is True
    assert evaluate(function("score_above", threshold=0.95)).taken is False


async def test_async_function_condition() -> None:
    condition = compile_(function("async_score_above", threshold=0.5))
    assert condition.is_async is True
    assert (await condition.evaluate_async(SCOPE)).taken is True
    assert (await compile_(function("async_score_above", threshold=0.95)).evaluate_async(SCOPE)).taken is False


@pytest.mark.parametrize("name", ["decorated_async_score_above", "async_callable_object"])
async def test_callables_that_return_awaitables_are_awaited(name: str) -> None:
    # Neither is a coroutine function, yet both return a coroutine: a decorator that does not keep the marker,
    # and an object with an async __call__. Both are async callables and must work as conditions.
    condition = compile_(function(name, threshold=0.5))
    assert condition.is_async is True
    assert (await condition.evaluate_async(SCOPE)) == Observation(True, True)
    assert (await compile_(function(name, threshold=0.95)).evaluate_async(SCOPE)).taken is False


async def test_compound_with_an_async_function_is_async() -> None:
    condition = compile_({"type": "not", "condition": function("async_score_above", threshold=0.95)})
    assert condition.is_async is True
    assert (await condition.evaluate_async(SCOPE)).taken is True


async def test_sync_conditions_also_evaluate_async() -> None:
    assert (await compile_(TRUE).evaluate_async(SCOPE)).taken is True
    assert (await compile_(function("score_above", threshold=0.5)).evaluate_async(SCOPE)).taken is True


def test_function_receives_the_context_and_args_as_keywords() -> None:
    sample_steps.CALLS.clear()
    assert evaluate(function("recording_check", answer=False, label="x")).taken is False
    [(_, context, args)] = sample_steps.CALLS
    assert args == {"answer": False, "label": "x"}
    assert context["result"] == RESULT
    assert context["pipeline_input"] == SCOPE.pipeline_input
    assert context["parameters"] == SCOPE.parameters
    assert context["steps"] == SCOPE.outputs


def test_function_returning_a_non_bool_or_raising_is_an_error_not_a_silent_false() -> None:
    with pytest.raises(ConditionError, match="returned str"):
        evaluate(function("returns_text"))
    with pytest.raises(KeyError):
        evaluate(function("raises"))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (f"{MODULE}:no_such_function", "no attribute"),
        ("tests.unit.no_such_module:f", "cannot import"),
        (f"{MODULE}:NOT_A_CLASS", "not callable"),
    ],
)
def test_function_that_cannot_be_imported(spec: str, fragment: str) -> None:
    with pytest.raises(ConditionCompileError, match=fragment) as caught:
        compile_({"type": "function", "config": {"function": spec}})
    assert caught.value.where == "condition.config.function"


def test_function_spec_must_name_module_and_callable() -> None:
    with pytest.raises(ValidationError):
        compile_({"type": "function", "config": {"function": "no_colon"}})


# -- shapes ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "sometimes"},
        {"type": "expression", "config": {"source": "result.x", "operator": "~=", "value": 1}},
        {"type": "expression", "config": {"source": "result.x", "operator": "equals", "value": 1, "extra": 1}},
        {"type": "expression", "source": "result.x", "operator": "equals", "value": 1},
        {"type": "not", "conditions": [{"type": "always"}]},
        {"config": {}},
    ],
)
def test_malformed_conditions_are_rejected(condition: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        compile_(condition)


def test_describe_is_readable() -> None:
    assert compile_(expr("result.score", "greater_than", 0.8)).describe() == "result.score > 0.8"
    assert compile_(expr("result.x", "exists")).describe() == "result.x exists"
    assert compile_(expr("result.s", ">", "{{ parameters.t }}")).describe() == "result.s > parameters.t"
    assert compile_({"type": "not", "condition": {"type": "always"}}).describe() == "not (always)"
