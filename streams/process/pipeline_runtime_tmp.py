"""One pipeline on a worker: its plan, its topics and stages, its join state and the stage runner, built together."""

from __future__ import annotations

from dataclasses import dataclass

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.services import ServiceRegistry
from streams.joins.store import JoinStore
from streams.stage_runner import StageRunner
from streams.topology import Topology, build_topology


@dataclass
class PipelineRuntime:
    """One pipeline on this worker: its plan, topics, join state and stage runner."""

    plan: PipelinePlan
    topology: Topology
    store: JoinStore
    runner: StageRunner

    @classmethod
    def build(
        cls,
        plan: PipelinePlan,
        services: ServiceRegistry,
        cluster_id: str,
        *,
        topic_prefix: str,
        app_id: str,
        fuse: bool,
        max_record_bytes: int,
    ) -> PipelineRuntime:
        """The pipeline's topology (stages fused unless ``fuse`` is off), an empty join store, its steps made
        with ``services``, and its stage runner for the cluster ``cluster_id`` (run ids name it)."""
        topology = build_topology(plan, topic_prefix, app_id, fuse)
        expected = {node: len(plan.graph.incoming[node]) for node in topology.joins}
        store = JoinStore(topology.joins_topic, expected, max_record_bytes)
        steps = Pipeline(plan).steps_for(services)
        return cls(plan, topology, store, StageRunner(plan, topology, steps, store, cluster_id, max_record_bytes))
