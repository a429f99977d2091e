"""Property tests: templates and conditions never crash on arbitrary JSON, and a whole-string template returns
exactly the value at its path."""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ia_modules.pipeline.conditions import ConditionCompileError, Observation, compile_condition
from ia_modules.pipeline.models import OPERATOR_ALIASES, OPERATORS, Condition
from ia_modules.pipeline.templates import Scope, TemplateSyntaxError, compile_value, render_text

ADAPTER: TypeAdapter[Any] = TypeAdapter(Condition)
SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON as the runtime sees it: orjson's domain (64-bit integers, finite floats).
SEGMENT_CHARS = "abcxyzABZ019_-"
segment_keys = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=4)
any_keys = st.one_of(segment_keys, st.text(max_size=6))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(any_keys, children, max_size=4)),
    max_leaves=16,
)
json_objects = st.dictionaries(any_keys, json_values, max_size=5)
step_ids = st.sampled_from(["a", "s1", "loader", "score_2", "x-y"])
small_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(segment_keys, children, max_size=3)),
    max_leaves=6,
)
small_objects = st.dictionaries(segment_keys, small_values, max_size=3)
scopes = st.builds(
    Scope,
    pipeline_input=small_objects,
    parameters=small_objects,
    outputs=st.dictionaries(step_ids, small_objects, max_size=3),
    result=small_values,
)


@st.composite
def references(draw: st.DrawFn) -> str:
    """A syntactically valid reference: any root, any depth of keys and indexes."""
    root = draw(st.sampled_from(["pipeline_input", "parameters", "steps.<id>", "<id>"]))
    step = draw(step_ids)
    root = root.replace("<id>", step)
    if root.startswith("steps.") and draw(st.booleans()):
        root += "." + draw(st.sampled_from(["result", "output"]))
    segments = draw(st.lists(st.one_of(segment_keys, st.integers(0, 5).map(str)), max_size=4))
    return ".".join([root, *segments])


literals = st.one_of(
    st.sampled_from(["true", "false", "null", "0", "-1.5", "'fallback'", '"quoted"', "''"]),
    st.integers(-100, 100).map(str),
)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    parts = draw(st.lists(references(), min_size=1, max_size=3))
    if draw(st.booleans()):
        parts.append(draw(literals))
    return " || ".join(parts)


@st.composite
def template_strings(draw: st.DrawFn) -> str:
    """Valid templates: whole, single-brace, or interpolated into text."""
    inner = draw(expressions())
    kind = draw(st.sampled_from(["whole", "single", "text"]))
    if kind == "whole":
        return f"{{{{ {inner} }}}}"
    if kind == "single" and inner.startswith(("pipeline_input", "parameters", "steps.")):
        return f"{{{inner}}}"
    prefix = draw(st.text(alphabet="abc :-", max_size=5))
    suffix = draw(st.text(alphabet="abc :-", max_size=5))
    return f"{prefix}{{{{ {inner} }}}}{suffix}{{{{ {draw(expressions())} }}}}"


templated_configs = st.recursive(
    st.one_of(template_strings(), scalars),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(segment_keys, children, max_size=3)),
    max_leaves=8,
)


def is_json(value: Any) -> bool:
    orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    return True


# -- templates never raise -------------------------------------------------------------------------------------------


@PROPERTY
@given(config=templated_configs, scope=scopes)
def test_valid_templates_compile_and_resolve_against_any_scope(config: Any, scope: Scope) -> None:
    resolved = compile_value(config).resolve(scope)
    assert is_json(resolved)


@PROPERTY
@given(text=st.text(alphabet=st.sampled_from(list("{}|. 'ab0_-\"")) | st.characters(), max_size=30), scope=scopes)
def test_arbitrary_text_either_compiles_or_raises_a_syntax_error(text: str, scope: Scope) -> None:
    try:
        compiled = compile_value({"key": [text]})
    except TemplateSyntaxError:
        return
    resolved = compiled.resolve(scope)
    assert isinstance(resolved["key"][0], str | int | float | bool | list | dict | type(None))


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


@PROPERTY
@given(value=json_values)
def test_values_without_braces_are_kept_as_they_are(value: Any) -> None:
    assume(not any("{" in text for text in strings_in(value)))
    compiled = compile_value(value)
    assert compiled.is_constant
    assert compiled.resolve(Scope({}, {}, {})) == value


# -- whole-string templates return exactly the value at the path -----------------------------------------------------


@st.composite
def value_and_path(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], Any]:
    """An object, a path of valid segments into it, and the value found there."""
    root: dict[str, Any] = draw(st.dictionaries(segment_keys, json_values, min_size=1, max_size=4))
    path: list[str] = []
    current: Any = root
    while True:
        if isinstance(current, dict):
            keys = [k for k in current if SEGMENT.fullmatch(k)]
        elif isinstance(current, list):
            keys = [str(i) for i in range(len(current))]
        else:
            keys = []
        if not keys or (path and draw(st.booleans())):
            break
        key = draw(st.sampled_from(keys))
        path.append(key)
        current = current[key] if isinstance(current, dict) else current[int(key)]
    return root, path, current


@PROPERTY
@given(case=value_and_path(), other=json_objects, step=step_ids)
def test_whole_string_template_returns_exactly_the_value_at_the_path(
    case: tuple[dict[str, Any], list[str], Any], other: dict[str, Any], step: str
) -> None:
    root, path, expected = case
    dotted = ".".join(path)
    scope = Scope(pipeline_input=root, parameters=root, outputs={step: root, "other": other})
    for template in [
        f"{{{{ pipeline_input.{dotted} }}}}",
        f"{{{{ parameters.{dotted} }}}}",
        f"{{{{ {step}.{dotted} }}}}",
        f"{{{{ steps.{step}.{dotted} }}}}",
        f"{{pipeline_input.{dotted}}}",
        f"{{ steps.{step}.{dotted} }}",
    ]:
        resolved = compile_value(template).resolve(scope)
        assert resolved == expected, template
        assert type(resolved) is type(expected), template


@PROPERTY
@given(case=value_and_path())
def test_interpolation_renders_the_value_as_text(case: tuple[dict[str, Any], list[str], Any]) -> None:
    root, path, expected = case
    resolved = compile_value(f"<{{{{ pipeline_input.{'.'.join(path)} }}}}>").resolve(Scope(root, {}, {}))
    assert resolved == f"<{render_text(expected)}>"
    if isinstance(expected, dict | list | bool | int | float) and expected is not None:
        assert orjson.loads(resolved[1:-1]) == expected


@PROPERTY
@given(case=value_and_path(), fallback=json_values)
def test_fallback_takes_a_present_value_even_when_falsy(
    case: tuple[dict[str, Any], list[str], Any], fallback: Any
) -> None:
    root, path, expected = case
    template = f"{{{{ pipeline_input.{'.'.join(path)} || parameters.fallback }}}}"
    resolved = compile_value(template).resolve(Scope(root, {"fallback": fallback}, {}))
    assert resolved == (fallback if expected is None else expected)


# -- conditions never raise ------------------------------------------------------------------------------------------

operators = st.sampled_from([*OPERATORS, *OPERATOR_ALIASES])


def _compile(condition: dict[str, Any]) -> Any:
    try:
        return compile_condition(ADAPTER.validate_python(condition))
    except (ValidationError, ConditionCompileError):
        return None


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never suspends (conditions without async functions)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise AssertionError("a condition without async functions suspended")


def check(observation: Observation) -> None:
    assert isinstance(observation.taken, bool)
    assert observation.note is None or isinstance(observation.note, str)


@PROPERTY
@given(operator=operators, observed=json_values, value=json_values)
def test_every_operator_against_any_observed_value_and_constant_value(operator: str, observed: Any, value: Any) -> None:
    condition = _compile({"type": "expression", "config": {"source": "result.x", "operator": operator, "value": value}})
    if condition is None:
        return  # refused at load, which is allowed; it must not fail at run time
    seen = condition.evaluate(Scope({}, {}, {}, {"x": observed}))
    check(seen)
    assert seen.observed == observed
    name = OPERATOR_ALIASES.get(operator, operator)
    if observed is None and name != "not_exists":
        assert seen.taken is False
        if name != "exists":
            assert seen.note


@PROPERTY
@given(operator=operators, observed=json_values, value=json_values)
def test_every_operator_against_any_templated_value(operator: str, observed: Any, value: Any) -> None:
    config = {"source": "pipeline_input.x || result.x", "operator": operator, "value": "{{ parameters.v }}"}
    condition = _compile({"type": "expression", "config": config})
    if OPERATOR_ALIASES.get(operator, operator) == "matches":
        assert condition is None  # a regex must be a literal
        return
    assert condition is not None
    check(condition.evaluate(Scope({}, {"v": value}, {}, {"x": observed})))


@PROPERTY
@given(pattern=st.text(max_size=12), observed=json_values)
def test_matches_with_any_pattern_and_observed_value(pattern: str, observed: Any) -> None:
    condition = _compile(
        {"type": "expression", "config": {"source": "result", "operator": "matches", "value": pattern}}
    )
    if condition is None:
        return
    seen = condition.evaluate(Scope({}, {}, {}, observed))
    check(seen)
    if not isinstance(observed, str):
        assert seen.taken is False


@st.composite
def condition_trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["always", "expression", "expression", "all", "any", "not"] if depth < 3 else ["always", "expression"]
        )
    )
    if kind == "always":
        return {"type": "always"}
    if kind == "expression":
        config: dict[str, Any] = {
            "source": draw(st.sampled_from(["result.a", "result.b.0", "pipeline_input.a", "parameters.v", "s.a"])),
            "operator": draw(operators),
        }
        if draw(st.booleans()):
            config["value"] = draw(st.one_of(st.just("{{ parameters.v }}"), scalars, st.lists(scalars, max_size=3)))
        return {"type": "expression", "config": config}
    if kind == "not":
        return {"type": "not", "condition": draw(condition_trees(depth + 1))}
    return {"type": kind, "conditions": draw(st.lists(condition_trees(depth + 1), min_size=1, max_size=3))}


@PROPERTY
@given(tree=condition_trees(), a=json_values, b=json_values)
def test_compound_conditions_never_raise_and_agree_sync_and_async(tree: dict[str, Any], a: Any, b: Any) -> None:
    condition = _compile(tree)
    if condition is None:
        return
    scope = Scope({"a": a}, {"v": b}, {"s": {"a": b}}, {"a": a, "b": [b]})
    seen = condition.evaluate(scope)
    check(seen)
    assert run_now(condition.evaluate_async(scope)) == seen
