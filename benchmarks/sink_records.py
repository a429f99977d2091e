"""The rows the sink benchmark writes: finished runs shaped like the end stage's result records (an
order_enrichment input, its outputs, a 5-step trace) and the dead letter of a failed one."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from ia_modules.pipeline.wire import RunError, dead_letter, result_record, run_error, source_of
from streams.envelope import Envelope
from streams.sink.results import FinishedRun

NAMESPACE = uuid.UUID("0b6c55a1-6e0f-4c4e-9a57-5d1f2f0c7a11")
STEPS = ("order_intake", "pricing", "risk_scoring", "order_decision", "fulfilment_planner")


def _iso(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms / 1000)) + f".{epoch_ms % 1000:03d}Z"


def make_runs(events: list[dict[str, Any]], tag: str, count: int, failed_every: int = 0) -> list[FinishedRun]:
    """``count`` finished runs with run ids unique to ``tag``; with ``failed_every``, every n-th one failed."""
    runs = []
    now_ms = int(time.time() * 1000)
    for i in range(count):
        event = dict(events[i % len(events)], order_id=f"ORD-{tag}-{i}")
        started = now_ms - 40 + i % 7
        trace = [
            {"step": step, "status": "ok", "attempts": 1, "started_at": _iso(started + n), "duration_ms": 0.042 + n}
            for n, step in enumerate(STEPS)
        ]
        failed = bool(failed_every) and i % failed_every == failed_every - 1
        error: RunError | None = None
        if failed:
            trace[1].update(status="failed", attempts=3, error={"type": "ValueError", "message": "no price for sku"})
            for entry in trace[2:]:
                entry.update(status="skipped", attempts=0, reason="upstream failed")
            error = run_error("ValueError", "no price for sku", step="pricing", attempts=3)
        total = round(sum(item["quantity"] * item["unit_price"] for item in event["items"]), 2)
        outputs = {
            "order_id": event["order_id"], "decision": "accept", "total": total,
            "risk": {"score": 12 + i % 50, "level": "low"}, "review_ticket": None,
        }  # fmt: skip
        record = result_record(
            run_id=str(uuid.uuid5(NAMESPACE, f"{tag}:{i}")),
            pipeline="order_enrichment",
            pipeline_version="1.0.0",
            status="failed" if failed else "success",
            outputs={} if failed else outputs,
            error=error,
            trace=trace,
            input=event,
            source=source_of("orders", i % 6, i, started - 5),
        )
        runs.append(FinishedRun(record, now_ms))
    return runs


def letter_for(run: FinishedRun) -> dict[str, Any]:
    """The dead letter a step that failed for good writes: the envelope to resume at that step."""
    record = run.record
    resume = Envelope(
        run_id=record["run_id"], pipeline=record["pipeline"], version=record["pipeline_version"],
        key=record["input"]["customer_id"], input=record["input"], resume_at="pricing",
        trace_json=orjson.dumps(record["trace"][:1]), source=record["source"], started_ms=run.finished_ms - 40,
    )  # fmt: skip
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/app/ia_modules/pipeline/kernel.py", line 162, in run_step\n'
        "    output = _as_json(step.id, await run_with_deadline(instance.work(data), step.timeout_s))\n"
        '  File "/app/steps/orders.py", line 88, in work\n'
        "    raise ValueError(f'no price for sku {sku}')\n"
        "ValueError: no price for sku\n"
    )
    return dead_letter(
        "step_failed",
        run_id=record["run_id"],
        pipeline=record["pipeline"],
        error=run_error("ValueError", "no price for sku", step="pricing", attempts=3, traceback=traceback),
        input=record["input"],
        envelope=resume.as_dict(),
        source=record["source"],
        created_ms=run.finished_ms,
    )
