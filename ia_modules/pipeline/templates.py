"""Templates: ``{{ a.b || c.d }}`` compiled once into accessors that resolve against a run's values.

A string that is exactly one template keeps the resolved value's type; a template inside longer text is
interpolated (null as empty text, other non-strings as JSON). ``a || b`` takes the first value that is present
and not null; a literal (``'x'``, ``"x"``, ``3``, ``true``, ``null``) may stand as a fallback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Root = Literal["pipeline_input", "parameters", "step", "result"]

_DOUBLE = re.compile(r"\{\{(.*?)\}\}", re.S)
_SINGLE = re.compile(r"(?<!\{)\{\s*((?:parameters|steps|pipeline_input)(?:[.\s|][^{}]*)?)\s*\}(?!\})")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_MISSING: Any = object()

Accessor = Callable[["Scope"], Any]
"""A compiled template: resolves it against a scope with no dispatch on its shape left to do."""


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; the message says which part and why."""


@dataclass(slots=True)
class Scope:
    """The values templates resolve against: the run's input, the parameters, step outputs so far and,
    for conditions, the output of the step a path leaves."""

    pipeline_input: Mapping[str, Any]
    parameters: Mapping[str, Any]
    outputs: Mapping[str, Any]
    result: Any = None


@dataclass(frozen=True, slots=True)
class Reference:
    """A dotted reference such as ``steps.loader.result.text`` or ``pipeline_input.items.0``."""

    text: str
    root: Root
    step: str | None
    path: tuple[str | int, ...]
    alias_result: bool = False

    def resolve(self, scope: Scope) -> Any:
        if self.root == "pipeline_input":
            value: Any = scope.pipeline_input
        elif self.root == "parameters":
            value = scope.parameters
        elif self.root == "result":
            value = scope.result
        else:
            value = scope.outputs.get(self.step)  # type: ignore[arg-type]
            if value is None:
                return None
            path = self.path
            if self.alias_result and path and not (isinstance(value, Mapping) and path[0] in value):
                return walk(value, path[1:])
        return walk(value, self.path)

    def accessor(self) -> Accessor:
        """``resolve`` specialised for this reference (most read one key of a step's output)."""
        path = self.path
        if self.root == "step" and not self.alias_result:
            step = self.step
            if len(path) == 1 and type(path[0]) is str:
                key = path[0]

                def step_key(scope: Scope) -> Any:
                    value = scope.outputs.get(step)  # type: ignore[arg-type]
                    if type(value) is dict:
                        return value.get(key)
                    return None if value is None else walk(value, path)

                return step_key

            def step_path(scope: Scope) -> Any:
                value = scope.outputs.get(step)  # type: ignore[arg-type]
                return None if value is None else walk(value, path)

            return step_path
        if self.root == "pipeline_input":
            return lambda scope: walk(scope.pipeline_input, path)
        if self.root == "parameters":
            return lambda scope: walk(scope.parameters, path)
        if self.root == "result" and len(path) == 1 and type(path[0]) is str:
            key = path[0]

            def result_key(scope: Scope) -> Any:
                value = scope.result
                return value.get(key) if type(value) is dict else walk(value, path)

            return result_key
        return self.resolve


def walk(value: Any, path: tuple[str | int, ...]) -> Any:
    """Follow ``path`` through dicts (by key) and lists (by index); None where anything is missing."""
    for segment in path:
        kind = type(value)
        if kind is dict:  # the common case first: ABC checks cost more than the lookup
            value = value.get(segment if type(segment) is str else str(segment))
        elif kind is list:
            if type(segment) is int and -len(value) <= segment < len(value):
                value = value[segment]
            else:
                return None
        elif isinstance(value, Mapping):
            value = value.get(str(segment))
        else:
            return None
        if value is None:
            return None
    return value


@dataclass(frozen=True, slots=True)
class LiteralValue:
    value: Any

    def accessor(self) -> Accessor:
        value = self.value
        return lambda scope: value


@dataclass(frozen=True, slots=True)
class Expression:
    """``a || b || c``: the first alternative that is present and not null."""

    text: str
    alternatives: tuple[Reference | LiteralValue, ...]
    resolve: Accessor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolve", self.accessor())

    def accessor(self) -> Accessor:
        accessors = tuple(alternative.accessor() for alternative in self.alternatives)
        if len(accessors) == 1:
            return accessors[0]

        def first_present(scope: Scope) -> Any:
            for get in accessors:
                value = get(scope)
                if value is not None:
                    return value
            return None

        return first_present

    def references(self) -> Iterator[Reference]:
        for alternative in self.alternatives:
            if isinstance(alternative, Reference):
                yield alternative


def parse_reference(text: str, *, allow_result: bool = False) -> Reference:
    """Parse one dotted reference; the root decides where it points."""
    segments = text.split(".")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise TemplateSyntaxError(f"'{text}' is not a reference: bad segment '{segment}'")
    path: tuple[str | int, ...] = tuple(_segment(s) for s in segments[1:])
    head = segments[0]
    if head == "pipeline_input":
        return Reference(text, "pipeline_input", None, path)
    if head == "parameters":
        return Reference(text, "parameters", None, path)
    if head == "result":
        if not allow_result:
            raise TemplateSyntaxError(f"'{text}': 'result' only names the step a path leaves, in conditions")
        return Reference(text, "result", None, path)
    if head == "steps":
        if not path:
            raise TemplateSyntaxError(f"'{text}': 'steps' must be followed by a step id")
        step, rest = str(segments[1]), path[1:]
        return Reference(text, "step", step, rest, alias_result=bool(rest) and rest[0] in ("result", "output"))
    return Reference(text, "step", head, path)


def _segment(text: str) -> str | int:
    """A list index when the segment is a number written plainly (``0``, ``12``); else a key (``007``)."""
    return int(text) if text.isdigit() and str(int(text)) == text else text


def _parses(text: str) -> bool:
    try:
        parse_expression(text)
    except TemplateSyntaxError:
        return False
    return True


def _alternatives(text: str) -> list[str]:
    """Split on ``||`` outside quoted literals."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif text.startswith("||", index):
            parts.append("".join(current))
            current = []
            index += 2
            continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def parse_expression(text: str, *, allow_result: bool = False) -> Expression:
    """Parse the inside of a template: references and literals joined by ``||``."""
    alternatives: list[Reference | LiteralValue] = []
    for part in (p.strip() for p in _alternatives(text)):
        if not part:
            raise TemplateSyntaxError(f"'{text.strip()}': empty alternative")
        alternatives.append(_literal(part) or parse_reference(part, allow_result=allow_result))
    return Expression(text.strip(), tuple(alternatives))


def _literal(part: str) -> LiteralValue | None:
    if len(part) >= 2 and part[0] == part[-1] == "'":
        return LiteralValue(part[1:-1])
    if part.startswith('"') or _NUMBER.fullmatch(part) or part in ("true", "false", "null"):
        try:
            return LiteralValue(orjson.loads(part))
        except orjson.JSONDecodeError as exc:
            raise TemplateSyntaxError(f"bad literal {part}: {exc}") from None
    return None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A JSON value with its templates compiled; ``resolve`` rebuilds it for a scope."""

    kind: Literal["constant", "whole", "text", "dict", "list"]
    value: Any = None
    parts: tuple[Any, ...] = ()
    expressions: tuple[Expression, ...] = field(default=())
    resolve: Accessor = field(init=False, repr=False, compare=False)
    """Rebuild the value for a scope (compiled once, with the shape's dispatch done here)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolve", self._accessor())

    def _accessor(self) -> Accessor:
        kind, value = self.kind, self.value
        if kind == "constant":
            return lambda scope: value
        if kind == "whole":
            return self.expressions[0].resolve
        if kind == "text":
            parts = tuple(p if isinstance(p, str) else p.resolve for p in self.parts)
            return lambda scope: "".join(p if isinstance(p, str) else render_text(p(scope)) for p in parts)
        if kind == "dict":
            items = tuple((key, item.resolve) for key, item in self.parts)
            return lambda scope: {key: get(scope) for key, get in items}
        elements = tuple(item.resolve for item in self.parts)
        return lambda scope: [get(scope) for get in elements]

    @property
    def is_constant(self) -> bool:
        return not self.expressions

    def references(self) -> Iterator[Reference]:
        for expression in self.expressions:
            yield from expression.references()


def render_text(value: Any) -> str:
    """How a value reads inside a longer string: text as is, null as nothing, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def compile_value(value: Any, *, allow_result: bool = False) -> Compiled:
    """Compile every template in a JSON value (dicts and lists recursively)."""
    if isinstance(value, str):
        return _compile_string(value, allow_result)
    if isinstance(value, dict):
        items = tuple((str(k), compile_value(v, allow_result=allow_result)) for k, v in value.items())
        if all(item.is_constant for _, item in items):
            return Compiled("constant", value)
        return Compiled("dict", parts=items, expressions=tuple(e for _, i in items for e in i.expressions))
    if isinstance(value, list):
        elements = tuple(compile_value(v, allow_result=allow_result) for v in value)
        if all(e.is_constant for e in elements):
            return Compiled("constant", value)
        return Compiled("list", parts=elements, expressions=tuple(x for e in elements for x in e.expressions))
    return Compiled("constant", value)


def _compile_string(text: str, allow_result: bool) -> Compiled:
    spans: list[tuple[int, int, str]] = [(m.start(), m.end(), m.group(1)) for m in _DOUBLE.finditer(text)]
    if "{{" in _DOUBLE.sub("", text):
        raise TemplateSyntaxError(f"unclosed template in '{text}'")
    if not spans:  # the single-brace form counts only where it parses; other braces are plain text
        spans = [(m.start(), m.end(), m.group(1)) for m in _SINGLE.finditer(text) if _parses(m.group(1))]
    if not spans:
        return Compiled("constant", text)
    expressions = tuple(parse_expression(inner, allow_result=allow_result) for _, _, inner in spans)
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(text):
        return Compiled("whole", expressions=expressions)
    parts: list[Any] = []
    cursor = 0
    for (start, end, _), expression in zip(spans, expressions, strict=True):
        if start > cursor:
            parts.append(text[cursor:start])
        parts.append(expression)
        cursor = end
    if cursor < len(text):
        parts.append(text[cursor:])
    return Compiled("text", parts=tuple(parts), expressions=expressions)


def scope_from_context(context: Mapping[str, Any]) -> Scope:
    """A scope from the guide's context shape: ``{'parameters', 'steps', 'pipeline_input'}``."""
    return Scope(
        pipeline_input=context.get("pipeline_input") or {},
        parameters=context.get("parameters") or {},
        outputs=context.get("steps") or {},
        result=context.get("result"),
    )


class TemplateParameterResolver:
    """The guide's helper: find the templates in a config and resolve them against a context."""

    @staticmethod
    def extract_template_parameters(config: Any) -> list[str]:
        """Every reference the templates in ``config`` make, in order, once each."""
        found: dict[str, None] = {}
        for reference in compile_value(config).references():
            found[reference.text] = None
        return list(found)

    @staticmethod
    def resolve_parameters(config: Any, context: Mapping[str, Any]) -> Any:
        """``config`` with each template replaced by its value in ``context`` (missing values are null)."""
        return compile_value(config).resolve(scope_from_context(context))
