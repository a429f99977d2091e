"""The guide's core API: ``Step``, ``Pipeline`` and ``TemplateParameterResolver``.

``Pipeline`` is a compiled pipeline file; ``await pipeline.run(input)`` executes one run in-process with the same
kernel the worker's stage runner (``streams.stage_runner``) drives. A run given no services gets the defaults
(``http``, ``cache``: :mod:`.defaults`), closed when the last run using them ends; a registry given is cleaned up
when the event loop ends, should its program not do it first (:mod:`.lifetimes`).
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from pathlib import Path
from typing import Any

import orjson

from .compiler import PipelinePlan, compile_pipeline
from .defaults import DefaultServices
from .kernel import RunState, Token, deliver_all, run_step, skip_step
from .lifetimes import cleanup_when_loop_ends
from .loader import load_plan
from .result import PipelineResult
from .services import ServiceRegistry, current_execution_id
from .step import Step
from .templates import TemplateParameterResolver

__all__ = ["Pipeline", "Step", "TemplateParameterResolver"]


class Pipeline:
    """A validated pipeline, compiled once; run it as often as needed, concurrently if you like."""

    def __init__(self, plan: PipelinePlan) -> None:
        self.plan = plan
        self._default_services = DefaultServices()
        self._instances: weakref.WeakKeyDictionary[ServiceRegistry, dict[str, Step]] = weakref.WeakKeyDictionary()

    @classmethod
    def from_file(cls, path: str | Path) -> Pipeline:
        """Load and compile a pipeline file (blocking; in async code use ``await Pipeline.load(path)``)."""
        return cls(load_plan(path))

    @classmethod
    async def load(cls, path: str | Path) -> Pipeline:
        """Load a pipeline file off the event loop (reading it and importing step modules block)."""
        return cls(await asyncio.to_thread(load_plan, path))

    @classmethod
    def from_dict(cls, config: dict[str, Any], source: str = "<dict>") -> Pipeline:
        return cls(compile_pipeline(config, source))

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def version(self) -> str:
        return self.plan.version

    def steps_for(self, services: ServiceRegistry | None) -> dict[str, Step]:
        """Step instances bound to ``services``: created once per registry, shared by the runs that use it."""
        registry = services if services is not None else self._default_services
        instances = self._instances.get(registry)
        if instances is None:
            instances = {sid: plan.create() for sid, plan in self.plan.steps.items()}
            for instance in instances.values():
                instance.set_services(registry)
            self._instances[registry] = instances
        return instances

    async def run(
        self,
        input_data: dict[str, Any],
        services: ServiceRegistry | None = None,
        *,
        run_id: str | None = None,
        source: dict[str, Any] | None = None,
    ) -> PipelineResult:
        """Execute one run: every path whose condition holds is taken, branches run concurrently, joins wait
        for all their paths. Step failures never raise here: they end in the result's status and error.
        The run works on a JSON copy of ``input_data``, as a streamed run would, so steps cannot change it."""
        if not isinstance(input_data, dict):
            raise TypeError(f"pipeline input must be a JSON object (dict), not {type(input_data).__name__}")
        encoded = orjson.dumps(input_data)  # TypeError for an input JSON cannot carry
        run = RunState(self.plan, run_id or str(uuid.uuid4()), orjson.loads(encoded), input_json=encoded)
        if services is None:
            async with self._default_services.in_use():
                await self._execute(run, self._default_services)
        else:
            cleanup_when_loop_ends(services)
            await self._execute(run, services)
        return PipelineResult(
            run_id=run.run_id,
            pipeline=self.plan.id,
            pipeline_version=self.plan.version,
            status=run.status,
            outputs=run.final_outputs(),
            error=run.error,
            trace=run.trace,
            input=run.pipeline_input,
            step_outputs=run.outputs,
            source=source,
        )

    async def _execute(self, run: RunState, services: ServiceRegistry) -> None:
        """Walk the graph from its start with the steps bound to ``services``, the run id set for them."""
        instances = self.steps_for(services)
        reset = current_execution_id.set(run.run_id)
        try:
            await self._visit(run, instances, {}, self.plan.graph.start, "run")
        finally:
            current_execution_id.reset(reset)

    async def _visit(
        self,
        run: RunState,
        instances: dict[str, Step],
        waiting: dict[str, dict[int, Token]],
        step_id: str,
        token: Token,
    ) -> None:
        """Run (or skip) ``step_id``, then the steps its paths make ready, concurrently; ``waiting`` holds the
        run's joins that wait for more paths."""
        if token == "run":
            sends = await run_step(run, self.plan.steps[step_id], instances[step_id])
        else:
            sends = skip_step(run, step_id, token)
        runnable = deliver_all(run, sends, waiting)
        if len(runnable) == 1:
            await self._visit(run, instances, waiting, runnable[0], "run")
        elif runnable:
            await asyncio.gather(*(self._visit(run, instances, waiting, target, "run") for target in runnable))

    def __repr__(self) -> str:
        return f"Pipeline(id={self.plan.id!r}, steps={list(self.plan.steps)})"
