"""Path conditions compiled once at load. Evaluating one never raises for data: a missing or incomparable
observed value makes the condition false, and the observation records the value and why."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .imports import ImportProblem, pipeline_callable
from .models import (
    AllCondition,
    AlwaysCondition,
    AnyCondition,
    Condition,
    ExpressionCondition,
    FunctionCondition,
    NotCondition,
)
from .templates import Compiled, Expression, Reference, Scope, compile_value, parse_expression

Comparison = Callable[[Any, Any], "bool | str"]
"""An operator: True/False, or a text saying why the values cannot be compared (the condition is then false)."""


@dataclass(slots=True)
class Observation:
    """What a condition saw: whether it held, the observed value of its source, and why it failed to compare."""

    taken: bool
    observed: Any = None
    note: str | None = None


class ConditionCompileError(ValueError):
    """A condition that cannot be compiled; ``where`` is the JSON path inside the condition."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def _equals(a: Any, b: Any) -> bool | str:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


_NUMBERS = (int, float)


def _ordered(compare: Callable[[Any, Any], bool]) -> Comparison:
    def apply(a: Any, b: Any) -> bool | str:
        if type(a) in _NUMBERS and type(b) in _NUMBERS:  # JSON numbers, the common case (bool is not in it)
            return compare(a, b)
        if not _same_kind(a, b):
            return f"cannot order {type(a).__name__} against {type(b).__name__}"
        return compare(a, b)

    return apply


def _member(a: Any, b: Any) -> bool | str:
    if isinstance(b, str):
        return a in b if isinstance(a, str) else f"cannot look for {type(a).__name__} in text"
    if isinstance(b, list | tuple):
        return any(_equals(a, item) is True for item in b)
    if isinstance(b, dict):
        return a in b if isinstance(a, str) else f"cannot look for {type(a).__name__} among keys"
    return f"'in' needs a list or text as value, got {type(b).__name__}"


def _contains(a: Any, b: Any) -> bool | str:
    if isinstance(a, str):
        return b in a if isinstance(b, str) else f"cannot look for {type(b).__name__} in text"
    if isinstance(a, list):
        return any(_equals(b, item) is True for item in a)
    if isinstance(a, dict):
        return b in a if isinstance(b, str) else f"cannot look for {type(b).__name__} among keys"
    return f"'contains' needs text, a list or an object, observed {type(a).__name__}"


def _text(test: Callable[[str, str], bool], name: str) -> Comparison:
    def apply(a: Any, b: Any) -> bool | str:
        if not (isinstance(a, str) and isinstance(b, str)):
            return f"'{name}' needs text, observed {type(a).__name__}"
        return test(a, b)

    return apply


def _negate(comparison: Comparison) -> Comparison:
    def apply(a: Any, b: Any) -> bool | str:
        outcome = comparison(a, b)
        return outcome if isinstance(outcome, str) else not outcome

    return apply


BINARY_OPERATORS: dict[str, Comparison] = {
    "equals": _equals,
    "not_equals": _negate(_equals),
    "greater_than": _ordered(lambda a, b: a > b),
    "greater_than_or_equal": _ordered(lambda a, b: a >= b),
    "less_than": _ordered(lambda a, b: a < b),
    "less_than_or_equal": _ordered(lambda a, b: a <= b),
    "in": _member,
    "not_in": _negate(_member),
    "contains": _contains,
    "not_contains": _negate(_contains),
    "starts_with": _text(str.startswith, "starts_with"),
    "ends_with": _text(str.endswith, "ends_with"),
}


class CompiledCondition:
    """A condition ready to evaluate; ``is_async`` when it calls a function somewhere (which may be async)."""

    is_async: bool = False
    always: bool = False
    """Holds whatever the scope: the kernel takes the path without evaluating it."""

    def evaluate(self, scope: Scope) -> Observation:
        raise NotImplementedError

    async def evaluate_async(self, scope: Scope) -> Observation:
        return self.evaluate(scope)

    def references(self) -> list[Reference]:
        return []

    def describe(self) -> str:
        """A short human label, for diagrams and explain tables."""
        raise NotImplementedError


TAKEN = Observation(True, None, None)
"""What an ``always`` condition observes (shared: observations are only read)."""


class Always(CompiledCondition):
    always = True

    def evaluate(self, scope: Scope) -> Observation:
        return TAKEN

    def describe(self) -> str:
        return "always"


class Expressional(CompiledCondition):
    """``source operator value``: compares the observed source with a (possibly templated) value."""

    def __init__(self, source: Expression, operator: str, value: Compiled, pattern: re.Pattern[str] | None):
        self.source = source
        self.operator = operator
        self.value = value
        self.pattern = pattern
        self.compare = BINARY_OPERATORS.get(operator)

    def evaluate(self, scope: Scope) -> Observation:
        observed = self.source.resolve(scope)
        operator = self.operator
        if operator == "exists":
            return Observation(observed is not None, observed)
        if operator == "not_exists":
            return Observation(observed is None, observed)
        if observed is None:
            return Observation(False, None, f"'{self.source.text}' is missing")
        if operator == "is_true":
            return Observation(observed is True, observed)
        if operator == "is_false":
            return Observation(observed is False, observed)
        if self.pattern is not None:
            if not isinstance(observed, str):
                return Observation(False, observed, f"'matches' needs text, observed {type(observed).__name__}")
            return Observation(self.pattern.search(observed) is not None, observed)
        expected = self.value.resolve(scope)
        if expected is None and operator not in ("equals", "not_equals"):
            return Observation(False, observed, "the value to compare with is missing")
        assert self.compare is not None
        outcome = self.compare(observed, expected)
        if isinstance(outcome, str):
            return Observation(False, observed, outcome)
        return Observation(outcome, observed)

    def references(self) -> list[Reference]:
        return [*self.source.references(), *self.value.references()]

    def describe(self) -> str:
        if self.operator in ("exists", "not_exists", "is_true", "is_false"):
            return f"{self.source.text} {self.operator}"
        value = self.pattern.pattern if self.pattern else _describe_value(self.value)
        return f"{self.source.text} {SYMBOLS.get(self.operator, self.operator)} {value}"


SYMBOLS = {
    "equals": "==",
    "not_equals": "!=",
    "greater_than": ">",
    "greater_than_or_equal": ">=",
    "less_than": "<",
    "less_than_or_equal": "<=",
}


def _describe_value(value: Compiled) -> str:
    if value.kind == "whole":
        return value.expressions[0].text
    return repr(value.value) if value.is_constant else "<template>"


class FunctionCall(CompiledCondition):
    """Calls ``package.module:callable(context, **args)``; it must return a bool."""

    def __init__(self, spec: str, function: Callable[..., Any], args: Mapping[str, Any]) -> None:
        self.spec = spec
        self.function = function
        self.args = dict(args)
        # Only calling it tells whether a callable returns an awaitable (a decorated coroutine function, an
        # object with an async __call__), so function conditions are always evaluated with evaluate_async.
        self.is_async = True

    def _context(self, scope: Scope) -> dict[str, Any]:
        return {
            "result": scope.result,
            "pipeline_input": scope.pipeline_input,
            "parameters": scope.parameters,
            "steps": scope.outputs,
        }

    def _check(self, outcome: Any) -> Observation:
        if not isinstance(outcome, bool):
            from .errors import ConditionError

            raise ConditionError(f"condition function '{self.spec}' returned {type(outcome).__name__}, expected bool")
        return Observation(outcome, outcome)

    def evaluate(self, scope: Scope) -> Observation:
        outcome = self.function(self._context(scope), **self.args)
        if inspect.isawaitable(outcome):
            if hasattr(outcome, "close"):
                outcome.close()
            raise RuntimeError(f"condition function '{self.spec}' is async; evaluate it with evaluate_async")
        return self._check(outcome)

    async def evaluate_async(self, scope: Scope) -> Observation:
        outcome = self.function(self._context(scope), **self.args)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return self._check(outcome)

    def describe(self) -> str:
        return f"{self.spec}()"


class Compound(CompiledCondition):
    """``all`` / ``any`` of sub-conditions (short-circuit, in order), or ``not`` of one."""

    def __init__(self, kind: str, parts: list[CompiledCondition]) -> None:
        self.kind = kind
        self.parts = parts
        self.is_async = any(p.is_async for p in parts)

    def _combine(self, observations: list[Observation]) -> Observation:
        seen = [o.observed for o in observations]
        notes = [o.note for o in observations if o.note]
        note = "; ".join(notes) if notes else None
        if self.kind == "not":
            return Observation(not observations[0].taken, seen[0], note)
        taken = all(o.taken for o in observations) if self.kind == "all" else any(o.taken for o in observations)
        return Observation(taken, seen, note)

    def _stop(self, observation: Observation) -> bool:
        return (self.kind == "all" and not observation.taken) or (self.kind == "any" and observation.taken)

    def evaluate(self, scope: Scope) -> Observation:
        observations: list[Observation] = []
        for part in self.parts:
            observations.append(part.evaluate(scope))
            if self._stop(observations[-1]):
                break
        return self._combine(observations)

    async def evaluate_async(self, scope: Scope) -> Observation:
        observations: list[Observation] = []
        for part in self.parts:
            observations.append(await part.evaluate_async(scope))
            if self._stop(observations[-1]):
                break
        return self._combine(observations)

    def references(self) -> list[Reference]:
        return [r for p in self.parts for r in p.references()]

    def describe(self) -> str:
        if self.kind == "not":
            return f"not ({self.parts[0].describe()})"
        return f" {self.kind} ".join(f"({p.describe()})" for p in self.parts)


def compile_condition(condition: Condition, where: str = "condition") -> CompiledCondition:
    """Compile a validated condition model; raises ConditionCompileError naming the JSON path."""
    if isinstance(condition, AlwaysCondition):
        return Always()
    if isinstance(condition, ExpressionCondition):
        return _compile_expression(condition, where)
    if isinstance(condition, FunctionCondition):
        try:
            function = pipeline_callable(condition.config.function)
        except ImportProblem as exc:
            raise ConditionCompileError(f"{where}.config.function", str(exc)) from None
        return FunctionCall(condition.config.function, function, condition.config.args)
    if isinstance(condition, AllCondition | AnyCondition):
        parts = [compile_condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(condition.conditions)]
        return Compound(condition.type, parts)
    if isinstance(condition, NotCondition):
        return Compound("not", [compile_condition(condition.condition, f"{where}.condition")])
    raise ConditionCompileError(where, f"unknown condition {condition!r}")  # pragma: no cover - models forbid it


def _compile_expression(condition: ExpressionCondition, where: str) -> Expressional:
    config = condition.config
    source_text = config.source.strip()
    if source_text.startswith("{{") and source_text.endswith("}}"):
        source_text = source_text[2:-2]
    try:
        source = parse_expression(source_text, allow_result=True)
    except ValueError as exc:
        raise ConditionCompileError(f"{where}.config.source", str(exc)) from None
    try:
        value = compile_value(config.value, allow_result=True)
    except ValueError as exc:
        raise ConditionCompileError(f"{where}.config.value", str(exc)) from None
    pattern = None
    if config.operator == "matches":
        if not (value.is_constant and isinstance(config.value, str)):
            raise ConditionCompileError(f"{where}.config.value", "'matches' needs a literal regular expression")
        try:
            pattern = re.compile(config.value)
        except re.error as exc:
            raise ConditionCompileError(f"{where}.config.value", f"invalid regular expression: {exc}") from None
    elif value.is_constant and config.operator in ("in", "not_in") and not isinstance(config.value, list | str):
        raise ConditionCompileError(f"{where}.config.value", f"'{config.operator}' needs a list or text")
    elif (
        value.is_constant
        and config.operator.startswith(("greater", "less"))
        and not (_is_number(config.value) or isinstance(config.value, str))
    ):
        raise ConditionCompileError(
            f"{where}.config.value", f"'{config.operator}' needs a number or text, got {config.value!r}"
        )
    return Expressional(source, config.operator, value, pattern)
