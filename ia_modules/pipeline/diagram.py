"""Draw a pipeline's flow graph as Mermaid or Graphviz DOT: steps, their classes, conditions on the edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .compiler import PipelinePlan
from .graph import END, Edge


@dataclass(frozen=True)
class Group:
    """Steps drawn in one box, such as a streaming stage and the topic it consumes."""

    label: str
    steps: Sequence[str]


_TERMINAL_LABELS = {"end": "end", "end_with_success": "end (success)", "end_with_failure": "end (failure)"}


def _node_id(edge: Edge, side: str) -> str:
    name = edge.source if side == "source" else edge.target
    if name == END:
        return f"__{edge.terminal or 'end'}"
    return "s_" + name.replace("-", "_")


def _terminals(plan: PipelinePlan) -> list[str]:
    return sorted({e.terminal or "end" for e in plan.graph.edges if e.target == END})


def to_mermaid(plan: PipelinePlan, groups: Sequence[Group] = ()) -> str:
    """A Mermaid flowchart of the pipeline; ``groups`` become subgraphs."""
    lines = ["flowchart TD"]

    def node(step_id: str) -> str:
        step = plan.steps[step_id]
        return f'  s_{step_id.replace("-", "_")}["{_mermaid(step_id)}<br/><small>{step.step_class.__name__}</small>"]'

    grouped = {step for group in groups for step in group.steps}
    for index, group in enumerate(groups):
        lines.append(f'  subgraph g{index}["{_mermaid(group.label)}"]')
        lines.extend("  " + node(step_id) for step_id in group.steps)
        lines.append("  end")
    lines.extend(node(step_id) for step_id in plan.steps if step_id not in grouped)
    for terminal in _terminals(plan):
        lines.append(f'  __{terminal}(("{_TERMINAL_LABELS[terminal]}"))')
    for edge in plan.graph.edges:
        label = edge.condition.describe()
        arrow = "-.->" if edge.index < 0 else "-->"
        text = "" if label == "always" else f'|"{_mermaid(label)}"|'
        lines.append(f"  {_node_id(edge, 'source')} {arrow}{text} {_node_id(edge, 'target')}")
    return "\n".join(lines) + "\n"


def to_dot(plan: PipelinePlan, groups: Sequence[Group] = ()) -> str:
    """A Graphviz DOT digraph of the pipeline; ``groups`` become clusters."""
    lines = [
        f'digraph "{_dot(plan.id)}" {{',
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
    ]

    def node(step_id: str) -> str:
        label = f"{_dot(step_id)}\\n{_dot(plan.steps[step_id].step_class.__name__)}"
        return f'  "s_{_dot(step_id)}" [label="{label}"];'

    grouped = {step for group in groups for step in group.steps}
    for index, group in enumerate(groups):
        lines.append(f'  subgraph cluster_{index} {{ label="{_dot(group.label)}"; style=dashed;')
        lines.extend("  " + node(step_id) for step_id in group.steps)
        lines.append("  }")
    lines.extend(node(step_id) for step_id in plan.steps if step_id not in grouped)
    for terminal in _terminals(plan):
        lines.append(f'  "__{terminal}" [label="{_TERMINAL_LABELS[terminal]}", shape=doublecircle];')
    for edge in plan.graph.edges:
        label = edge.condition.describe()
        attributes = [] if label == "always" else [f'label="{_dot(label)}"']
        if edge.index < 0:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f'  "{_dot_node(edge, "source")}" -> "{_dot_node(edge, "target")}"{suffix};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(edge: Edge, side: str) -> str:
    name = edge.source if side == "source" else edge.target
    return f"__{edge.terminal or 'end'}" if name == END else f"s_{_dot(name)}"


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
