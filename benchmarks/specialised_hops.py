"""The worker's work for the bench pipeline, written by hand for that one pipeline: the least a runtime that keeps
DESIGN.md section 4's semantics can do per event.

Each hop takes a consumed record and returns the bytes to produce, as the worker's stage runner does for
``benchmarks/pipelines/bench_processing.json``: the run id (uuid5) and partition key, each step given its own
copy of its data, each output normalised through JSON, a trace entry per step (status, attempts, start,
duration, routes with the observed condition values), the skipped branch's entry, envelopes in the worker's
version-2 layout (header, trace, input), the join at ``output_formatter`` fired from the tokens the envelope
carries, and the result record with ``outputs`` resolved. Nothing generic is left: no plan, no templates, no
conditions, no token routing, no dead-letter or size checks. ``stage_cpu`` checks that it gives the runner's
result records, and ``streaming_throughput`` runs it in the raw chain (variant ``floor``), so that the
distance between the raw chain and the worker splits into what the semantics cost and what generality costs.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from benchmarks.bench_steps import (
    THRESHOLD,
    BenchAdvancedStep,
    BenchCleanerStep,
    BenchFormatterStep,
    BenchLoaderStep,
    BenchQualityStep,
    BenchStandardStep,
)
from ia_modules.pipeline.core import Step
from ia_modules.pipeline.kernel import _now_iso
from ia_modules.pipeline.wire import result_record, run_id_for
from streams.envelope import join_trace
from streams.kafka.records import ConsumedRecord

PIPELINE, VERSION = "bench_processing", "2.0.0"
ADVANCED, STANDARD, FORMATTER = "advanced_processor", "standard_processor", "output_formatter"
#: The edge ids of the paths into the join (file order of the bench pipeline's paths).
FROM_ADVANCED, FROM_STANDARD = 4, 5


class SpecialisedHops:
    """The three hops for one cluster (the run id names it)."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id
        self.loader = BenchLoaderStep("data_loader", {"source_type": "kafka", "validation_enabled": True})
        self.cleaner = BenchCleanerStep("data_cleaner", {})
        self.checker = BenchQualityStep("quality_checker", {"threshold": THRESHOLD})
        self.advanced = BenchAdvancedStep(ADVANCED, {})
        self.standard = BenchStandardStep(STANDARD, {})
        self.formatter = BenchFormatterStep(FORMATTER, {"format": "json"})

    def start(self, record: ConsumedRecord) -> bytes:
        """Input event -> loader, cleaner, checker -> the envelope for the branch taken."""
        raw = record.value or b"{}"
        run_id = run_id_for(self.cluster_id, record.topic, record.partition, record.offset)
        event = orjson.loads(raw)
        key = str(event.get("customer_id"))
        outputs: dict[str, Any] = {}
        trace: list[dict[str, Any]] = []
        loaded = _run(self.loader, dict(event), "data_loader", outputs, trace)
        _route_always(trace, "data_cleaner")
        data = dict(event)
        data.update(orjson.loads(orjson.dumps({**loaded, "raw_data": loaded.get("loaded_data")})))
        cleaned = _run(self.cleaner, data, "data_cleaner", outputs, trace)
        _route_always(trace, "quality_checker")
        data = dict(event)
        data.update(orjson.loads(orjson.dumps({**cleaned, "cleaned_data": cleaned.get("cleaned_data")})))
        checked = _run(self.checker, data, "quality_checker", outputs, trace)
        score = checked.get("quality_score")
        advanced = score is not None and score > THRESHOLD
        trace[-1]["routes"] = [
            {"to": ADVANCED, "taken": advanced, "observed": score},
            {"to": STANDARD, "taken": not advanced, "observed": score},
        ]
        skipped = STANDARD if advanced else ADVANCED
        trace.append(
            {
                "step": skipped,
                "status": "skipped",
                "reason": "no path to it was taken",
                "attempts": 0,
                "started_at": None,
                "duration_ms": 0.0,
                "routes": [{"to": FORMATTER, "taken": False, "observed": None, "note": "no path to it was taken"}],
            }
        )
        header = {
            "v": 2,
            "run_id": run_id,
            "pipeline": PIPELINE,
            "version": VERSION,
            "key": key,
            "resume_at": ADVANCED if advanced else STANDARD,
            "outputs": {"quality_checker": checked},
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp,
            },
            "started_ms": record.timestamp,
            "carried": {FORMATTER: {str(FROM_STANDARD if advanced else FROM_ADVANCED): "skip"}},
        }
        return b"\n".join((orjson.dumps(header), orjson.dumps(trace), raw))

    def branch(self, record: ConsumedRecord) -> bytes:
        """The branch taken -> the envelope for the join, its tokens complete."""
        header, trace_json, event, input_json = _decode(record.value or b"")
        step_id = header["resume_at"]
        checked = header["outputs"]["quality_checker"]
        data = dict(event)
        data.update(orjson.loads(orjson.dumps({**checked, "data": checked.get("validated_data")})))
        outputs = dict(header["outputs"])
        trace: list[dict[str, Any]] = []
        _run(self.advanced if step_id == ADVANCED else self.standard, data, step_id, outputs, trace)
        _route_always(trace, FORMATTER)
        tokens = dict(header.pop("carried")[FORMATTER])
        tokens[str(FROM_ADVANCED if step_id == ADVANCED else FROM_STANDARD)] = "run"
        header.update(resume_at=FORMATTER, outputs=outputs, join_tokens=tokens)
        return b"\n".join((orjson.dumps(header), join_trace(trace_json, trace), input_json))

    def finish(self, record: ConsumedRecord) -> bytes:
        """The join -> the formatter -> the result record."""
        header, trace_json, event, input_json = _decode(record.value or b"")
        outputs = dict(header["outputs"])
        ran = outputs.get(ADVANCED) or outputs.get(STANDARD) or {}
        data = dict(event)
        data.update(orjson.loads(orjson.dumps({**ran, "processed_data": ran.get("result")})))
        trace: list[dict[str, Any]] = []
        formatted = _run(self.formatter, data, FORMATTER, outputs, trace)
        _route_always(trace, "end")
        processing_type = (outputs.get(ADVANCED) or {}).get("processing_type") or (outputs.get(STANDARD) or {}).get(
            "processing_type"
        )
        result = result_record(
            run_id=header["run_id"],
            pipeline=PIPELINE,
            pipeline_version=VERSION,
            status="success",
            outputs={
                "final_result": formatted.get("formatted_output"),
                "processing_metadata": {
                    "quality_score": outputs["quality_checker"].get("quality_score"),
                    "processing_type": processing_type,
                    "total_records": formatted.get("record_count"),
                },
            },
            error=None,
            trace=orjson.Fragment(join_trace(trace_json, trace)),
            input=orjson.Fragment(input_json),
            source=header["source"],
        )
        return orjson.dumps(result)


def _run(step: Step, data: dict[str, Any], step_id: str, outputs: dict[str, Any], trace: list[Any]) -> Any:
    """The step run as the kernel runs one that finishes without suspending; its output normalised."""
    started = time.time()
    clock = time.perf_counter()
    coroutine = step.run(data)
    try:
        coroutine.send(None)
    except StopIteration as finished:
        output = orjson.loads(orjson.dumps(finished.value))
    else:
        raise RuntimeError(f"{step_id} suspended: the bench steps never do")
    outputs[step_id] = output
    trace.append(
        {
            "step": step_id,
            "status": "ok",
            "attempts": 1,
            "started_at": _now_iso(started),
            "duration_ms": int((time.perf_counter() - clock) * 1_000_000) / 1000,
        }
    )
    return output


def _route_always(trace: list[dict[str, Any]], target: str) -> None:
    trace[-1]["routes"] = [{"to": target, "taken": True, "observed": None}]


def _decode(raw: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any], bytes]:
    head, _, rest = raw.partition(b"\n")
    trace_json, _, input_json = rest.partition(b"\n")
    return orjson.loads(head), trace_json, orjson.loads(input_json), input_json
