"""The streaming plan of a pipeline: which steps fuse into stages, which topics exist, what travels where.

A stage is a chain of steps run in one pass (as Flink chains operators). A chain breaks where a step has
several outgoing paths, several incoming paths, or sets ``boundary`` or its own ``concurrency``; with
``fuse=False`` every step is its own stage. Topics: ``<prefix>.<pipeline>.input`` (or ``stream.input_topics``),
one per stage named after its first step, ``.output``, ``.dlq``, and a compacted changelog for join state.
"""

from __future__ import annotations

from dataclasses import dataclass

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.errors import ConfigProblem, PipelineConfigError
from ia_modules.pipeline.graph import END, reachable_from


@dataclass(frozen=True)
class Stage:
    """A chain of steps that one consumer runs in one pass; its envelopes arrive on ``topic``."""

    name: str
    steps: tuple[str, ...]
    topic: str
    concurrency: int
    is_start: bool


@dataclass(frozen=True)
class Topology:
    """Stages and topics of one pipeline; every topic has ``partitions`` partitions."""

    pipeline: str
    partitions: int
    input_topics: tuple[str, ...]
    output_topic: str
    dlq_topic: str
    joins_topic: str
    stages: dict[str, Stage]
    stage_of: dict[str, str]
    joins: frozenset[str]
    needed_outputs: dict[str, frozenset[str]]
    joins_ahead: dict[str, frozenset[str]]
    """For each step, the joins a run going on from it may still reach (itself included, and the end node when
    that is a join): the joins its envelope can carry tokens to."""

    @property
    def start(self) -> Stage:
        return next(stage for stage in self.stages.values() if stage.is_start)

    def stage_topics(self) -> list[str]:
        return [stage.topic for stage in self.stages.values()]

    def topics(self) -> list[str]:
        """Every topic the pipeline uses, inputs first."""
        return [*self.input_topics, *self.stage_topics(), self.output_topic, self.dlq_topic, self.joins_topic]


def stage_heads(plan: PipelinePlan, fuse: bool) -> list[str]:
    """Steps that start a stage, in file order."""
    graph = plan.graph
    if not fuse:
        return list(plan.steps)
    isolated = {sid for sid, step in plan.steps.items() if step.boundary or step.concurrency != 1}
    heads = {graph.start} | isolated
    for step_id in plan.steps:
        outgoing = graph.outgoing[step_id]
        if len(graph.incoming[step_id]) > 1:
            heads.add(step_id)
        if len(outgoing) > 1 or step_id in isolated:
            heads.update(edge.target for edge in outgoing if edge.target != END)
    return [sid for sid in plan.steps if sid in heads]


def build_topology(plan: PipelinePlan, prefix: str = "ia", app_id: str = "ia-modules", fuse: bool = True) -> Topology:
    """Compile the pipeline's graph into stages and topics."""
    graph = plan.graph
    heads = stage_heads(plan, fuse)
    base = f"{prefix}.{plan.id}"
    stages: dict[str, Stage] = {}
    stage_of: dict[str, str] = {}
    for head in heads:
        chain = [head]
        while True:
            outgoing = graph.outgoing[chain[-1]]
            if len(outgoing) != 1 or outgoing[0].target == END or outgoing[0].target in heads:
                break
            chain.append(outgoing[0].target)
        concurrency = max(plan.steps[s].concurrency for s in chain)
        stages[head] = Stage(head, tuple(chain), f"{base}.{head}", concurrency, head == graph.start)
        stage_of.update((s, head) for s in chain)
    inputs = tuple(plan.model.stream.input_topics or [f"{base}.input"])
    joins = graph.joins
    ends_in_join = {END} if END in joins else set()
    return Topology(
        pipeline=plan.id,
        partitions=plan.partitions,
        input_topics=inputs,
        output_topic=f"{base}.output",
        dlq_topic=f"{base}.dlq",
        joins_topic=f"{app_id}.{plan.id}.joins-changelog",
        stages=stages,
        stage_of=stage_of,
        joins=joins,
        needed_outputs=_needed_outputs(plan, stages),
        joins_ahead={s: frozenset(reachable_from(graph, s) & joins | ends_in_join) for s in plan.steps},
    )


def _needed_outputs(plan: PipelinePlan, stages: dict[str, Stage]) -> dict[str, frozenset[str]]:
    """For each stage, and for the end node, the step outputs an envelope arriving there must carry: those
    that templates, conditions or data merging downstream still read (all of them with function conditions)."""
    graph = plan.graph
    everything = frozenset(plan.steps)
    final = frozenset(r.step for r in plan.outputs.references() if r.step) if plan.outputs else frozenset()
    if plan.outputs is None:  # without `outputs` the result merges the last steps' outputs
        final = frozenset(edge.source for edge in graph.incoming[END])
    reads: dict[str, set[str]] = {}
    for step_id, step in plan.steps.items():
        used = {r.step for r in step.inputs.references() if r.step}
        used.update(edge.source for edge in graph.incoming[step_id])
        for edge in graph.outgoing[step_id]:
            used.update(r.step for r in edge.condition.references() if r.step)
        reads[step_id] = used
    needed: dict[str, frozenset[str]] = {END: final}
    for step_id in reversed(graph.order):
        downstream = set(reads[step_id])
        for edge in graph.outgoing[step_id]:
            downstream |= needed[edge.target] if edge.target in needed else set()
        needed[step_id] = frozenset(downstream) if not plan.has_function_conditions else everything
    if plan.has_function_conditions:
        needed[END] = everything
    return {name: needed[name] for name in [*stages, END]}


def pipeline_topics(plan: PipelinePlan, prefix: str = "ia", app_id: str = "ia-modules") -> dict[str, str]:
    """Every topic the pipeline may use in any fusion mode (a topic per step), with the JSON path that names it."""
    base = f"{prefix}.{plan.id}"
    inputs = plan.model.stream.input_topics
    topics = {topic: f"stream.input_topics[{i}]" for i, topic in enumerate(inputs)} if inputs else {}
    topics.setdefault(f"{base}.input", "stream.id")
    for index, step in enumerate(plan.steps):
        topics.setdefault(f"{base}.{step}", f"steps[{index}].id")
    for topic in (f"{base}.output", f"{base}.dlq", f"{app_id}.{plan.id}.joins-changelog"):
        topics.setdefault(topic, "stream.id")
    return topics


def check_topic_clashes(plans: list[PipelinePlan], prefix: str = "ia", app_id: str = "ia-modules") -> None:
    """PipelineConfigError when two pipelines share an id or a topic (one worker would route one's records to the
    other); each problem names both files."""
    owner: dict[str, PipelinePlan] = {}
    seen_ids: dict[str, PipelinePlan] = {}
    for plan in plans:
        problems: list[ConfigProblem] = []
        first = seen_ids.setdefault(plan.id, plan)
        if first is not plan:
            problems.append(ConfigProblem("stream.id", _id_clash(plan, first)))
        else:
            for topic, where in pipeline_topics(plan, prefix, app_id).items():
                other = owner.setdefault(topic, plan)
                if other is not plan:
                    problems.append(ConfigProblem(where, f"topic '{topic}' is also a topic of pipeline '{other.id}' "
                                                         f"({other.source})"))  # fmt: skip
        if problems:
            raise PipelineConfigError(plan.source, problems)


def _id_clash(plan: PipelinePlan, first: PipelinePlan) -> str:
    """Two pipelines with one id: both files, and where each id comes from when a file name gave it."""
    if plan.id_from == first.id_from == "stream.id":
        return f"pipeline id '{plan.id}' is also the id of {first.source}"
    return (
        f"pipeline id '{plan.id}' ({_id_origin(plan)}) is also the id of {first.source} ({_id_origin(first)}): "
        "set a distinct stream.id in one of them"
    )


def _id_origin(plan: PipelinePlan) -> str:
    return "its stream.id" if plan.id_from == "stream.id" else f"from its {plan.id_from}"
