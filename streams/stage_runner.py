"""Running a pipeline's stages for records: the kernel, driven one stage at a time.

``StageRunner.on_input`` turns an input record into a run and executes the start stage; ``on_envelope``
executes the stage an envelope resumes at. Both append what the record produced (envelopes for the next stages,
the result record and finished run, dead letters, join state) to the ``Produced`` of its partition's part of
the batch, and never raise for bad data: that becomes a dead letter. The kernel decides what each step and join
does (``run_step``, ``arrivals``); the stage runner decides where a run goes next: on in this stage, or to another
stage's topic.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.graph import END
from ia_modules.pipeline.kernel import StepFailure, Token, arrivals, run_step, skip_step
from ia_modules.pipeline.services import ServiceRegistry, current_execution_id
from ia_modules.pipeline.step import Step
from ia_modules.pipeline.wire import (
    DEFAULT_MAX_JSON_DEPTH,
    RUN_LEVEL_ERRORS,
    RunError,
    parse_event,
    partition_key,
    result_record,
    run_error,
    run_id_for,
    source_of,
)
from streams.envelope import Envelope, EnvelopeError, StreamRun, partition_for
from streams.joins.delivery import JoinDelivery, take_join
from streams.joins.store import JoinStateTooLarge, JoinStore, join_key
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES, Emission
from streams.kafka.records import ConsumedRecord, now_ms
from streams.metrics.catalog import PipelineMetrics
from streams.sink.checkpoint import Produced, RecordPart
from streams.sink.dead_letters import DeadLetters
from streams.sink.results import FinishedRun
from streams.stopped_runs import RecordTooLarge, RunStop, input_fits, joins_to_close, stop_error
from streams.topology import Topology, build_topology


class StageRunner:
    """Executes the stages of one pipeline on this worker: its plan, topics, steps and join state."""

    def __init__(
        self,
        plan: PipelinePlan,
        topology: Topology,
        steps: dict[str, Step],
        store: JoinStore,
        cluster_id: str,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.plan = plan
        self.metrics = metrics
        self._step_metrics = metrics.steps if metrics is not None else None
        self.topology = topology
        self.steps = steps
        self.store = store
        self.cluster_id = cluster_id
        self.max_record_bytes = max_record_bytes
        self.max_json_depth = max_json_depth
        self.letters = DeadLetters(plan.id, topology.dlq_topic, cluster_id, max_record_bytes)
        self.joins = JoinDelivery(plan, topology, store)
        self._joins_ahead_of = {stage.topic: topology.joins_ahead[stage.steps[0]] for stage in topology.stages.values()}

    @classmethod
    def build(
        cls,
        plan: PipelinePlan,
        services: ServiceRegistry,
        cluster_id: str,
        *,
        topic_prefix: str = "ia",
        app_id: str = "ia-modules",
        fuse: bool = True,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        metrics: PipelineMetrics | None = None,
    ) -> StageRunner:
        """The pipeline's topology (stages fused unless ``fuse`` is off), an empty join store, its steps made
        with ``services``, for the cluster ``cluster_id`` (run ids name it); events nesting deeper than
        ``max_json_depth`` are bad input; ``metrics``: its series, or None to record none."""
        topology = build_topology(plan, topic_prefix, app_id, fuse)
        expected = {node: len(plan.graph.incoming[node]) for node in topology.joins}
        store = JoinStore(topology.joins_topic, expected, max_record_bytes)
        steps = Pipeline(plan).steps_for(services)
        return cls(plan, topology, steps, store, cluster_id, max_record_bytes, max_json_depth, metrics)

    # -- entry points ---------------------------------------------------------------------------------------

    async def on_input(self, record: ConsumedRecord, out: Produced) -> None:
        """A new event: decode it, give it its run id and partition key, and run the start stage (or, when it
        arrived on another partition than its key maps to, forward it to the start stage's own topic first)."""
        run_id = run_id_for(self.cluster_id, record.topic, record.partition, record.offset)
        raw = record.value
        event, problem = (
            parse_event(raw, self.max_json_depth) if raw is not None else (None, "empty message (null value)")
        )
        if event is None:
            self.letters.bad_input(record, problem or "", out)
            return
        key = partition_key(self.plan, event, record.key, run_id)
        consumed_ms = now_ms()
        envelope = Envelope(
            run_id=run_id,
            pipeline=self.plan.id,
            version=self.plan.version,
            key=key,
            input=event,
            resume_at=self.plan.graph.start,
            source=source_of(record.topic, record.partition, record.offset, record.timestamp),
            started_ms=record.timestamp or consumed_ms,
            input_json=raw if raw is not None and b"\n" not in raw else b"",  # one line: the envelope's input as is
            consumed_ms=consumed_ms,
        )
        partition = partition_for(key.encode(), self.topology.partitions)
        ours = RecordPart(out)
        try:
            if partition != record.partition or record.topic not in self.topology.input_topics:
                out.sends.append(self._envelope_to(self.topology.start.topic, envelope, partition))
            else:
                await self.execute(envelope, partition, ours)
        except (RecordTooLarge, orjson.JSONEncodeError) as exc:
            self._stop(envelope, partition, exc, ours)

    async def on_envelope(self, record: ConsumedRecord, out: Produced) -> None:
        """An envelope on a stage topic: run the stage from the step it resumes at."""
        try:
            envelope = Envelope.decode(record.value, self.plan.id)
            if envelope.resume_at not in self.plan.steps:
                raise EnvelopeError(f"resume_at names no step of {self.plan.id}: {envelope.resume_at!r}")
        except EnvelopeError as exc:
            self.letters.bad_input(record, f"not an envelope: {exc}", out)
            return
        ours = RecordPart(out)
        try:
            await self.execute(envelope, record.partition, ours)
        except (RecordTooLarge, orjson.JSONEncodeError) as exc:
            self._stop(envelope, record.partition, exc, ours)

    def internal_error(self, record: ConsumedRecord, trace: str, out: Produced) -> None:
        """A record the runtime itself failed on: kept in the dead-letter queue with its bytes, under the id of
        the run it carries (an envelope that decodes names its run; an input record's run id is its position's)."""
        run_id: str | None = None
        key: str | None = None
        if record.topic not in self.topology.input_topics:
            with contextlib.suppress(Exception):  # not an envelope: the record's position names it
                envelope = Envelope.decode(record.value, self.plan.id)
                run_id, key = envelope.run_id, envelope.key
        self.letters.internal_error(record, trace, out, run_id=run_id, key=key)

    def _stop(self, envelope: Envelope, partition: int, stop: RunStop, ours: RecordPart) -> None:
        """The run ends here, failed (``stopped_runs.stop_error``), with a result and a dead letter that can be
        produced (no outputs, no trace, the input only if it fits), in place of the records, rows and letters it
        produced on this record; the join state it changed stays changed. The joins it could still reach are
        closed: a branch that went ahead earlier and arrives at one of them is ignored, rather than leaving it to
        time out into a second result (or a join the store holds but could not write to fire into a first)."""
        ours.replace()
        ended = ours.out
        for node in joins_to_close(stop, self.topology, envelope.resume_at):
            self.store.close(partition, join_key(envelope.run_id, envelope.replay, node), now_ms(), ended)
        run = StreamRun(self.plan, envelope.run_id, envelope.input)
        run.error = stop_error(stop, self.topology, self.max_record_bytes)
        if not input_fits(envelope, self.max_record_bytes // 2):
            envelope.input_json = b"null"
        self.finish(run, envelope, partition, ended, resolve=False)

    # -- execution --------------------------------------------------------------------------------------------

    async def execute(self, envelope: Envelope, partition: int, ours: RecordPart) -> None:
        """Run the envelope's stage; skips and failures travel on at once, even into other stages."""
        run = StreamRun(self.plan, envelope.run_id, envelope.input, dict(envelope.outputs))
        run.earlier_trace = envelope.trace_json
        run.input_json = envelope.input_bytes()
        run.error = envelope.error
        if envelope.join_tokens:
            run.tokens[envelope.resume_at] = dict(envelope.join_tokens)
        await self._drive(run, envelope, partition, [(envelope.resume_at, "run")], ours)

    async def _drive(
        self,
        run: StreamRun,
        envelope: Envelope,
        partition: int,
        start: list[tuple[str, Token]],
        ours: RecordPart,
    ) -> None:
        """Run steps from ``start`` until every branch has left this stage: a step decided ``run`` in this stage
        runs here, one in another stage becomes an envelope on that stage's topic, skips and fails travel on at
        once. A join's tokens are held while this run's envelopes can still bring them there (they travel in
        the envelope, ``carried``); only a join that must wait for another envelope of the run keeps them in the
        join store. A join never runs in the stage that fired it."""
        topology = self.topology
        out = ours.out
        joins, stage_of = topology.joins, topology.stage_of
        plans, instances = self.plan.steps, self.steps
        observed = self._step_metrics
        stage = stage_of.get(start[0][0])
        forwards: list[str] = []
        held = {node: dict(tokens) for node, tokens in envelope.carried.items()} if envelope.carried else {}
        decided = list(start)  # (step, token) in the order decided: the trace lists steps as they ran
        starting = len(start)
        index = 0
        reset = current_execution_id.set(run.run_id)
        try:
            while True:
                while index < len(decided):
                    target, token = decided[index]
                    index += 1
                    if target == END:
                        self.finish(run, envelope, partition, out)
                    elif token != "run":
                        arrivals(run, skip_step(run, target, token), held, decided)
                        if observed is not None:
                            observed[target].skipped.value += 1
                    elif index > starting and (stage_of[target] != stage or target in joins):
                        forwards.append(target)
                    else:
                        failures_before = len(run.failures)
                        sends = await run_step(run, plans[target], instances[target])
                        if observed is not None:
                            observed[target].ran(run.trace[-1])
                        if len(run.failures) > failures_before:
                            for failure in run.failures[failures_before:]:
                                self._step_letter(run, envelope, failure, partition, held, out)
                        arrivals(run, sends, held, decided)
                waiting = [n for n in held if not any(n in topology.joins_ahead[f] for f in forwards)] if held else []
                if not waiting:
                    break
                for node in waiting:
                    entry = self.joins.deliver(run, envelope, partition, node, held.pop(node), out)
                    if entry is not None:
                        decided.append((node, take_join(run, node, entry)))
        except JoinStateTooLarge as exc:
            raise RecordTooLarge(exc.topic, exc.size, topology.joins_ahead[exc.node]) from None
        finally:
            current_execution_id.reset(reset)
        for target in forwards:
            ahead = topology.joins_ahead[target]
            carried = {node: tokens for node, tokens in held.items() if node in ahead} if held else {}
            out.sends.append(self._next_stage(run, envelope, target, partition, carried))

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
        topic = self.topology.stages[stage].topic
        if len(value) > self.max_record_bytes:
            raise RecordTooLarge(topic, len(value), self._joins_ahead_of[topic])
        return Emission(topic, partition, envelope.key.encode(), value)

    def _resume_envelope(
        self,
        run: StreamRun,
        envelope: Envelope,
        resume_at: str,
        outputs: dict[str, Any],
        trace: bytes,
        error: RunError | None,
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
            consumed_ms=envelope.consumed_ms,
        )

    def _step_letter(
        self,
        run: StreamRun,
        envelope: Envelope,
        failure: StepFailure,
        partition: int,
        held: dict[str, dict[int, Token]],
        out: Produced,
    ) -> None:
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
        self.letters.step_failed(run, resume, failure, partition, out)

    def _envelope_to(self, topic: str, envelope: Envelope, partition: int) -> Emission:
        """An envelope for a stage topic. It has no ``ia-run-id`` header (the output and dead-letter records have
        one): the run id is inside, and a record header costs aiokafka more to write than 2 KB of value."""
        value = envelope.encode()
        if len(value) > self.max_record_bytes:
            raise RecordTooLarge(topic, len(value), self._joins_ahead_of[topic])
        return Emission(topic, partition, envelope.key.encode(), value)

    def finish(self, run: StreamRun, envelope: Envelope, partition: int, out: Produced, resolve: bool = True) -> None:
        """The end node: the result record on the output topic and for the sink, and a dead letter for a run that
        failed without a step failing for good (that one was written when the step failed). ``resolve=False``
        leaves ``outputs`` null."""
        record = result_record(
            run_id=run.run_id,
            pipeline=self.plan.id,
            pipeline_version=self.plan.version,
            status=run.status,
            outputs=run.final_outputs() if resolve else None,
            error=run.error,
            trace=orjson.Fragment(run.trace_json()),
            input=orjson.Fragment(envelope.input_bytes()),
            source=envelope.source,
        )
        value = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
        if len(value) > self.max_record_bytes:
            raise RecordTooLarge(self.topology.output_topic, len(value), frozenset())
        headers = (("ia-run-id", run.run_id.encode()),)
        out.sends.append(Emission(self.topology.output_topic, partition, envelope.key.encode(), value, headers))
        series = self.metrics.runs if self.metrics is not None else None
        out.runs.append(
            FinishedRun(record, now_ms(), self.letters, partition, envelope.key, *envelope.timing(), series)
        )
        if run.error is not None and run.error.get("type") in RUN_LEVEL_ERRORS:
            self.letters.run_failed(run, envelope, partition, out)

    # -- join timeouts ----------------------------------------------------------------------------------------

    async def expire_joins(self, timeout_s: float, out: Produced) -> None:
        """Joins that waited longer than ``timeout_s`` fail their run: the paths still missing count as failed,
        and the run goes on from the join (its end is reached, so it still gets its one result)."""
        deadline = now_ms() - int(timeout_s * 1000)
        for partition, key, entry in list(self.store.waiting_since(deadline)):
            run_id, replay, node = key.split("|", 2)
            missing = [edge for edge in self.plan.graph.incoming[node] if edge.id not in entry.tokens]
            for edge in missing:
                entry.tokens[edge.id] = "fail"
            entry.error = entry.error or run_error(
                "JoinTimeout",
                f"join '{'end' if node == END else node}' waited over {timeout_s:g}s for the paths from "
                + ", ".join(f"'{edge.source}'" for edge in missing),
                step=None if node == END else node,
            )
            self.store.fire(partition, key, entry, out)
            if self.metrics is not None:
                self.metrics.join_timeouts[node].value += 1
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
                consumed_ms=identity.get("consumed_ms", 0),
            )
            run = StreamRun(self.plan, run_id, envelope.input)
            take_join(run, node, entry)
            ours = RecordPart(out)
            try:
                if node == END:
                    self.finish(run, envelope, partition, out)
                else:
                    await self._drive(run, envelope, partition, [(node, "fail")], ours)
            except (RecordTooLarge, orjson.JSONEncodeError) as exc:
                self._stop(envelope, partition, exc, ours)
