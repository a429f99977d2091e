"""A run's join tokens through the join store, for a join that must wait for another envelope of the run: delivered
with what the join will need of the run, and taken back once every path has delivered. A replayed run starts
from what the attempt before it had brought to the join."""

from __future__ import annotations

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.graph import END, reachable_from
from ia_modules.pipeline.kernel import Token
from streams.envelope import Envelope, StreamRun, run_identity
from streams.joins.store import JoinEntry, JoinStore, join_key
from streams.kafka.records import now_ms
from streams.sink.checkpoint import Produced
from streams.topology import Topology


class JoinDelivery:
    """Delivers the tokens of one pipeline's runs to its join store."""

    def __init__(self, plan: PipelinePlan, topology: Topology, store: JoinStore) -> None:
        self.plan = plan
        self.topology = topology
        self.store = store

    def deliver(
        self,
        run: StreamRun,
        envelope: Envelope,
        partition: int,
        node: str,
        tokens: dict[int, Token],
        out: Produced,
    ) -> JoinEntry | None:
        """The run's tokens for ``node`` go to the store, with the outputs the join's stage needs, the trace and
        the error; the entry once every path has delivered, else None."""
        key = join_key(run.run_id, envelope.replay, node)
        if envelope.replay and self.store.get(partition, key) is None:
            self._seed_replayed(partition, envelope, node, key, out)
        needed = self.topology.needed_outputs[node if node == END else self.topology.stage_of[node]]
        fragment = {s: o for s, o in run.outputs.items() if s in needed}, run.full_trace(), run.error
        return self.store.deliver(partition, key, node, tokens, fragment, now_ms(), run_identity(envelope), out)

    def _seed_replayed(self, partition: int, envelope: Envelope, node: str, key: str, out: Produced) -> None:
        """A replayed run reaching a join: start from what the last attempt's join had from the paths the
        replay does not run again (those not downstream of the step it resumed at)."""
        earlier = None
        for replay in range(envelope.replay - 1, -1, -1):
            earlier = self.store.get(partition, join_key(envelope.run_id, replay, node))
            if earlier is not None and earlier.tokens:
                break
        if earlier is None or not earlier.tokens:
            return
        graph = self.plan.graph
        again = reachable_from(graph, envelope.replay_from or envelope.resume_at)
        kept = {e.id: earlier.tokens[e.id] for e in graph.incoming[node] if e.id in earlier.tokens}
        kept = {edge_id: token for edge_id, token in kept.items() if graph.edges[edge_id].source not in again}
        entry = JoinEntry(
            tokens=kept,
            outputs={step: output for step, output in earlier.outputs.items() if step not in again},
            trace={step: item for step, item in earlier.trace.items() if step not in again},
            error=None,
            created_ms=now_ms(),
            run=run_identity(envelope),
        )
        self.store.seed(partition, key, entry, out)


def take_join(run: StreamRun, node: str, entry: JoinEntry) -> Token:
    """Continue the run with what every branch brought to the join; its decision."""
    run.outputs.update(entry.outputs)
    run.trace = list(entry.trace.values())
    run.error = run.error or entry.error
    run.tokens[node] = dict(entry.tokens)
    return entry.decision()
