"""Runner overhead: the shipped custom processing pipeline through ``run_pipeline`` against the same step
instances called by a hand-written coroutine, in the same process, on the same events.

    python -m benchmarks.runner_overhead [--rounds 5] [--repeat 20]

Rounds alternate between the two so that machine noise hits both; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ia_modules.pipeline.core import Pipeline, Step
from ia_modules.pipeline.runner import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "custom_processing.json"
EVENTS = ROOT / "pipelines" / "custom_processing.events.jsonl"


def hand_written(pipeline: Pipeline) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The pipeline as a person would code it by hand: the same step objects, the same data, no framework."""
    steps: dict[str, Step] = {sid: plan.create() for sid, plan in pipeline.plan.steps.items()}
    threshold = pipeline.plan.parameters["quality_threshold"]
    loader, cleaner, checker = steps["data_loader"], steps["data_cleaner"], steps["quality_checker"]
    advanced, standard, formatter = steps["advanced_processor"], steps["standard_processor"], steps["output_formatter"]

    async def run(event: dict[str, Any]) -> dict[str, Any]:
        loaded = await loader.run(dict(event))
        cleaned = await cleaner.run({**event, **loaded, "raw_data": loaded.get("loaded_data")})
        quality = await checker.run({**event, **cleaned, "cleaned_data": cleaned.get("cleaned_data")})
        branch = advanced if quality["quality_score"] > threshold else standard
        processed = await branch.run({**event, **quality, "data": quality.get("validated_data")})
        formatted = await formatter.run({**event, **processed, "processed_data": processed.get("result")})
        return {
            "final_result": formatted.get("formatted_output"),
            "processing_metadata": {
                "quality_score": quality.get("quality_score"),
                "processing_type": processed.get("processing_type"),
                "total_records": formatted.get("record_count"),
            },
        }

    return run


async def timed(label: str, run: Callable[[dict[str, Any]], Awaitable[Any]], events: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for event in events:
        await run(event)
    return len(events) / (time.perf_counter() - started)


async def main(rounds: int, repeat: int) -> dict[str, float]:
    pipeline = await Pipeline.load(PIPELINE)
    events = [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    manual = hand_written(pipeline)

    async def through_runner(event: dict[str, Any]) -> Any:
        return (await run_pipeline(pipeline, event)).outputs

    for event in events:  # same results, or the comparison means nothing
        expected, got = await manual(event), await through_runner(event)
        assert got == expected, f"runner and hand-written code disagree on {event}: {got} != {expected}"
    workload = events * repeat
    best = {"hand_written": 0.0, "runner": 0.0}
    for _ in range(rounds):
        best["hand_written"] = max(best["hand_written"], await timed("hand", manual, workload))
        best["runner"] = max(best["runner"], await timed("runner", through_runner, workload))
    ratio = best["runner"] / best["hand_written"]
    overhead_us = (1 / best["runner"] - 1 / best["hand_written"]) * 1e6
    print(f"events per round: {len(workload)} ({len(events)} sample events x {repeat}), best of {rounds} rounds")
    print(f"hand-written coroutine : {best['hand_written']:>9,.0f} runs/s")
    print(f"run_pipeline           : {best['runner']:>9,.0f} runs/s")
    print(f"ratio runner/hand      : {ratio:.3f}  (target >= 0.5)")
    print(f"runner overhead        : {overhead_us:.1f} us per run ({len(pipeline.plan.steps)} steps, 5 run per event)")
    return {**best, "ratio": ratio, "overhead_us_per_run": overhead_us}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.repeat))
