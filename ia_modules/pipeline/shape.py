"""The pipeline file's shape, checked with the models part by part: every schema problem is reported in words a
pipeline author understands, and what parsed is kept for the cross-reference checks, so that a bad operator in one
path does not hide an unknown step in another."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .errors import ConfigProblem
from .models import PipelineConfig

CONDITION_TAGS = frozenset({"always", "expression", "function", "all", "any", "not"})
_PASSES = 4

#: What a part of the file should be, by its path with list indexes as ``*`` (for "should be ..., not ...").
_EXPECTED = {
    "parameters": 'an object of parameter names and values, e.g. {"threshold": 0.8}',
    "steps": 'a list of steps, each {"id": ..., "step_class": ..., "module": ...}',
    "steps[*]": 'a step: {"id": ..., "step_class": ..., "module": ...}',
    "steps[*].config": "an object of config keys and values",
    "steps[*].inputs": 'an object of input names and templates, e.g. {"raw": "{{ loader.text }}"}',
    "steps[*].retry": 'an object: {"max_attempts": 3, "backoff_s": 0.2, "max_backoff_s": 5}',
    "flow": 'an object: {"start_at": <step>, "paths": [...]}',
    "flow.paths": 'a list of paths, each {"from": <step>, "to": <step or end>, "condition": {...}}',
    "flow.paths[*]": 'a path: {"from": <step>, "to": <step or end>, "condition": {...}}',
    "stream": 'an object, e.g. {"key": "{{ pipeline_input.customer_id }}", "partitions": 4}',
    "stream.input_topics": "a list of topic names",
}
_CONDITION = 'a condition object, e.g. {"type": "always"}'
_CONDITION_PARTS = {
    "conditions": "a list of conditions",
    "config": 'an object: {"source": ..., "operator": ..., "value": ...} (a function condition: {"function": '
    '"package.module:callable", "args": {...}})',
    "args": "an object of keyword arguments",
}
_TYPE_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type", "list_type"})


@dataclass
class Damage:
    """What did not parse, so that the compiler checks the rest without reporting what merely follows from it."""

    steps: set[int] = field(default_factory=set)
    """Steps with a schema problem: their templates and class are checked, but no plan is built."""
    no_class: set[int] = field(default_factory=set)
    """Steps whose ``module`` or ``step_class`` did not parse: nothing to import."""
    paths: set[int] = field(default_factory=set)
    """Paths whose condition did not parse: wired as if always taken, the condition not compiled."""
    skipped_paths: set[int] = field(default_factory=set)
    """Paths that are not objects or whose ``from``/``to`` did not parse: not wired at all."""
    unwired: bool = False
    """The flow is incomplete (an endpoint, ``flow``, ``flow.paths`` or a step id did not parse): no cycle,
    reachability or upstream analysis, which would report what follows from the problem."""
    no_start: bool = False
    parameters: bool = False
    """``parameters`` did not parse: references to parameters are not checked."""


@dataclass
class Shape:
    """The model of what parsed (None when too little did: no steps), the schema problems, and the damage."""

    model: PipelineConfig | None
    problems: list[ConfigProblem]
    damage: Damage


def parse_shape(config: dict[str, Any], covered: Iterable[str] = ()) -> Shape:
    """Validate ``config`` with the models; on problems, set each part that did not parse aside (removed, or
    replaced by a stand-in recorded in the damage) and validate the rest. Problems at or under a ``covered`` path
    are left out: they were already reported there, in better words."""
    covered = tuple(covered)
    damage = Damage()
    problems: list[ConfigProblem] | None = None
    restored_ids: dict[int, str] = {}
    document = config
    for _ in range(_PASSES):
        try:
            model = PipelineConfig.model_validate(document)
        except ValidationError as exc:
            errors = exc.errors()
            if problems is None:
                problems = [p for p in map(_problem, errors) if not _is_covered(p.path, covered)]
                document = copy.deepcopy(document)
            if not all(_set_aside(document, error["loc"], damage, restored_ids) for error in errors):
                return Shape(None, problems, damage)
            continue
        for index, step_id in restored_ids.items():
            model.steps[index].id = step_id  # the file's id, which did not parse, so references to it are known
        return Shape(model, problems or [], damage)
    return Shape(None, problems or [], damage)


def _is_covered(path: str, covered: tuple[str, ...]) -> bool:
    return any(path == c or path.startswith((f"{c}.", f"{c}[")) for c in covered)


def _set_aside(document: dict[str, Any], loc: tuple[int | str, ...], damage: Damage, ids: dict[int, str]) -> bool:
    """Remove or stand in for the part at ``loc``; False when that leaves nothing to cross-check."""
    if not loc:
        return False
    head = loc[0]
    if head == "steps":
        return _set_step_aside(document, loc, damage, ids)
    if head == "flow":
        _set_flow_aside(document, loc, damage)
    elif head == "stream" and len(loc) > 1 and isinstance(document.get("stream"), dict):
        document["stream"].pop(loc[1], None)
    else:
        document.pop(str(head), None)
        damage.parameters |= head == "parameters"
    return True


def _set_step_aside(document: dict[str, Any], loc: tuple[int | str, ...], damage: Damage, ids: dict[int, str]) -> bool:
    steps = document.get("steps")
    if len(loc) < 2 or not isinstance(steps, list) or not isinstance(loc[1], int):
        return False
    index = loc[1]
    step = steps[index]
    damage.steps.add(index)
    if len(loc) == 2 or not isinstance(step, dict):
        steps[index] = {"id": _stand_in_id(index), "step_class": "", "module": ""}
        damage.no_class.add(index)
        damage.unwired = True
        return True
    part = str(loc[2])
    if part == "id":
        if isinstance(step.get("id"), str):
            ids[index] = step["id"]
        else:
            damage.unwired = True
        step["id"] = _stand_in_id(index)
    elif part in ("step_class", "module"):
        step[part] = ""
        damage.no_class.add(index)
    else:
        step.pop(part, None)
    return True


def _set_flow_aside(document: dict[str, Any], loc: tuple[int | str, ...], damage: Damage) -> None:
    flow = document.get("flow")
    if len(loc) == 1 or not isinstance(flow, dict):
        document["flow"] = {"start_at": "", "paths": []}
        damage.no_start = damage.unwired = True
        return
    if loc[1] == "start_at":
        flow["start_at"] = ""
        damage.no_start = damage.unwired = True
        return
    paths = flow.get("paths")
    if len(loc) == 2 or not isinstance(paths, list) or not isinstance(loc[2], int):
        flow["paths"] = []
        damage.unwired = True
        return
    index = loc[2]
    if len(loc) > 3 and loc[3] == "condition" and isinstance(paths[index], dict):
        paths[index]["condition"] = {"type": "always"}  # still wired: only the condition is set aside
        damage.paths.add(index)
        return
    paths[index] = {"from": "", "to": "end"}
    damage.skipped_paths.add(index)
    damage.unwired = True


def _stand_in_id(index: int) -> str:
    return f"__invalid_step_{index}__"


def _problem(error: ErrorDetails) -> ConfigProblem:
    """A pydantic error as ``<json path>: <what is wrong>``, saying what form is expected where pydantic would
    only say "Input should be a valid dictionary"."""
    loc = list(error["loc"])
    parts: list[str] = []
    pattern: list[str] = []
    for i, item in enumerate(loc):
        previous = loc[i - 1] if i else None
        if item in CONDITION_TAGS and (previous == "condition" or isinstance(previous, int)):
            continue
        parts.append(f"[{item}]" if isinstance(item, int) else (f".{item}" if parts else str(item)))
        pattern.append("[*]" if isinstance(item, int) else (f".{item}" if pattern else str(item)))
    path = "".join(parts) or "$"
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = f"unknown key (value {error['input']!r})"
    elif kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        message = f"unknown condition type '{tag}'; expected one of {', '.join(sorted(CONDITION_TAGS))}"
    elif kind == "union_tag_not_found":
        message = "a condition needs a 'type'"
    elif kind == "too_short" and path == "steps":
        message = "a pipeline needs at least one step"
    elif kind in _TYPE_ERRORS and (expected := _expected("".join(pattern))):
        message = f"should be {expected}, not {_kind(error['input'])}"
    return ConfigProblem(path, message)


def _expected(pattern: str) -> str | None:
    if pattern in _EXPECTED:
        return _EXPECTED[pattern]
    if re.search(r"\.(condition|conditions\[\*\])$", pattern):
        return _CONDITION
    last = pattern.rsplit(".", 1)[-1]
    return _CONDITION_PARTS.get(last) if ".condition" in pattern else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    return {list: "a list", str: "text", type(None): "null", dict: "an object"}.get(type(value), type(value).__name__)
