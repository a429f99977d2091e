"""Compile a pipeline file's JSON into a ready-to-run plan, collecting every problem into one error."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .conditions import Always, CompiledCondition, Compound, ConditionCompileError, FunctionCall, compile_condition
from .errors import ConfigProblem, OlderFormatWarning, PipelineConfigError
from .graph import END, Edge, Graph, analyse, build_graph
from .imports import ImportProblem, import_from_pipeline
from .models import TERMINALS, PipelineConfig, RetryPolicy, StepConfig, pipeline_id_from_file_name
from .older_forms import upgrade
from .shape import Damage, parse_shape
from .step import Step
from .templates import Compiled, Reference, Scope, TemplateSyntaxError, compile_value


@dataclass(frozen=True)
class StepPlan:
    """One step as the kernel runs it: its class, config resolved at load, compiled inputs, error policy."""

    id: str
    index: int
    step_class: type[Step]
    config: dict[str, Any]
    inputs: Compiled
    retry: RetryPolicy
    timeout_s: float
    on_error: str
    concurrency: int
    boundary: bool

    def create(self) -> Step:
        return self.step_class(self.id, dict(self.config))


@dataclass(frozen=True)
class PipelinePlan:
    """A validated, compiled pipeline: everything per-record execution needs, computed once."""

    id: str
    name: str
    version: str
    description: str | None
    source: str
    parameters: dict[str, Any]
    steps: dict[str, StepPlan]
    graph: Graph
    outputs: Compiled | None
    key: Compiled | None
    model: PipelineConfig
    has_function_conditions: bool
    older_forms: tuple[ConfigProblem, ...] = ()
    """What the file says in an older format and how it was read (the notes of its OlderFormatWarning)."""
    id_from: str = "stream.id"
    """Where the id comes from: ``stream.id``, ``file name`` (normalised) or ``name`` (a pipeline given as a dict)."""

    @property
    def partitions(self) -> int:
        return self.model.stream.partitions


def compile_pipeline(raw: Any, source: str, file_stem: str | None = None, *, warn: bool = True) -> PipelinePlan:
    """Validate and compile ``raw`` (the parsed JSON); raises PipelineConfigError listing every problem: older
    forms that are refused, schema problems, and cross-reference problems of the parts that parsed, together.
    Older forms that mean one current form are read as it, with an OlderFormatWarning (``warn=False``: only in
    the plan's or the error's ``older_forms``, for callers that show them themselves)."""
    if not isinstance(raw, dict):
        raise PipelineConfigError(source, [ConfigProblem("$", f"a pipeline is a JSON object, not {_kind(raw)}")])
    upgraded = upgrade(raw)
    notes = [conversion.warning() for conversion in upgraded.conversions]
    if notes and warn:
        warnings.warn(OlderFormatWarning(source, notes), stacklevel=2)
    shape = parse_shape(upgraded.config, [*(p.path for p in upgraded.problems), *upgraded.unconverted])
    problems = [*upgraded.problems, *shape.problems]
    if shape.model is None:
        raise PipelineConfigError(source, problems, notes)
    flow = upgraded.config.get("flow")
    shape.damage.unwired |= isinstance(flow, dict) and "transitions" in flow  # refused above; paths are missing
    return _Compiler(shape.model, source, file_stem, shape.damage, problems, notes).compile()


class _Compiler:
    def __init__(
        self,
        model: PipelineConfig,
        source: str,
        file_stem: str | None,
        damage: Damage,
        problems: list[ConfigProblem],
        older_forms: list[ConfigProblem],
    ) -> None:
        self.model = model
        self.source = source
        self.file_stem = file_stem
        self.damage = damage
        self.problems = list(problems)
        self.older_forms = older_forms
        self.step_paths: dict[str, str] = {}
        self.id_from = "stream.id"

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def compile(self) -> PipelinePlan:
        model = self.model
        pipeline_id = self._pipeline_id()
        for index, step in enumerate(model.steps):
            if step.id in self.step_paths:
                self.problem(
                    f"steps[{index}].id", f"duplicate step id '{step.id}' (first at {self.step_paths[step.id]})"
                )
            else:
                self.step_paths[step.id] = f"steps[{index}]"
        before_wiring = len(self.problems)
        edges = self._edges()
        if model.flow.start_at not in self.step_paths and not self.damage.no_start:
            self.problem("flow.start_at", f"unknown step '{model.flow.start_at}'")
        graph = build_graph(list(self.step_paths), model.flow.start_at, edges, Always())
        if len(self.problems) == before_wiring and not self.damage.unwired:
            self.problems.extend(analyse(graph, self.step_paths))  # on a miswired flow, it would mislead
        self._check_condition_references(graph)
        plans = {}
        for index, step in enumerate(model.steps):
            if self.step_paths[step.id] != f"steps[{index}]":
                continue  # a duplicate id, reported above
            plan = self._step_plan(index, step, graph)
            if plan is not None:
                plans[step.id] = plan
        outputs = self._template(model.outputs, "outputs", roots=("pipeline_input", "parameters", "step"))
        key = self._template(model.stream.key, "stream.key", roots=("pipeline_input", "parameters"))
        if self.problems:
            raise PipelineConfigError(self.source, self.problems, self.older_forms)
        return PipelinePlan(
            id=pipeline_id or "",
            name=model.name or pipeline_id or "",
            version=model.version,
            description=model.description,
            source=self.source,
            parameters=model.parameters,
            steps=plans,
            graph=graph,
            outputs=outputs if model.outputs is not None else None,
            key=key if model.stream.key is not None else None,
            model=model,
            has_function_conditions=any(_has_function(e.condition) for e in graph.edges),
            older_forms=tuple(self.older_forms),
            id_from=self.id_from,
        )

    def _pipeline_id(self) -> str | None:
        """``stream.id``, else the file name normalised (``My-Pipeline`` -> ``my_pipeline``), else the name."""
        if self.model.stream.id:
            return self.model.stream.id
        if self.file_stem is not None:
            self.id_from = "file name"
            derived = pipeline_id_from_file_name(self.file_stem)
            if not derived:
                self.problem("stream.id", f"the file name '{self.file_stem}' has no letter or digit: set stream.id")
            return derived or None
        self.id_from = "name"
        slug = re.sub(r"[^a-z0-9]+", "_", (self.model.name or "pipeline").lower()).strip("_")
        return slug or "pipeline"

    def _edges(self) -> list[Edge]:
        edges = []
        for index, path in enumerate(self.model.flow.paths):
            if index in self.damage.skipped_paths:
                continue  # not an object, or an endpoint that did not parse: reported with the schema problems
            where = f"flow.paths[{index}]"
            ok = True
            if path.from_ not in self.step_paths:
                reason = " (an end target cannot start a path)" if path.from_ in TERMINALS else ""
                self.problem(f"{where}.from", f"unknown step '{path.from_}'{reason}")
                ok = False
            terminal = path.to if path.to in TERMINALS else None
            if terminal is None and path.to not in self.step_paths:
                self.problem(f"{where}.to", f"unknown step '{path.to}' (steps or {', '.join(TERMINALS)})")
                ok = False
            condition: CompiledCondition = Always()  # a condition that did not parse still wires its path
            try:
                if index not in self.damage.paths:
                    condition = compile_condition(path.condition, f"{where}.condition")
            except ConditionCompileError as exc:
                self.problem(exc.where, str(exc))
                ok = False
            if ok:
                edges.append(Edge(index, path.from_, END if terminal else path.to, condition, terminal))
        return edges

    def _check_condition_references(self, graph: Graph) -> None:
        """Steps and parameters named by conditions; whether a step is upstream only once the flow is sound."""
        for edge in graph.edges:
            if edge.index < 0:
                continue
            upstream = graph.upstream.get(edge.source)
            visible = None if upstream is None else upstream | {edge.source}
            where = f"flow.paths[{edge.index}].condition"
            for reference in edge.condition.references():
                self._check_reference(reference, where, visible, f"path from '{edge.source}'")

    def _step_plan(self, index: int, step: StepConfig, graph: Graph) -> StepPlan | None:
        where = f"steps[{index}]"
        step_class = None if index in self.damage.no_class else self._step_class(step, where)
        config = self._template(step.config, f"{where}.config", roots=("parameters",))
        inputs = self._template(
            step.inputs,
            f"{where}.inputs",
            roots=("pipeline_input", "parameters", "step"),
            visible=graph.upstream.get(step.id),
            owner=f"step '{step.id}'",
        )
        if step_class is None or config is None or inputs is None:
            return None
        if index in self.damage.steps or self.damage.parameters:
            return None  # its config is not all there: building the step would report what follows from that
        resolved_config = config.resolve(Scope(pipeline_input={}, parameters=self.model.parameters, outputs={}))
        plan = StepPlan(
            step.id,
            index,
            step_class,
            resolved_config,
            inputs,
            step.retry,
            step.timeout_s,
            step.on_error,
            step.concurrency,
            step.boundary,
        )
        try:
            plan.create()
        except Exception as exc:
            self.problem(
                f"{where}.config", f"{step.step_class}({step.id!r}, config) raised {type(exc).__name__}: {exc}"
            )
            return None
        return plan

    def _step_class(self, step: StepConfig, where: str) -> type[Step] | None:
        try:
            found = import_from_pipeline(step.module, step.step_class)
        except ImportProblem as exc:
            self.problem(f"{where}.{'module' if exc.part == 'module' else 'step_class'}", str(exc))
            return None
        if not (isinstance(found, type) and issubclass(found, Step)):
            self.problem(f"{where}.step_class", f"'{step.module}.{step.step_class}' is not a Step subclass")
            return None
        return found

    def _template(
        self, value: Any, where: str, roots: tuple[str, ...], visible: frozenset[str] | None = None, owner: str = ""
    ) -> Compiled | None:
        """Compile the templates in ``value``; every problem is reported at the exact key where it occurs."""
        ok = True
        for path, text in _strings(value, where):
            try:
                references = list(compile_value(text).references())
            except TemplateSyntaxError as exc:
                self.problem(path, str(exc))
                ok = False
                continue
            for reference in references:
                if reference.root not in roots:
                    allowed = ", ".join("<step>" if r == "step" else r for r in roots)
                    self.problem(path, f"'{reference.text}': only {allowed} may be used here")
                    ok = False
                else:
                    ok = self._check_reference(reference, path, visible, owner) and ok
        return compile_value(value) if ok else None

    def _check_reference(self, reference: Reference, where: str, visible: frozenset[str] | None, owner: str) -> bool:
        message = None
        if reference.root == "parameters":
            if reference.path and not self.damage.parameters and str(reference.path[0]) not in self.model.parameters:
                message = f"unknown parameter '{reference.path[0]}'"
        elif reference.root == "step":
            assert reference.step is not None
            if reference.step not in self.step_paths:
                message = f"unknown step '{reference.step}'"
            elif visible is not None and reference.step not in visible:
                message = f"step '{reference.step}' is not upstream of {owner}"
        if message:
            self.problem(where, f"'{reference.text}': {message}")
        return message is None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value with its JSON path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


def _has_function(condition: CompiledCondition) -> bool:
    if isinstance(condition, FunctionCall):
        return True
    return isinstance(condition, Compound) and any(_has_function(p) for p in condition.parts)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)
