"""Running a pipeline's stages for records: the kernel, driven one stage at a time.

``StageRunner.on_input`` turns an input record into a run and executes the start stage; ``on_envelope``
executes the stage an envelope resumes at. Both return the records to produce (envelopes for the next stages,
the result record, dead letters) and never raise for bad data: that becomes a dead letter.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import orjson

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.graph import END
from ia_modules.pipeline.kernel import StepFailure, Token, join_decision, run_step, skip_step
from ia_modules.pipeline.services import current_execution_id
from ia_modules.pipeline.step import Step
from ia_modules.pipeline.templates import Scope, render_text

from .emission import DEFAULT_MAX_RECORD_BYTES, Emission
from .envelope import Envelope, EnvelopeError, partition_for, run_id_for
from .events_file import parse_event
from .join_delivery import JoinDelivery, take_join
from .join_store import JoinStateTooLarge, JoinStore, join_key
from .letters import DeadLetters
from .records import ConsumedRecord, now_ms, record_source
from .sink import FinishedRun
from .stream_run import StreamRun
from .topology import Topology

#: Errors that end a run without a step failing for good; their dead letter is written when the run ends.
RUN_LEVEL_ERRORS = frozenset({"EndWithFailure", "ConditionError", "JoinTimeout", "RecordTooLarge"})


class StageRunner:
    """Executes the stages of one pipeline on this worker."""

    def __init__(
        self,
        plan: PipelinePlan,
        topology: Topology,
        steps: dict[str, Step],
        store: JoinStore,
        cluster_id: str,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.plan = plan
        self.topology = topology
        self.steps = steps
        self.store = store
        self.cluster_id = cluster_id
        self.max_record_bytes = max_record_bytes
        self._finished: list[FinishedRun] = []
        self.letters = DeadLetters(plan.id, topology.dlq_topic, cluster_id, max_record_bytes)
        self.joins = JoinDelivery(plan, topology, store)
        self._joins_ahead_of = {stage.topic: topology.joins_ahead[stage.steps[0]] for stage in topology.stages.values()}

    def take_finished(self) -> tuple[list[FinishedRun], list[dict[str, Any]]]:
        """The runs finished and the dead letters written since the last call, for the results sink."""
        finished, self._finished = self._finished, []
        return finished, self.letters.take()

    # -- entry points ---------------------------------------------------------------------------------------

    async def on_input(self, record: ConsumedRecord) -> list[Emission]:
        """A new event: decode it, give it its run id and partition key, and run the start stage (or, when it
        arrived on another partition than its key maps to, forward it to the start stage's own topic first)."""
        run_id = run_id_for(self.cluster_id, record.topic, record.partition, record.offset)
        event, problem = parse_event(record.value) if record.value is not None else (None, "empty message (null value)")
        if event is None:
            return [self.letters.bad_input(record, problem or "")]
        key = self._partition_key(event, record.key, run_id)
        raw = record.value
        envelope = Envelope(
            run_id=run_id,
            pipeline=self.plan.id,
            version=self.plan.version,
            key=key,
            input=event,
            resume_at=self.plan.graph.start,
            source=record_source(record),
            started_ms=record.timestamp or now_ms(),
            input_json=raw if raw is not None and b"\n" not in raw else b"",  # one line: the envelope's input as is
        )
        partition = partition_for(key.encode(), self.topology.partitions)
        if partition != record.partition or record.topic not in self.topology.input_topics:
            emissions = [self._envelope_to(self.topology.start.topic, envelope, partition)]
        else:
            emissions = await self.execute(envelope, partition)
        return self._within_limit(envelope, partition, emissions)

    async def on_envelope(self, record: ConsumedRecord) -> list[Emission]:
        """An envelope on a stage topic: run the stage from the step it resumes at."""
        try:
            envelope = Envelope.decode(record.value, self.plan.id)
            if envelope.resume_at not in self.plan.steps:
                raise EnvelopeError(f"resume_at names no step of {self.plan.id}: {envelope.resume_at!r}")
        except EnvelopeError as exc:
            return [self.letters.bad_input(record, f"not an envelope: {exc}")]
        return self._within_limit(envelope, record.partition, await self.execute(envelope, record.partition))

    def _within_limit(self, envelope: Envelope, partition: int, emissions: list[Emission]) -> list[Emission]:
        """``emissions``, or, when one is larger than a record may be, the run ended as failed (RecordTooLarge):
        the broker would refuse that record, failing every batch it is in, again after every restart."""
        limit = self.max_record_bytes
        for emission in emissions:
            if emission.value is not None and len(emission.value) > limit:
                ahead = self._joins_ahead_of.get(emission.topic, frozenset())
                return self._too_large(envelope, partition, emission.topic, len(emission.value), ahead)
        return emissions

    def _too_large(
        self, envelope: Envelope, partition: int, topic: str, size: int, ahead: frozenset[str]
    ) -> list[Emission]:
        """The run ends here, failed, with a result and a dead letter small enough to produce (no outputs, no
        trace, the input only if it fits); what it finished or wrote on this record is dropped for them. The
        joins it could still reach (``ahead``) are closed: a branch that went ahead earlier and arrives at one
        of them is ignored, rather than leaving it to time out into a second result."""
        self._finished = [run for run in self._finished if run.record["run_id"] != envelope.run_id]
        self.letters.forget(envelope.run_id)
        topology = self.topology
        for node in ahead:
            self.store.close(partition, join_key(envelope.run_id, envelope.replay, node), now_ms())
        kinds = {topology.output_topic: "result", topology.dlq_topic: "dead letter", topology.joins_topic: "join state"}
        what = kinds.get(topic, "envelope")
        run = StreamRun(self.plan, envelope.run_id, envelope.input)
        run.error = {
            "step": None,
            "type": "RecordTooLarge",
            "message": f"the run's {what} for {topic} is {size:,} bytes, over the "
            f"{self.max_record_bytes:,} a record may have (IA_MAX_RECORD_BYTES); the run stops here",
            "attempts": 0,
            "traceback": None,
        }
        if len(envelope.input_bytes()) > self.max_record_bytes // 2:
            envelope.input_json = b"null"
        return self.finish(run, envelope, partition, resolve=False)

    # -- execution --------------------------------------------------------------------------------------------

    def execute(self, envelope: Envelope, partition: int) -> Coroutine[Any, Any, list[Emission]]:
        """Run the envelope's stage; skips and failures travel on at once, even into other stages."""
        run = StreamRun(self.plan, envelope.run_id, envelope.input, dict(envelope.outputs))
        run.earlier_trace = envelope.trace_json
        run.input_json = envelope.input_bytes()
        run.error = envelope.error
        if envelope.join_tokens:
            run.tokens[envelope.resume_at] = dict(envelope.join_tokens)
        return self._drive(run, envelope, partition, [(envelope.resume_at, "run")])

    async def _drive(
        self, run: StreamRun, envelope: Envelope, partition: int, start: list[tuple[str, Token]]
    ) -> list[Emission]:
        """Run steps from ``start`` until every branch has left this stage: a run token for a step of this
        stage runs it here, one for another stage becomes an envelope on that stage's topic, skips and fails
        travel on at once. A join's tokens are held while this run's envelopes can still bring them there
        (they travel in the envelope, ``carried``); only a join that must wait for another envelope of the run
        keeps them in the join store."""
        topology = self.topology
        joins, stage_of, incoming = topology.joins, topology.stage_of, self.plan.graph.incoming
        plans, instances = self.plan.steps, self.steps
        stage = stage_of.get(start[0][0])
        emissions: list[Emission] = []
        forwards: list[str] = []
        held = {node: dict(tokens) for node, tokens in envelope.carried.items()} if envelope.carried else {}
        pending = list(start)
        reset = current_execution_id.set(run.run_id)
        try:
            while pending:
                index = 0
                while index < len(pending):  # in the order decided: the trace lists steps as they ran
                    step_id, token = pending[index]
                    index += 1
                    if token == "run":
                        failures_before = len(run.failures)
                        sends = await run_step(run, plans[step_id], instances[step_id])
                        if len(run.failures) > failures_before:
                            for failure in run.failures[failures_before:]:
                                emissions.append(self._step_letter(run, envelope, failure, partition, held))
                    else:
                        sends = skip_step(run, step_id, token)
                    for edge, decided in sends:
                        target = edge.target
                        if target in joins:
                            tokens = held.setdefault(target, {})
                            tokens[edge.id] = decided
                            if len(tokens) < len(incoming[target]):
                                continue
                            del held[target]
                            run.tokens[target] = tokens
                            decided = join_decision(tokens)
                        if target == END:
                            emissions.extend(self.finish(run, envelope, partition))
                        elif decided != "run" or (stage_of[target] == stage and target not in joins):
                            pending.append((target, decided))
                        else:
                            forwards.append(target)
                pending = []
                waiting = [n for n in held if not any(n in topology.joins_ahead[f] for f in forwards)] if held else []
                for node in waiting:
                    entry = self.joins.deliver(run, envelope, partition, node, held.pop(node))
                    if entry is None:
                        continue
                    decided = take_join(run, node, entry)
                    # placed as a fired join is above (a join never runs in the stage that fired it); written
                    # out in both places, as one closure for both costs 2 % of the runner's instructions
                    if node == END:
                        emissions.extend(self.finish(run, envelope, partition))
                    elif decided != "run":
                        pending.append((node, decided))
                    else:
                        forwards.append(node)
        except JoinStateTooLarge as exc:
            ahead = topology.joins_ahead.get(exc.node, frozenset())
            return self._too_large(envelope, partition, exc.topic, exc.size, ahead)
        finally:
            current_execution_id.reset(reset)
        for target in forwards:
            ahead = topology.joins_ahead[target]
            carried = {node: tokens for node, tokens in held.items() if node in ahead} if held else {}
            emissions.append(self._next_stage(run, envelope, target, partition, carried))
        return emissions

    def _next_stage(
        self, run: StreamRun, envelope: Envelope, target: str, partition: int, carried: dict[str, dict[int, Token]]
    ) -> Emission:
        """The run, encoded for the topic of the stage that ``target`` starts (no header, as ``_envelope_to``)."""
        stage = self.topology.stage_of[target]
        needed = self.topology.needed_outputs[stage]
        outputs = {s: o for s, o in run.outputs.items() if s in needed}
        value = envelope.encode_resumed(
            self.plan.version, target, outputs, run.trace_json(), run.error, run.tokens.get(target), carried
        )
        return Emission(self.topology.stages[stage].topic, partition, envelope.key.encode(), value)

    def _resume_envelope(
        self,
        run: StreamRun,
        envelope: Envelope,
        resume_at: str,
        outputs: dict[str, Any],
        trace: bytes,
        error: dict[str, Any] | None,
        carried: dict[str, dict[int, Token]],
    ) -> Envelope:
        """The run, carried on from ``envelope``, to go on at ``resume_at``."""
        return Envelope(
            run_id=run.run_id,
            pipeline=self.plan.id,
            version=self.plan.version,
            key=envelope.key,
            input=run.pipeline_input,
            resume_at=resume_at,
            outputs=outputs,
            trace_json=trace,
            input_json=envelope.input_json,
            error=error,
            join_tokens=dict(run.tokens.get(resume_at, {})),
            carried=carried,
            source=envelope.source,
            started_ms=envelope.started_ms,
            replay=envelope.replay,
            replay_from=envelope.replay_from,
        )

    def _step_letter(
        self,
        run: StreamRun,
        envelope: Envelope,
        failure: StepFailure,
        partition: int,
        held: dict[str, dict[int, Token]],
    ) -> Emission:
        """A step failed for good: the dead letter holds the run as it was just before the step, with the join
        tokens it held then (a replay that resumes there brings them along)."""
        ahead = self.topology.joins_ahead[failure.step]
        resume = self._resume_envelope(
            run,
            envelope,
            failure.step,
            {s: o for s, o in run.outputs.items() if s != failure.step},
            orjson.dumps([t for t in run.full_trace() if t["step"] != failure.step]),
            envelope.error,
            {node: dict(tokens) for node, tokens in held.items() if node in ahead},
        )
        return self.letters.step_failed(run, resume, failure, partition)

    def _envelope_to(self, topic: str, envelope: Envelope, partition: int) -> Emission:
        """An envelope for a stage topic. It has no ``ia-run-id`` header (the output and dead-letter records have
        one): the run id is inside, and a record header costs aiokafka more to write than 2 KB of value."""
        return Emission(topic, partition, envelope.key.encode(), envelope.encode())

    def finish(self, run: StreamRun, envelope: Envelope, partition: int, resolve: bool = True) -> list[Emission]:
        """The end node: the result record on the output topic, and a dead letter for a run that failed
        without a step failing for good (that one was written when the step failed). ``resolve=False``
        leaves ``outputs`` null."""
        record = {
            "run_id": run.run_id,
            "pipeline": self.plan.id,
            "pipeline_version": self.plan.version,
            "status": run.status,
            "outputs": run.final_outputs() if resolve else None,
            "error": run.error,
            "trace": orjson.Fragment(run.trace_json()),
            "input": orjson.Fragment(envelope.input_bytes()),
            "source": envelope.source,
        }
        self._finished.append(FinishedRun(record, now_ms()))
        headers = (("ia-run-id", run.run_id.encode()),)
        emissions = [Emission(self.topology.output_topic, partition, envelope.key.encode(),
                              orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS), headers)]  # fmt: skip
        if run.error is not None and run.error.get("type") in RUN_LEVEL_ERRORS:
            emissions.append(self.letters.run_failed(run, envelope, partition))
        return emissions

    def internal_error_letter(self, record: ConsumedRecord, trace: str) -> Emission:
        """A record the runtime itself failed on: kept in the dead-letter queue with its bytes."""
        return self.letters.internal_error(record, trace)

    # -- join timeouts ----------------------------------------------------------------------------------------

    async def expire_joins(self, timeout_s: float) -> list[Emission]:
        """Joins that waited longer than ``timeout_s`` fail their run: the paths still missing count as failed,
        and the run goes on from the join (its end is reached, so it still gets its one result)."""
        emissions: list[Emission] = []
        deadline = now_ms() - int(timeout_s * 1000)
        for partition, key, entry in list(self.store.waiting_since(deadline)):
            run_id, replay, node = key.split("|", 2)
            missing = [edge for edge in self.plan.graph.incoming[node] if edge.id not in entry.tokens]
            for edge in missing:
                entry.tokens[edge.id] = "fail"
            entry.error = entry.error or {
                "step": None if node == END else node,
                "type": "JoinTimeout",
                "message": f"join '{'end' if node == END else node}' waited over {timeout_s:g}s for the paths from "
                + ", ".join(f"'{edge.source}'" for edge in missing),
                "attempts": 0,
                "traceback": None,
            }
            self.store.fire(partition, key, entry)
            identity = entry.run
            envelope = Envelope(
                run_id=run_id,
                pipeline=self.plan.id,
                version=self.plan.version,
                key=identity.get("key", run_id),
                input=identity.get("input", {}),
                resume_at=node,
                source=identity.get("source"),
                started_ms=identity.get("started_ms", 0),
                replay=int(replay),
            )
            run = StreamRun(self.plan, run_id, envelope.input)
            take_join(run, node, entry)
            if node == END:
                emissions.extend(self.finish(run, envelope, partition))
            else:
                emissions.extend(await self._drive(run, envelope, partition, [(node, "fail")]))
        return emissions

    # -- keys -------------------------------------------------------------------------------------------------

    def _partition_key(self, event: dict[str, Any], record_key: bytes | None, run_id: str) -> str:
        """``stream.key`` resolved on the event, else the record's key, else the run id."""
        if self.plan.key is not None:
            value = self.plan.key.resolve(Scope(event, self.plan.parameters, {}))
            if value is not None and value != "":
                return render_text(value)
        if record_key:
            return record_key.decode("utf-8", "replace")
        return run_id
