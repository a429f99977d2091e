"""The execution kernel: run one step (retries, timeout, on_error), route its paths, and deliver join tokens.

Both the in-process runner (``Pipeline.run``) and the stage runner (``streams.stage_runner``) drive runs through
these functions, so their semantics
cannot drift apart. Nothing here does I/O beyond awaiting the steps themselves.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from .compiler import PipelinePlan, StepPlan
from .conditions import TAKEN, Observation
from .deadline import DeadlineExceeded, finish_with_deadline
from .errors import PermanentStepError, StepOutputError
from .graph import END, Edge
from .models import RetryPolicy
from .step import Step, checked_output
from .templates import Scope
from .wire import RunError, run_error

Token = Literal["run", "skip", "fail"]

_SCALARS = frozenset({str, int, float, bool, type(None)})


@dataclass
class StepFailure:
    """A step that failed for good: what the dead letter and the run's error report."""

    step: str
    type: str
    message: str
    attempts: int
    traceback: str
    input: dict[str, Any]

    def as_error(self) -> RunError:
        return run_error(self.type, self.message, step=self.step, attempts=self.attempts, traceback=self.traceback)


@dataclass
class RunState:
    """Everything one run accumulates: step outputs, join tokens, trace, and the first error."""

    plan: PipelinePlan
    run_id: str
    pipeline_input: dict[str, Any]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[int, Token]] = field(default_factory=dict)
    """For each join that fired, the token each of its paths delivered (by edge id)."""
    trace: list[dict[str, Any]] = field(default_factory=list)
    error: RunError | None = None
    failures: list[StepFailure] = field(default_factory=list)
    input_json: bytes = b""
    """``pipeline_input`` encoded: each step's copy of a nested input is decoded from it (made on first use)."""
    flat_input: bool | None = None
    """Whether every value of ``pipeline_input`` is a string, number, bool or null (found on first use)."""

    def scope(self, result: Any = None) -> Scope:
        return Scope(self.pipeline_input, self.plan.parameters, self.outputs, result)

    def fail(self, error: RunError) -> None:
        """Record the run's error; the first one is the run's error, later ones only show in the trace."""
        if self.error is None:
            self.error = error

    def input_for(self, step: StepPlan) -> dict[str, Any]:
        """``{**pipeline_input, **outputs of predecessors whose path delivered run (path order), **inputs}``,
        as a copy of its own: a step that changes its data changes nothing the run keeps."""
        outputs = self.outputs
        incoming = self.plan.graph.incoming[step.id]
        if len(incoming) == 1:  # its one path delivered run, or it would not run
            output = outputs.get(incoming[0].source)
            extra: dict[str, Any] = dict(output) if output else {}
        else:
            extra = {}
            received = self.tokens.get(step.id)
            for edge in incoming:
                if received is None or received.get(edge.id) == "run":
                    output = outputs.get(edge.source)
                    if output is not None:
                        extra.update(output)
        inputs = step.inputs
        if inputs.kind != "constant" or inputs.value:
            extra.update(inputs.resolve(Scope(self.pipeline_input, self.plan.parameters, outputs)))
        if self.flat_input is None:
            self.flat_input = _SCALARS.issuperset(map(type, self.pipeline_input.values()))
        data: dict[str, Any]
        if self.flat_input:  # nothing in it a step could change in place: a shallow copy is a copy
            data = dict(self.pipeline_input)
        else:
            if not self.input_json:
                self.input_json = orjson.dumps(self.pipeline_input)
            data = orjson.loads(self.input_json)
        if extra:
            data.update(orjson.loads(orjson.dumps(extra)))
        return data

    @property
    def status(self) -> str:
        return "failed" if self.error is not None else "success"

    def final_outputs(self) -> Any:
        """``outputs`` resolved now (missing values null), or the merged outputs of the last steps that ran."""
        if self.plan.outputs is not None:
            return self.plan.outputs.resolve(self.scope())
        merged: dict[str, Any] = {}
        received = self.tokens.get(END, {})
        for edge in self.plan.graph.incoming[END]:
            if received.get(edge.id, "run") == "run" and edge.source in self.outputs:
                merged.update(self.outputs[edge.source])
        return merged


def join_decision(tokens: Mapping[int, Token]) -> Token:
    """What a join whose paths all delivered does (dead-path elimination): ``fail`` if any path failed,
    ``run`` if any ran, else ``skip``."""
    values = tokens.values()
    return "fail" if "fail" in values else "run" if "run" in values else "skip"


def join_ready(received: Mapping[int, Token], expected: int) -> Token | None:
    """The join's decision once ``expected`` paths have delivered to it, else None (it waits)."""
    return None if len(received) < expected else join_decision(received)


def arrivals(
    run: RunState,
    sends: list[tuple[Edge, Token]],
    waiting: dict[str, dict[int, Token]],
    decided: list[tuple[str, Token]],
) -> None:
    """Deliver each path's token to its target, and append to ``decided`` the targets that are now decided, with
    their token (the end node included). A target with one incoming path takes the path's token; a join collects
    tokens in ``waiting`` until all its paths delivered, then they become the run's tokens for it and
    ``join_decision`` says what it does. The caller keeps ``waiting`` for the run (in-process, for the whole run;
    a stage runner, for what its envelope carries)."""
    joins = run.plan.graph.joins
    for edge, token in sends:
        target = edge.target
        if target not in joins:
            decided.append((target, token))
            continue
        received = waiting.get(target)
        if received is None:
            received = waiting[target] = {}
        received[edge.id] = token
        decision = join_ready(received, len(run.plan.graph.incoming[target]))
        if decision is not None:
            del waiting[target]
            run.tokens[target] = received
            decided.append((target, decision))


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff with jitter: half to all of ``backoff_s * 2**(attempt-1)``, capped."""
    ceiling: float = min(policy.max_backoff_s, policy.backoff_s * (2 ** (attempt - 1)))
    return ceiling * (0.5 + random.random() / 2)


_second_prefix: tuple[int, str] = (-1, "")
_last_millisecond: tuple[int, str] = (-1, "")


def _now_iso(epoch: float) -> str:
    """``2026-01-02T03:04:05.678Z``. Many steps start within the same millisecond, and the part up to the
    second changes once a second: both are cached."""
    global _second_prefix, _last_millisecond
    millisecond = int(epoch * 1000)
    if _last_millisecond[0] == millisecond:
        return _last_millisecond[1]
    second, fraction = divmod(millisecond, 1000)
    if _second_prefix[0] != second:
        _second_prefix = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    text = f"{_second_prefix[1]}.{fraction:03d}Z"
    _last_millisecond = (millisecond, text)
    return text


async def run_step(run: RunState, step: StepPlan, instance: Step) -> list[tuple[Edge, Token]]:
    """Run ``step`` for ``run`` with its retry, timeout and on_error policy, record its trace entry, and
    return the token for every path leaving it."""
    data = run.input_for(step)
    started = time.time()
    clock = attempt_started = time.perf_counter()
    attempts = 0
    while True:
        attempts += 1
        try:
            coroutine = instance.run(data)
            try:  # most steps finish without suspending: no timer, no extra coroutine (deadline.py)
                suspended_on = coroutine.send(None)
            except StopIteration as finished:
                result = finished.value
            else:
                result = await finish_with_deadline(coroutine, suspended_on, step.timeout_s, attempt_started)
            if type(result) is not dict:
                result = checked_output(instance, result)
            try:  # the output as it would arrive over the wire, so in-process and streamed runs see the same
                output: dict[str, Any] = orjson.loads(orjson.dumps(result))
            except TypeError as exc:
                raise StepOutputError(
                    f"step '{step.id}' returned a dict that is not JSON-serialisable: {exc}"
                ) from None
            break
        except Exception as exc:
            if attempts < step.retry.max_attempts and not isinstance(exc, StepOutputError | PermanentStepError):
                await asyncio.sleep(backoff_delay(step.retry, attempts))
                attempt_started = time.perf_counter()
                continue
            return await _failed(run, step, data, exc, attempts, started, clock)
    step_id = step.id
    entry = {
        "step": step_id,
        "status": "ok",
        "attempts": attempts,
        "started_at": _now_iso(started),
        "duration_ms": int((time.perf_counter() - clock) * 1_000_000) / 1000,  # _ms, inlined: runs per step
    }
    run.outputs[step_id] = output
    fixed = run.plan.graph.always_from.get(step_id)
    if fixed is not None:  # every path taken, nothing to evaluate
        entry["routes"] = [{"to": edge.label, "taken": True, "observed": None} for edge in fixed]
        run.trace.append(entry)
        return [(edge, "run") for edge in fixed]
    if run.plan.has_function_conditions:
        return await _route(run, step_id, output, entry)
    return _route_now(run, step_id, output, entry, {})


async def _failed(
    run: RunState, step: StepPlan, data: dict[str, Any], exc: Exception, attempts: int, started: float, clock: float
) -> list[tuple[Edge, Token]]:
    """A step that failed for good: ``on_error: continue`` routes a failed output on, else the run fails."""
    if isinstance(exc, DeadlineExceeded):
        error_type, message = "TimeoutError", f"step '{step.id}' timed out after {step.timeout_s:g}s"
    else:
        error_type, message = type(exc).__name__, str(exc)
    entry: dict[str, Any] = {
        "step": step.id,
        "status": "failed",
        "attempts": attempts,
        "started_at": _now_iso(started),
        "duration_ms": _ms(clock),
        "error": {"type": error_type, "message": message},
    }
    if step.on_error == "continue":
        entry["on_error"] = "continue"
        run.outputs[step.id] = {"status": "failed", "error": {"type": error_type, "message": message}}
        return await _route(run, step.id, run.outputs[step.id], entry)
    failure = StepFailure(step.id, error_type, message, attempts, "".join(traceback.format_exception(exc)), data)
    run.failures.append(failure)
    run.fail(failure.as_error())
    return _pass_on(run, step.id, "fail", entry, "step failed")


def skip_step(run: RunState, step_id: str, token: Token) -> list[tuple[Edge, Token]]:
    """A step that does not run (all its paths skipped, or one failed): pass the token on, record why."""
    reason = "upstream failed" if token == "fail" else "no path to it was taken"
    entry: dict[str, Any] = {
        "step": step_id,
        "status": "skipped",
        "reason": reason,
        "attempts": 0,
        "started_at": None,
        "duration_ms": 0.0,
    }
    return _pass_on(run, step_id, token, entry, reason)


def deliver_all(run: RunState, sends: list[tuple[Edge, Token]], waiting: dict[str, dict[int, Token]]) -> list[str]:
    """Deliver tokens (``waiting`` holds the run's joins that wait); skip and fail tokens travel on at once (no
    task for a branch that does nothing). Returns the steps that are now ready to run."""
    runnable: list[str] = []
    while sends:
        decided: list[tuple[str, Token]] = []
        arrivals(run, sends, waiting, decided)
        sends = []
        for target, token in decided:
            if target == END:
                continue
            if token == "run":
                runnable.append(target)
            else:
                sends.extend(skip_step(run, target, token))
    return runnable


def _ms(clock: float) -> float:
    """Milliseconds since ``clock``, to the microsecond."""
    return int((time.perf_counter() - clock) * 1_000_000) / 1000


def _pass_on(run: RunState, step_id: str, token: Token, entry: dict[str, Any], why: str) -> list[tuple[Edge, Token]]:
    edges = run.plan.graph.outgoing[step_id]
    entry["routes"] = [{"to": e.label, "taken": False, "observed": None, "note": why} for e in edges]
    run.trace.append(entry)
    return [(edge, token) for edge in edges]


async def _route(
    run: RunState, step_id: str, output: Mapping[str, Any], entry: dict[str, Any]
) -> list[tuple[Edge, Token]]:
    """Evaluate every path leaving the step in file order; every path whose condition holds is taken. Function
    conditions (which may be async) are awaited first; the rest is ``_route_now``, with no coroutine."""
    awaited: dict[int, Observation | Exception] = {}
    if run.plan.has_function_conditions:
        scope = run.scope(output)
        for edge in run.plan.graph.outgoing[step_id]:
            if edge.condition.is_async:
                try:
                    awaited[edge.id] = await edge.condition.evaluate_async(scope)
                except Exception as exc:
                    awaited[edge.id] = exc
    return _route_now(run, step_id, output, entry, awaited)


def _route_now(
    run: RunState,
    step_id: str,
    output: Mapping[str, Any],
    entry: dict[str, Any],
    awaited: dict[int, Observation | Exception],
) -> list[tuple[Edge, Token]]:
    scope: Scope | None = None
    sends: list[tuple[Edge, Token]] = []
    routes: list[dict[str, Any]] = []
    for edge in run.plan.graph.outgoing[step_id]:
        condition = edge.condition
        seen: Observation | Exception
        if condition.always:
            seen = TAKEN
        elif edge.id in awaited:
            seen = awaited[edge.id]
        else:
            if scope is None:
                scope = run.scope(output)
            try:
                seen = condition.evaluate(scope)
            except Exception as exc:
                seen = exc
        if isinstance(seen, Exception):
            message = f"condition of the path from '{step_id}' to '{edge.label}' raised {type(seen).__name__}: {seen}"
            run.fail(
                run_error("ConditionError", message, step=step_id, traceback="".join(traceback.format_exception(seen)))
            )
            routes.append({"to": edge.label, "taken": False, "observed": None, "note": message})
            sends.append((edge, "fail"))
            continue
        routes.append(_route_entry(edge, seen))
        if seen.taken and edge.terminal == "end_with_failure":
            run.fail(run_error("EndWithFailure", f"the path from '{step_id}' reached end_with_failure", step=step_id))
        sends.append((edge, "run" if seen.taken else "skip"))
    entry["routes"] = routes
    run.trace.append(entry)
    return sends


def _route_entry(edge: Edge, seen: Observation) -> dict[str, Any]:
    route = {"to": edge.label, "taken": seen.taken, "observed": seen.observed}
    if seen.note:
        route["note"] = seen.note
    return route
