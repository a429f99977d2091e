"""Steps over lists of items: the guide's BatchProcessingStep and ParallelProcessingStep.

Both canonicalise each item (JSON with sorted keys) and fingerprint it with sha256, the groundwork of
de-duplication and change detection; the parallel one runs its batches in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import canonical_json, config_int


def _digest(item: Any) -> tuple[str, int]:
    encoded = canonical_json(item).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest(), len(encoded)


class BatchProcessingStep(Step):
    """Process ``items`` in batches of config ``batch_size`` (default 100): check each dict item has config
    ``required_fields``, fingerprint it and flag repeats of an earlier item. A batch holding an invalid item is
    reported in ``errors`` and skipped, and the status becomes ``partial_success``, as in the guide.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.batch_size = config_int(name, "batch_size", self.config.get("batch_size", 100), minimum=1)
        required = self.config.get("required_fields", [])
        if not isinstance(required, list) or not all(isinstance(field, str) for field in required):
            raise ValueError(f"step '{name}': config 'required_fields' must be a list of names, got {required!r}")
        self.required_fields: list[str] = required

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        items = data.get("items")
        if not isinstance(items, list):
            raise ValueError(
                f"step '{self.name}': input 'items' must be a list, got "
                f"{'nothing' if items is None else type(items).__name__}"
            )
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            try:
                results.extend(self._process_batch(batch, start, seen))
            except ValueError as exc:
                errors.append({"batch_start": start, "batch_size": len(batch), "error": str(exc)})
        return {
            "processed_items": results,
            "total_processed": len(results),
            "duplicates": sum(1 for result in results if result["duplicate_of"] is not None),
            "errors": errors,
            "status": "success" if not errors else "partial_success",
        }

    def _process_batch(self, batch: list[Any], start: int, seen: dict[str, int]) -> list[dict[str, Any]]:
        """Fingerprint one batch; ValueError (and nothing recorded) if an item lacks a required field."""
        for offset, item in enumerate(batch):
            if self.required_fields:
                if not isinstance(item, Mapping):
                    raise ValueError(f"item {start + offset} is {type(item).__name__}, expected an object")
                missing = [field for field in self.required_fields if field not in item]
                if missing:
                    raise ValueError(f"item {start + offset} lacks required field(s) {', '.join(missing)}")
        processed = []
        for offset, item in enumerate(batch):
            digest, _ = _digest(item)
            processed.append(
                {
                    "index": start + offset,
                    "processed": item,
                    "fingerprint": digest[:16],
                    "duplicate_of": seen.get(digest),
                }
            )
            seen.setdefault(digest, start + offset)
        return processed


class ParallelProcessingStep(Step):
    """Split ``items`` into batches of config ``batch_size`` (default 100) and process them in worker threads,
    at most config ``max_workers`` (default 4) at a time, as the guide's contributed example.

    Each item gets its sha256 digest and canonical size. Threads come from the event loop's default executor
    (``asyncio.to_thread``) bounded by a semaphore, so no executor is created or torn down per call and the
    event loop never blocks. Raises ValueError when ``items`` is missing or empty.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.batch_size = config_int(name, "batch_size", self.config.get("batch_size", 100), minimum=1)
        self.max_workers = config_int(name, "max_workers", self.config.get("max_workers", 4), minimum=1)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        items = data.get("items")
        if not items or not isinstance(items, list):
            raise ValueError(f"step '{self.name}': input data must contain a non-empty 'items' list")
        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        semaphore = asyncio.Semaphore(self.max_workers)

        async def process(batch: list[Any]) -> list[dict[str, Any]]:
            async with semaphore:
                return await asyncio.to_thread(self._process_batch, batch)

        batch_results = await asyncio.gather(*(process(batch) for batch in batches))
        all_results = [result for batch_result in batch_results for result in batch_result]
        return {
            "processed_items": all_results,
            "total_items": len(items),
            "batch_count": len(batches),
            "batch_size": self.batch_size,
            "status": "success",
        }

    @staticmethod
    def _process_batch(batch: list[Any]) -> list[dict[str, Any]]:
        """Process one batch (runs in a worker thread)."""
        results = []
        for item in batch:
            digest, size = _digest(item)
            results.append({"item": item, "processed": True, "sha256": digest, "size_bytes": size})
        return results
