"""Templates (DESIGN.md section 3): every form, fallbacks, typing, interpolation, single braces, the guide's
TemplateParameterResolver, and syntax errors."""

from __future__ import annotations

from typing import Any

import pytest

from ia_modules.pipeline.core import TemplateParameterResolver
from ia_modules.pipeline.templates import Scope, TemplateSyntaxError, compile_value

PIPELINE_INPUT = {
    "text": "hello",
    "count": 3,
    "zero": 0,
    "empty": "",
    "no": False,
    "nothing": None,
    "items": [{"name": "first", "tags": ["a", "b"]}, {"name": "second"}],
    "deep": {"a": {"b": {"c": {"d": "bottom"}}}},
}
PARAMETERS = {"threshold": 0.8, "mode": "fast", "limits": {"max": 10}, "flag": True}
OUTPUTS: dict[str, Any] = {
    "loader": {"text": "loaded", "size": 6, "meta": {"lang": "en"}},
    "proc": {"result": {"score": 0.9, "label": "good"}, "score": 0.1},
    "plain": {"score": 0.5, "label": "plain", "output": {"kind": "real output key"}},
    "lister": {"rows": [[1, 2], [3, 4]]},
}
SCOPE = Scope(PIPELINE_INPUT, PARAMETERS, OUTPUTS)


def resolve(value: Any, scope: Scope = SCOPE) -> Any:
    return compile_value(value).resolve(scope)


# -- roots -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ parameters.threshold }}", 0.8),
        ("{{ parameters.limits.max }}", 10),
        ("{{ pipeline_input.text }}", "hello"),
        ("{{ pipeline_input.count }}", 3),
        ("{{ loader.text }}", "loaded"),
        ("{{ loader.meta.lang }}", "en"),
        ("{{ steps.loader.text }}", "loaded"),
        ("{{ steps.loader.meta.lang }}", "en"),
        ("{{pipeline_input.text}}", "hello"),
        ("{{   parameters.mode   }}", "fast"),
    ],
)
def test_each_root_resolves(template: str, expected: Any) -> None:
    assert resolve(template) == expected


def test_a_root_alone_gives_the_whole_object() -> None:
    assert resolve("{{ pipeline_input }}") == PIPELINE_INPUT
    assert resolve("{{ parameters }}") == PARAMETERS
    assert resolve("{{ loader }}") == OUTPUTS["loader"]
    assert resolve("{{ steps.loader }}") == OUTPUTS["loader"]


def test_any_depth() -> None:
    assert resolve("{{ pipeline_input.deep.a.b.c.d }}") == "bottom"
    assert resolve("{{ pipeline_input.deep.a.b }}") == {"c": {"d": "bottom"}}


def test_list_indexes() -> None:
    assert resolve("{{ pipeline_input.items.0.name }}") == "first"
    assert resolve("{{ pipeline_input.items.1.name }}") == "second"
    assert resolve("{{ pipeline_input.items.0.tags.1 }}") == "b"
    assert resolve("{{ lister.rows.1.0 }}") == 3
    assert resolve("{{ steps.lister.rows.0 }}") == [1, 2]


def test_index_out_of_range_or_on_a_non_list_is_null() -> None:
    assert resolve("{{ pipeline_input.items.5.name }}") is None
    assert resolve("{{ pipeline_input.text.0 }}") is None
    assert resolve("{{ pipeline_input.items.first }}") is None


def test_a_digit_key_of_an_object_is_found_by_name() -> None:
    scope = Scope({"by_year": {"2024": "yes"}}, {}, {})
    assert resolve("{{ pipeline_input.by_year.2024 }}", scope) == "yes"


def test_a_key_with_leading_zeros_is_a_key_not_an_index() -> None:
    scope = Scope({"codes": {"007": "bond", "00": "zeros", "7": "seven"}, "list": ["a", "b"]}, {}, {})
    assert resolve("{{ pipeline_input.codes.007 }}", scope) == "bond"
    assert resolve("{{ pipeline_input.codes.00 }}", scope) == "zeros"
    assert resolve("{{ pipeline_input.codes.7 }}", scope) == "seven"
    assert resolve("{{ pipeline_input.list.01 }}", scope) is None


# -- steps.<s>.result / .output --------------------------------------------------------------------------------------


def test_steps_result_uses_a_real_result_key_first() -> None:
    assert resolve("{{ steps.proc.result.score }}") == 0.9
    assert resolve("{{ steps.proc.result }}") == {"score": 0.9, "label": "good"}


def test_steps_result_is_an_alias_for_the_output_when_there_is_no_result_key() -> None:
    assert resolve("{{ steps.plain.result.score }}") == 0.5
    assert resolve("{{ steps.plain.result.label }}") == "plain"
    assert resolve("{{ steps.plain.result }}") == OUTPUTS["plain"]


def test_steps_output_alias_and_real_output_key() -> None:
    assert resolve("{{ steps.loader.output.size }}") == 6
    assert resolve("{{ steps.proc.output.score }}") == 0.1
    assert resolve("{{ steps.plain.output.kind }}") == "real output key"


def test_result_alias_at_any_depth() -> None:
    scope = Scope({}, {}, {"s": {"a": {"b": [{"c": "deep"}]}}})
    assert resolve("{{ steps.s.result.a.b.0.c }}", scope) == "deep"
    assert resolve("{{ steps.s.output.a.b.0.c }}", scope) == "deep"


def test_bare_step_reference_does_not_alias_result() -> None:
    # Only the steps.<s>.result form aliases; {{ s.result }} reads the real key (the guide's processors have one).
    assert resolve("{{ proc.result.label }}") == "good"
    assert resolve("{{ plain.result }}") is None


# -- missing values --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ pipeline_input.absent }}",
        "{{ pipeline_input.absent.deeper.still }}",
        "{{ pipeline_input.text.length }}",
        "{{ pipeline_input.nothing.inside }}",
        "{{ parameters.absent }}",
        "{{ not_run.field }}",
        "{{ steps.not_run.field }}",
        "{{ steps.not_run.result.field }}",
        "{{ loader.absent }}",
    ],
)
def test_missing_values_resolve_to_null(template: str) -> None:
    assert resolve(template) is None


# -- || fallbacks ----------------------------------------------------------------------------------------------------


def test_fallback_takes_the_first_present_value() -> None:
    assert resolve("{{ pipeline_input.absent || pipeline_input.text }}") == "hello"
    assert resolve("{{ pipeline_input.text || pipeline_input.count }}") == "hello"
    assert resolve("{{ steps.not_run.x || loader.missing || loader.size }}") == 6


def test_fallback_skips_null_values() -> None:
    assert resolve("{{ pipeline_input.nothing || pipeline_input.count }}") == 3


@pytest.mark.parametrize(("field", "value"), [("zero", 0), ("empty", ""), ("no", False)])
def test_falsy_values_are_present(field: str, value: Any) -> None:
    result = resolve(f"{{{{ pipeline_input.{field} || pipeline_input.text }}}}")
    assert result == value
    assert type(result) is type(value)


def test_fallback_all_missing_is_null() -> None:
    assert resolve("{{ pipeline_input.a || pipeline_input.b || steps.x.y }}") is None


def test_three_way_fallback_like_the_guide() -> None:
    scope = Scope({}, {}, {"standard_processor": {"result": {"rows": 2}}})
    template = "{{ advanced_processor.result || standard_processor.result }}"
    assert resolve(template, scope) == {"rows": 2}
    scope = Scope({}, {}, {"advanced_processor": {"result": {"rows": 1}}, "standard_processor": {"result": 2}})
    assert resolve(template, scope) == {"rows": 1}


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("'default'", "default"),
        ('"double quoted"', "double quoted"),
        ("3", 3),
        ("-2.5", -2.5),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("''", ""),
    ],
)
def test_literal_fallbacks(literal: str, expected: Any) -> None:
    result = resolve(f"{{{{ pipeline_input.absent || {literal} }}}}")
    assert result == expected
    assert type(result) is type(expected)


def test_literal_fallback_not_used_when_a_value_is_present() -> None:
    assert resolve("{{ pipeline_input.count || 99 }}") == 3


# -- whole string keeps type, interpolation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ pipeline_input.count }}", 3),
        ("{{ parameters.threshold }}", 0.8),
        ("{{ parameters.flag }}", True),
        ("{{ pipeline_input.no }}", False),
        ("{{ pipeline_input.items }}", PIPELINE_INPUT["items"]),
        ("{{ parameters.limits }}", {"max": 10}),
        ("{{ pipeline_input.nothing }}", None),
    ],
)
def test_whole_string_template_keeps_the_type(template: str, expected: Any) -> None:
    result = resolve(template)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ pipeline_input.text }}!", "Hello hello!"),
        ("n={{ pipeline_input.count }}", "n=3"),
        ("t={{ parameters.threshold }}", "t=0.8"),
        ("flag={{ parameters.flag }}", "flag=true"),
        ("no={{ pipeline_input.no }}", "no=false"),
        ("[{{ pipeline_input.nothing }}]", "[]"),
        ("[{{ pipeline_input.absent }}]", "[]"),
        ("limits={{ parameters.limits }}", 'limits={"max":10}'),
        ("tags={{ pipeline_input.items.0.tags }}", 'tags=["a","b"]'),
        ("{{ parameters.mode }}/{{ loader.text }}", "fast/loaded"),
        (" {{ pipeline_input.count }}", " 3"),
        ("{{ pipeline_input.zero || 5 }} items", "0 items"),
    ],
)
def test_interpolation_inside_longer_text(template: str, expected: str) -> None:
    assert resolve(template) == expected


# -- single-brace form -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{steps.loader.text}", "loaded"),
        ("{steps.proc.result.score}", 0.9),
        ("{steps.plain.result.score}", 0.5),
        ("{parameters.threshold}", 0.8),
        ("{pipeline_input.count}", 3),
        ("{ pipeline_input.items.0.tags }", ["a", "b"]),
        ("{parameters.limits}", {"max": 10}),
        ("{steps.not_run.field}", None),
        ("{pipeline_input.absent || parameters.mode}", "fast"),
    ],
)
def test_single_brace_form_keeps_the_type(template: str, expected: Any) -> None:
    result = resolve(template)
    assert result == expected
    assert type(result) is type(expected)


def test_single_brace_form_interpolates_in_text() -> None:
    assert resolve("score {steps.proc.result.score} of {parameters.limits.max}") == "score 0.9 of 10"


@pytest.mark.parametrize(
    "text",
    [
        "{foo}",
        "{loader.text}",
        "{result.score}",
        '{"parameters": 1, "steps": [1]}',
        "{parameters: 1}",
        "set() is {}",
        "a {b} c",
        "{ 'steps': 2 }",
        "}{",
        "closing }} alone",
    ],
)
def test_other_single_brace_text_stays_literal(text: str) -> None:
    assert resolve(text) == text
    assert compile_value(text).is_constant


def test_plain_strings_and_non_strings_are_constants() -> None:
    for value in ["plain text", "", 3, 2.5, True, None, [1, "x"], {"a": {"b": [1]}}]:
        compiled = compile_value(value)
        assert compiled.is_constant
        assert compiled.resolve(SCOPE) == value


# -- nested configs --------------------------------------------------------------------------------------------------


def test_nested_dicts_and_lists_resolve_recursively() -> None:
    config = {
        "threshold": "{{ parameters.threshold }}",
        "constant": {"keep": [1, 2, {"x": "y"}]},
        "nested": {
            "list": ["{{ pipeline_input.count }}", "literal", {"deep": "{{ steps.loader.meta }}"}],
            "text": "mode {{ parameters.mode }}",
            "missing": "{{ pipeline_input.absent }}",
        },
        "number": 7,
    }
    assert resolve(config) == {
        "threshold": 0.8,
        "constant": {"keep": [1, 2, {"x": "y"}]},
        "nested": {
            "list": [3, "literal", {"deep": {"lang": "en"}}],
            "text": "mode fast",
            "missing": None,
        },
        "number": 7,
    }


def test_missing_input_key_is_kept_as_null() -> None:
    assert resolve({"raw": "{{ pipeline_input.absent }}", "other": 1}) == {"raw": None, "other": 1}


def test_compiled_template_resolves_against_each_scope_afresh() -> None:
    compiled = compile_value({"v": "{{ pipeline_input.v }}", "s": "v={{ pipeline_input.v }}"})
    assert compiled.resolve(Scope({"v": 1}, {}, {})) == {"v": 1, "s": "v=1"}
    assert compiled.resolve(Scope({"v": "two"}, {}, {})) == {"v": "two", "s": "v=two"}
    assert compiled.resolve(Scope({}, {}, {})) == {"v": None, "s": "v="}


def test_resolving_does_not_mutate_the_template_or_share_results() -> None:
    config = {"a": ["{{ pipeline_input.count }}"]}
    compiled = compile_value(config)
    first = compiled.resolve(SCOPE)
    first["a"].append("changed")
    assert compiled.resolve(SCOPE) == {"a": [3]}
    assert config == {"a": ["{{ pipeline_input.count }}"]}


# -- syntax errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ pipeline_input.text", "unclosed"),
        ("start {{ pipeline_input.text }} then {{ pipeline_input.count", "unclosed"),
        ("{{ }}", "empty"),
        ("{{ pipeline_input.a || }}", "empty"),
        ("{{ || pipeline_input.a }}", "empty"),
        ("{{ pipeline_input..a }}", "bad segment"),
        ("{{ pipeline_input.a b }}", "bad segment"),
        ("{{ pipeline_input.a + 1 }}", "bad segment"),
        ("{{ steps }}", "step id"),
        ('{{ pipeline_input.a || "unterminated }}', "literal"),
    ],
)
def test_syntax_errors_raise_clearly(template: str, fragment: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=fragment) as caught:
        compile_value({"key": [template]})
    assert isinstance(caught.value, ValueError)


def test_result_root_is_only_for_conditions() -> None:
    with pytest.raises(TemplateSyntaxError, match="result"):
        compile_value("{{ result.score }}")
    compiled = compile_value("{{ result.score }}", allow_result=True)
    assert compiled.resolve(Scope({}, {}, {}, result={"score": 2})) == 2


# -- TemplateParameterResolver (the guide's troubleshooting helper) --------------------------------------------------

GUIDE_CONTEXT = {
    "parameters": {"param1": "value1"},
    "steps": {"step1": {"result": {"data": "test"}}},
    "pipeline_input": {"input_field": "input_value"},
}


def test_guide_troubleshooting_example() -> None:
    config = {"field": "{steps.step1.result.missing_field}"}
    params = TemplateParameterResolver.extract_template_parameters(config)
    assert params == ["steps.step1.result.missing_field"]
    resolved = TemplateParameterResolver.resolve_parameters(config, GUIDE_CONTEXT)
    assert resolved == {"field": None}


def test_resolver_resolves_every_form_against_the_guide_context() -> None:
    config = {
        "data": "{steps.step1.result.data}",
        "double": "{{ steps.step1.result.data }}",
        "bare": "{{ step1.result }}",
        "param": "{{ parameters.param1 }}",
        "input": "{pipeline_input.input_field}",
        "text": "p={{ parameters.param1 }}, in={{ pipeline_input.input_field }}",
        "list": ["{{ parameters.param1 }}", 1],
        "fallback": "{{ parameters.absent || pipeline_input.input_field }}",
    }
    assert TemplateParameterResolver.resolve_parameters(config, GUIDE_CONTEXT) == {
        "data": "test",
        "double": "test",
        "bare": {"data": "test"},
        "param": "value1",
        "input": "input_value",
        "text": "p=value1, in=input_value",
        "list": ["value1", 1],
        "fallback": "input_value",
    }


def test_extract_lists_every_reference_once_in_order() -> None:
    config = {
        "a": "{{ parameters.p || pipeline_input.q }}",
        "b": ["{steps.s.result.x}", "{{ parameters.p }}"],
        "c": {"d": "x {{ other.y }} y {{ 'literal' }}"},
        "e": "no template here",
        "f": 3,
    }
    assert TemplateParameterResolver.extract_template_parameters(config) == [
        "parameters.p",
        "pipeline_input.q",
        "steps.s.result.x",
        "other.y",
    ]


def test_extract_from_a_config_without_templates_is_empty() -> None:
    assert TemplateParameterResolver.extract_template_parameters({"a": 1, "b": "text", "c": ["{foo}"]}) == []


def test_resolver_with_partial_context() -> None:
    resolved = TemplateParameterResolver.resolve_parameters(
        {"a": "{{ parameters.p }}", "b": "{{ pipeline_input.x }}", "c": "{{ s.y }}"}, {"parameters": {"p": 1}}
    )
    assert resolved == {"a": 1, "b": None, "c": None}


def test_resolver_reports_syntax_errors() -> None:
    with pytest.raises(TemplateSyntaxError):
        TemplateParameterResolver.resolve_parameters({"a": "{{ parameters. }}"}, GUIDE_CONTEXT)
    with pytest.raises(TemplateSyntaxError):
        TemplateParameterResolver.extract_template_parameters({"a": "{{ parameters.p"})


def test_a_quoted_literal_fallback_may_contain_the_fallback_operator() -> None:
    from ia_modules.pipeline.templates import Scope, compile_value

    assert compile_value("{{ pipeline_input.x || 'a || b' }}").resolve(Scope({}, {}, {})) == "a || b"


def test_single_brace_text_that_is_not_a_reference_stays_literal() -> None:
    from ia_modules.pipeline.templates import Scope, compile_value

    scope = Scope({}, {}, {"s": {"f": 1}})
    assert compile_value("{steps are good}").resolve(scope) == "{steps are good}"
    assert compile_value("{steps.s.f} and {parameters of life}").resolve(scope) == "1 and {parameters of life}"
