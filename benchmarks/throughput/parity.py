"""Before measuring: the hand-written hops of the chains and the pipelines the worker runs give the same
outputs, so that the variants are compared on the same work."""

from __future__ import annotations

import inspect
from typing import Any

import orjson

from benchmarks.bench_steps import TRIVIAL_HOPS
from benchmarks.raw_chain import real_hops
from benchmarks.throughput.events import BENCH_PIPELINE, CUSTOM_PIPELINE, real_events, synthetic_events
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.runner import run_pipeline


async def _awaited(value: Any) -> Any:
    """The real hops are coroutine functions, typed as hops that may also be plain functions."""
    return await value if inspect.isawaitable(value) else value


async def check_parity() -> None:
    """The hand-written hops and the pipelines give the same outputs, or the comparison means nothing."""
    bench = await Pipeline.load(BENCH_PIPELINE)
    for record in synthetic_events(200)[::7]:
        event = orjson.loads(record.value)
        expected = TRIVIAL_HOPS[2](TRIVIAL_HOPS[1](TRIVIAL_HOPS[0](dict(event))))["outputs"]
        got = (await run_pipeline(bench, event)).outputs
        assert got == expected, f"bench pipeline and raw hops disagree on seq {event['seq']}: {got} != {expected}"
    custom = await Pipeline.load(CUSTOM_PIPELINE)
    start, branch, finish = await real_hops()
    for record in real_events(66):
        event = orjson.loads(record.value)
        expected = (await _awaited(finish(await _awaited(branch(await _awaited(start(dict(event))))))))["outputs"]
        got = (await run_pipeline(custom, event)).outputs
        assert got == expected, f"custom_processing and the real raw hops disagree on {event['event_id']}"
