"""The original project's older pipeline formats: those that mean exactly one current form are read as it (and
noted, so that a warning can show the current form and ``validate --fix`` can write it); those that do not are
refused with the replacement to write. Works on the parsed JSON, before the models see it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigProblem
from .models import OPERATOR_ALIASES, OPERATORS

#: Older condition types and the expression operator each one meant.
_FIELD_CONDITIONS = {
    "field_equals": "equals",
    "field_exists": "exists",
    "field_greater_than": "greater_than",
    "field_less_than": "less_than",
}
_SOURCE_ROOTS = ("result.", "pipeline_input.", "parameters.", "steps.")
_BRIEF_LIMIT = 160


@dataclass(frozen=True)
class Conversion:
    """One older form read in its current form: where (a JSON path), what the file says, what it means now, and
    the keys the current form has no place for (named, never dropped silently)."""

    path: str
    older: str
    current: str
    dropped: tuple[str, ...] = ()

    def warning(self) -> ConfigProblem:
        """The note a load warning shows."""
        kept = f"; not kept: {'; '.join(self.dropped)}" if self.dropped else ""
        return ConfigProblem(self.path, f"older form: {self.older}; read as {self.current}{kept}")

    def fixed(self) -> ConfigProblem:
        """The note ``validate --fix`` prints for what it rewrote."""
        kept = f"; dropped: {'; '.join(self.dropped)}" if self.dropped else ""
        return ConfigProblem(self.path, f"{self.older} rewritten as {self.current}{kept}")


@dataclass
class Upgraded:
    """The file in the current form (a copy; the parsed JSON is not changed), what was converted, and the older
    forms that are refused or malformed (left as they were)."""

    config: dict[str, Any]
    conversions: list[Conversion] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    unconverted: list[str] = field(default_factory=list)
    """Paths of list-form sections left as they were because of a problem inside (already reported)."""


def upgrade(raw: dict[str, Any]) -> Upgraded:
    """Read the older forms of ``raw`` in the current form, keeping every other key and the order of keys."""
    result = Upgraded(copy.deepcopy(raw))
    config = result.config
    if isinstance(config.get("parameters"), list):
        _parameters(config, result)
    steps = config.get("steps")
    if isinstance(steps, list):
        for index, step in enumerate(steps):
            if isinstance(step, dict) and isinstance(step.get("inputs"), list):
                _inputs(step, f"steps[{index}]", result)
    flow = config.get("flow")
    if isinstance(flow, dict):
        if "transitions" in flow:
            result.problems.append(
                ConfigProblem(
                    "flow.transitions",
                    "'transitions' is an older form that is no longer read: write them as flow.paths, each "
                    '{"from": <step>, "to": <step or end>, "condition": {...}} (paths may not form a cycle)',
                )
            )
        if isinstance(flow.get("paths"), list):
            _paths(flow["paths"], result)
            _refused_conditions(flow["paths"], _on_error_of_steps(steps), result)
    return result


def _parameters(config: dict[str, Any], result: Upgraded) -> None:
    """``[{"name": "p", "default": 1, ...}]`` -> ``{"p": 1}``; other keys are named as not kept."""
    entries = config["parameters"]
    converted: dict[str, Any] = {}
    dropped: list[str] = []
    problems = _named_entries(entries, "parameters", "parameter", '{"name": ..., "default": ...}')
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"]
        converted[name] = entry.get("default")
        others = [key for key in entry if key not in ("name", "default")]
        if "default" not in entry:
            others.insert(0, "no default (null)")
        if others:
            dropped.append(f"{', '.join(others)} of '{name}'")
    if problems:
        result.problems.extend(problems)
        result.unconverted.append("parameters")
        return
    config["parameters"] = converted
    result.conversions.append(Conversion("parameters", "list of parameters", _brief(converted), tuple(dropped)))


def _inputs(step: dict[str, Any], where: str, result: Upgraded) -> None:
    """``[{"name": "raw", "source": "{{ loader.text }}"}]`` -> ``{"raw": "{{ loader.text }}"}``."""
    entries = step["inputs"]
    converted: dict[str, Any] = {}
    dropped: list[str] = []
    problems = _named_entries(entries, f"{where}.inputs", "input", '{"name": ..., "source": ...}')
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        if "source" not in entry:
            problems.append(
                ConfigProblem(f"{where}.inputs[{index}]", f"input '{entry['name']}' has no 'source' (its template)")
            )
            continue
        converted[entry["name"]] = entry["source"]
        others = [key for key in entry if key not in ("name", "source")]
        if others:
            dropped.append(f"{', '.join(others)} of '{entry['name']}'")
    if problems:
        result.problems.extend(problems)
        result.unconverted.append(f"{where}.inputs")
        return
    step["inputs"] = converted
    result.conversions.append(Conversion(f"{where}.inputs", "list of inputs", _brief(converted), tuple(dropped)))


def _named_entries(entries: list[Any], where: str, kind: str, shape: str) -> list[ConfigProblem]:
    """Problems of a list-form section: entries that are not objects with a text ``name``, or repeat one."""
    problems = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(ConfigProblem(f"{where}[{index}]", f"an older-form {kind} is {shape}, not {_kind(entry)}"))
        elif not isinstance(entry.get("name"), str):
            problems.append(ConfigProblem(f"{where}[{index}]", f"an older-form {kind} needs a 'name' (text)"))
        elif entry["name"] in seen:
            problems.append(
                ConfigProblem(
                    f"{where}[{index}].name", f"{kind} '{entry['name']}' is also {where}[{seen[entry['name']]}]"
                )
            )
        else:
            seen[entry["name"]] = index
    return problems


def _paths(paths: list[Any], result: Upgraded) -> None:
    """``from_step``/``to_step`` -> ``from``/``to``, in place (the key keeps its position)."""
    renamed: list[int] = []
    keys: set[str] = set()
    example: dict[str, Any] | None = None
    for index, path in enumerate(paths):
        if not isinstance(path, dict):
            continue
        clashes = [old for old, new in (("from_step", "from"), ("to_step", "to")) if old in path and new in path]
        for old in clashes:
            new = old.removesuffix("_step")
            result.problems.append(
                ConfigProblem(f"flow.paths[{index}].{old}", f"both '{new}' and its older form '{old}': keep '{new}'")
            )
        if clashes or not ({"from_step", "to_step"} & path.keys()):
            continue
        keys |= {"from_step", "to_step"} & path.keys()
        paths[index] = {{"from_step": "from", "to_step": "to"}.get(key, key): value for key, value in path.items()}
        renamed.append(index)
        if example is None:
            example = {key: paths[index][key] for key in ("from", "to") if key in paths[index]}
    if renamed:
        older = "/".join(f"'{key}'" for key in sorted(keys))
        current = "/".join(f"'{key.removesuffix('_step')}'" for key in sorted(keys))
        result.conversions.append(
            Conversion("flow.paths", f"{older} in paths {_ranges(renamed)}", f"{current}: {_brief(example)}")
        )


def _ranges(indexes: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    runs: list[list[int]] = []
    for index in indexes:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _on_error_of_steps(steps: Any) -> dict[str, Any]:
    if not isinstance(steps, list):
        return {}
    return {s["id"]: s.get("on_error") for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}


def _refused_conditions(paths: list[Any], on_error: dict[str, Any], result: Upgraded) -> None:
    for index, path in enumerate(paths):
        if isinstance(path, dict) and isinstance(path.get("condition"), dict):
            source = path.get("from", path.get("from_step"))
            step = source if isinstance(source, str) else None
            _refused_condition(path["condition"], f"flow.paths[{index}].condition", step, on_error, result)


def _refused_condition(
    condition: dict[str, Any], where: str, step: str | None, on_error: dict[str, Any], result: Upgraded
) -> None:
    """A problem for each older condition type in ``condition`` (nested ones too), with the condition to write."""
    kind = condition.get("type")
    if kind in ("all", "any") and isinstance(condition.get("conditions"), list):
        for i, part in enumerate(condition["conditions"]):
            if isinstance(part, dict):
                _refused_condition(part, f"{where}.conditions[{i}]", step, on_error, result)
        return
    if kind == "not" and isinstance(condition.get("condition"), dict):
        _refused_condition(condition["condition"], f"{where}.condition", step, on_error, result)
        return
    if kind in _FIELD_CONDITIONS or kind == "threshold_condition":
        replacement = _expression_for(condition)
        result.problems.append(ConfigProblem(where, f"{_older_condition(kind)}: write {replacement}"))
    elif kind == "success":
        result.problems.append(ConfigProblem(where, _success_message(step, on_error.get(step or ""))))


def _older_condition(kind: str) -> str:
    return f"condition type '{kind}' is an older form that is no longer read"


def _expression_for(condition: dict[str, Any]) -> str:
    """The expression condition an older field or threshold condition means; placeholders for what it lacks."""
    config = condition.get("config")
    given = {k: v for k, v in condition.items() if k not in ("type", "config")}
    given.update(config if isinstance(config, dict) else {})
    kind = condition["type"]
    name = given.get("field", given.get("field_path"))
    source = _source(name) if isinstance(name, str) and name else "result.<field>"
    operator: Any = _FIELD_CONDITIONS.get(kind) or given.get("operator")
    if isinstance(operator, str) and OPERATOR_ALIASES.get(operator, operator) in OPERATORS:
        operator = OPERATOR_ALIASES.get(operator, operator)
    else:
        operator = "<operator: greater_than, less_than, ...>"
    expression: dict[str, Any] = {"source": source, "operator": operator}
    if operator != "exists":
        value_key = "value" if "value" in given else "threshold" if "threshold" in given else None
        expression["value"] = given[value_key] if value_key else "<value>"
    return json.dumps({"type": "expression", "config": expression}, ensure_ascii=False)


def _source(name: str) -> str:
    return name if name.startswith(_SOURCE_ROOTS) else f"result.{name}"


def _success_message(step: str | None, on_error: Any) -> str:
    older = _older_condition("success")
    if on_error == "continue":
        failed = json.dumps(
            {"type": "expression", "config": {"source": "result.status", "operator": "not_equals", "value": "failed"}}
        )
        return f"{older}: write {failed} (step '{step}' has on_error continue: when it fails its status is 'failed')"
    named = f"'{step}'" if step else "a step"
    return f'{older}: write {{"type": "always"}} (a path leaves {named} only once it succeeded)'


def _brief(value: Any) -> str:
    """``value`` as compact JSON, cut short when long (a warning line shows the form, not every default)."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _BRIEF_LIMIT else f"{text[: _BRIEF_LIMIT - 5]} ...}}"


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", type(None): "null", dict: "an object"}.get(type(value), type(value).__name__)
