"""Trivial steps for the streaming benchmark, and the same work as plain functions for the hand-written chains.

``benchmarks/pipelines/bench_processing.json`` has exactly the graph of the shipped custom processing pipeline
(step ids, inputs, conditions, the join at ``output_formatter``, ``outputs``, ``stream``) but its steps are
these: each does a few dictionary operations, so what a benchmark measures is the framework, not the steps.
The raw aiokafka and Faust chains call the functions below directly, one hop per consumed topic:

- hop 1 (input topic): ``loaded`` + ``cleaned`` + ``quality``, as the fused start stage runs loader, cleaner,
  checker;
- hop 2 (branch topic): ``processed`` as advanced (score above 0.8) or standard;
- hop 3 (formatter topic): ``formatted``, and the result goes to the output topic.

The quality score is ``(seq % 100) / 100``, so 19 % of the events take the advanced branch.
"""

from __future__ import annotations

from typing import Any

from ia_modules.pipeline.core import Step

THRESHOLD = 0.8


# -- the work itself ---------------------------------------------------------------------------------------------


def loaded(event: dict[str, Any]) -> dict[str, Any]:
    text = event.get("text") or ""
    return {"source_field": "text", "characters": len(text)}


def cleaned(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "cleaned": True}


def quality(event: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    score = (int(event.get("seq", 0)) % 100) / 100
    return {"quality_score": score, "validated_data": {**clean, "quality_score": score}}


def processed(kind: str, validated: dict[str, Any]) -> dict[str, Any]:
    return {"result": {**validated, "kind": kind}, "processing_type": kind}


def formatted(result: dict[str, Any]) -> dict[str, Any]:
    return {"formatted_output": result, "record_count": 1}


# -- the hops of the hand-written chains (message in, message out) -------------------------------------------------


def hop_start(event: dict[str, Any]) -> dict[str, Any]:
    """Input event to the message for the branch topic: the event with the quality check added."""
    event["quality"] = quality(event, cleaned(loaded(event)))
    return event


def hop_branch(message: dict[str, Any]) -> dict[str, Any]:
    checked = message["quality"]
    kind = "advanced" if checked["quality_score"] > THRESHOLD else "standard"
    message["processed"] = processed(kind, checked["validated_data"])
    return message


def hop_format(message: dict[str, Any]) -> dict[str, Any]:
    """The last hop: a result record with the outputs the pipeline's ``outputs`` section would give."""
    checked, done = message.pop("quality"), message.pop("processed")
    output = formatted(done["result"])
    return {
        "seq": message.get("seq"),
        "status": "success",
        "outputs": {
            "final_result": output["formatted_output"],
            "processing_metadata": {
                "quality_score": checked["quality_score"],
                "processing_type": done["processing_type"],
                "total_records": output["record_count"],
            },
        },
        "input": message,
    }


TRIVIAL_HOPS = (hop_start, hop_branch, hop_format)


# -- the same work as pipeline steps ---------------------------------------------------------------------------------


class BenchLoaderStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"loaded_data": loaded(data)}


class BenchCleanerStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"cleaned_data": cleaned(data["raw_data"])}


class BenchQualityStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return quality(data, data["cleaned_data"])


class BenchAdvancedStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return processed("advanced", data["data"])


class BenchStandardStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return processed("standard", data["data"])


class BenchFormatterStep(Step):
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        return formatted(data["processed_data"])
