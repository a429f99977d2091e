"""The flow graph: steps, paths (edges), the virtual end node, and the analyses validation needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .conditions import CompiledCondition
from .errors import ConfigProblem
from .models import TERMINALS

#: The virtual node every branch flows into; "the run is finished" is this node's join.
END = "<end>"


@dataclass(frozen=True, slots=True)
class Edge:
    """A path: ``index`` is its position among ``flow.paths``, or -1 for the implicit path from a last step to
    the end node; ``id`` its position in the graph's edge list (what join state records). ``terminal`` names
    the end target (``end``, ``end_with_success``, ``end_with_failure``)."""

    index: int
    source: str
    target: str
    condition: CompiledCondition
    terminal: str | None = None
    id: int = -1

    @property
    def label(self) -> str:
        return self.terminal or self.target


@dataclass
class Graph:
    """Steps and edges in file order, with each step's incoming and outgoing edges and upstream steps."""

    steps: list[str]
    start: str
    edges: list[Edge]
    outgoing: dict[str, list[Edge]] = field(default_factory=dict)
    incoming: dict[str, list[Edge]] = field(default_factory=dict)
    upstream: dict[str, frozenset[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    joins: frozenset[str] = frozenset()
    """Nodes with more than one incoming path (the end node among them when several branches end): joins."""
    always_from: dict[str, tuple[Edge, ...]] = field(default_factory=dict)
    """Steps every path of which is taken whatever they return (all ``always``, none ending with failure):
    the kernel routes them without evaluating anything."""

    def successors(self, step: str) -> list[str]:
        return [e.target for e in self.outgoing.get(step, []) if e.target != END]


def build_graph(steps: list[str], start: str, edges: Iterable[Edge], always: CompiledCondition) -> Graph:
    """Wire the edges (already checked to name real steps) and add implicit edges from last steps to END."""
    graph = Graph(steps=steps, start=start, edges=list(edges))
    graph.incoming = {s: [] for s in [*steps, END]}
    has_paths = {edge.source for edge in graph.edges}
    graph.edges.extend(Edge(-1, step, END, always, "end") for step in steps if step not in has_paths)
    graph.edges = [replace(edge, id=i) for i, edge in enumerate(graph.edges)]
    graph.outgoing = {s: [] for s in steps}
    for edge in graph.edges:
        graph.outgoing[edge.source].append(edge)
        graph.incoming[edge.target].append(edge)
    graph.joins = frozenset(node for node, edges in graph.incoming.items() if len(edges) > 1)
    graph.always_from = {
        step: tuple(edges)
        for step, edges in graph.outgoing.items()
        if all(e.condition.always and e.terminal != "end_with_failure" for e in edges)
    }
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as a list of step ids (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.successors(node):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for step in graph.steps:
        if step not in state and (found := visit(step)):
            return found
    return None


def reachable_from(graph: Graph, start: str) -> set[str]:
    seen = {start}
    frontier = [start]
    while frontier:
        for nxt in graph.successors(frontier.pop()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def analyse(graph: Graph, step_paths: dict[str, str]) -> list[ConfigProblem]:
    """Cycle and reachability problems; on success fills ``order`` (topological) and ``upstream``."""
    cycle = find_cycle(graph)
    if cycle:
        return [ConfigProblem("flow.paths", f"cycle: {' -> '.join(cycle)}")]
    problems = [
        ConfigProblem(step_paths[s], f"step '{s}' is not reachable from start_at '{graph.start}'")
        for s in graph.steps
        if s not in reachable_from(graph, graph.start)
    ]
    order: list[str] = []
    remaining = {s: len([e for e in graph.incoming[s]]) for s in graph.steps}
    ready = [s for s in graph.steps if remaining[s] == 0]
    while ready:
        step = ready.pop(0)
        order.append(step)
        for nxt in graph.successors(step):
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    graph.order = order
    upstream: dict[str, frozenset[str]] = {}
    for step in order:
        above: set[str] = set()
        for edge in graph.incoming[step]:
            above.add(edge.source)
            above |= upstream[edge.source]
        upstream[step] = frozenset(above)
    graph.upstream = upstream
    return problems


def is_terminal(name: str) -> bool:
    return name in TERMINALS
