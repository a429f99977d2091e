"""Unit tests of steps/batch.py: BatchProcessingStep and ParallelProcessingStep.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from typing import Any

import pytest

from steps.batch import BatchProcessingStep, ParallelProcessingStep


def sha256_of(item: Any) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def test_batch_processing_fingerprints_and_flags_duplicates() -> None:
    items = [{"id": 1}, {"id": 2}, {"id": 1}, "x", "x"]
    result = await BatchProcessingStep("batch", {"batch_size": 2}).work({"items": items})
    assert result["status"] == "success"
    assert result["total_processed"] == 5
    assert [item["duplicate_of"] for item in result["processed_items"]] == [None, None, 0, None, 3]
    assert result["duplicates"] == 2
    assert result["processed_items"][0]["fingerprint"] == sha256_of({"id": 1})[:16]
    assert [item["index"] for item in result["processed_items"]] == [0, 1, 2, 3, 4]


async def test_batch_processing_skips_invalid_batches() -> None:
    step = BatchProcessingStep("batch", {"batch_size": 2, "required_fields": ["id"]})
    result = await step.work({"items": [{"id": 1}, {"id": 2}, {"name": "no id"}, {"id": 4}, {"id": 5}]})
    assert result["status"] == "partial_success"
    assert [item["processed"]["id"] for item in result["processed_items"]] == [1, 2, 5]
    assert result["errors"] == [{"batch_start": 2, "batch_size": 2, "error": "item 2 lacks required field(s) id"}]


async def test_batch_processing_requires_a_list() -> None:
    with pytest.raises(ValueError, match="'items' must be a list, got nothing"):
        await BatchProcessingStep("batch").work({})
    assert (await BatchProcessingStep("batch").work({"items": []}))["total_processed"] == 0


async def test_parallel_processing_hashes_items_in_order() -> None:
    items = [{"n": n} for n in range(7)]
    result = await ParallelProcessingStep("par", {"batch_size": 3, "max_workers": 2}).work({"items": items})
    assert result["batch_count"] == 3
    assert result["total_items"] == 7
    assert [entry["item"] for entry in result["processed_items"]] == items
    assert result["processed_items"][4]["sha256"] == sha256_of({"n": 4})
    assert result["processed_items"][4]["size_bytes"] == len('{"n":4}')


async def test_parallel_processing_bounds_threads_and_keeps_the_loop_free() -> None:
    lock = threading.Lock()
    active = peak = 0

    class Observed(ParallelProcessingStep):
        @staticmethod
        def _process_batch(batch: list[Any]) -> list[dict[str, Any]]:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1
            return ParallelProcessingStep._process_batch(batch)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    background = asyncio.create_task(ticker())
    try:
        result = await Observed("par", {"batch_size": 1, "max_workers": 3}).work({"items": list(range(9))})
    finally:
        background.cancel()
    assert result["total_items"] == 9
    assert 1 < peak <= 3
    assert ticks > 5  # the event loop kept running while the threads worked


async def test_parallel_processing_requires_items() -> None:
    with pytest.raises(ValueError, match="must contain a non-empty 'items' list"):
        await ParallelProcessingStep("par").work({"records": [1]})
    with pytest.raises(ValueError, match="must contain a non-empty 'items' list"):
        await ParallelProcessingStep("par").work({"items": []})
    with pytest.raises(ValueError, match="'max_workers' must be >= 1"):
        ParallelProcessingStep("par", {"max_workers": 0})
