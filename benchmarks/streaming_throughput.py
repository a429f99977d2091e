"""Streaming throughput: a raw aiokafka chain, a Faust chain and the worker, in one run on one embedded broker.

    python -m benchmarks.streaming_throughput [--events 200000] [--real-events 50000] [--quick] [--rounds 1]
                                              [--only raw,faust,worker,worker-db,floor,real-raw,real-faust,real-worker]
                                              [--profile-worker DIR]

One embedded Tansu broker (started here, in a temporary state directory), 4 partitions on every topic. Every
variant consumes three topics and produces a fourth, as the shipped custom processing pipeline does when fused
(input -> branch stage topic -> formatter stage topic -> output):

  raw          a. three hand-written aiokafka loops (``benchmarks/raw_chain.py``), trivial transform
  faust        b. three Faust agents chained by topics (``benchmarks/faust_chain.py``), the same transform
  worker       c. ``ia-modules worker`` on ``benchmarks/pipelines/bench_processing.json``: the custom processing
                  graph with trivial steps doing the same transform (``benchmarks/bench_steps.py``); with
                  ``IA_DATABASE_URL=none``, so that it does what the chains do: topics only
  worker-db    c. the same with the worker's default results sink: ``pipeline_runs`` rows in the embedded
                  PostgreSQL (IA_DATABASE_URL unset), committed before the offsets
  floor        e. the raw chain doing the worker's own work for the bench pipeline, written by hand for it
                  (``benchmarks/specialised_hops.py``: the same envelopes, trace and result records, nothing
                  generic): the most one process that keeps the pipeline semantics could do
  raw-uvloop, faust-uvloop
               g. the raw chain and the Faust chain (``faust -L uvloop``) on uvloop, as the worker runs by default
  worker-asyncio
               g. the worker on asyncio's own loop (``IA_EVENT_LOOP=asyncio``), as the chains run by default
  real-raw     d. the raw chain running the shipped pipeline's real steps by hand at each hop
  real-faust   d. the Faust chain running the same real steps at each hop
  real-worker  d. ``ia-modules worker`` on the shipped ``pipelines/custom_processing.json`` (no database)

Each variant runs in a process of its own (this process only loads, reads and measures). Its input topic is
loaded with all events before it starts; the clock runs from the moment it first receives input records (the
ready file of the chains, the worker's ``/health`` answering 200) until the last of the N results is on its
output topic, read here by a separate consumer. Afterwards the output is read again and checked: every event's
``seq`` must be there. "steady" is the rate between the arrival of 10 % and of 90 % of the results, which no
start-up effect touches. Results are printed and written to ``benchmarks/results/streaming_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.throughput.events import PARTITIONS, ROOT, VARIANTS, real_events, synthetic_events
from benchmarks.throughput.parity import check_parity
from benchmarks.throughput.report import (
    RESULTS,
    code_version,
    print_profiles,
    print_ratios,
    print_table,
    ratios,
    write_results,
)
from benchmarks.throughput.run import Result, run_variant
from benchmarks.throughput.worker import WORKER_ENV
from streams.embedded.broker import embedded_broker, read_broker_record


async def main(arguments: argparse.Namespace) -> dict[str, Any]:
    WORKER_ENV.update(setting.split("=", 1) for setting in arguments.worker_env)
    events = 20_000 if arguments.quick and arguments.events is None else arguments.events or 200_000
    real_count = arguments.real_events or (5_000 if arguments.quick else 50_000)
    variants = arguments.only.split(",") if arguments.only else list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    profile_dir: Path | None = arguments.profile_worker
    await check_parity()
    synthetic = synthetic_events(events) if any(not v.startswith("real-") for v in variants) else []
    real = real_events(real_count) if any(v.startswith("real-") for v in variants) else []
    sizes = [len(r.value) for r in (synthetic or real)[:1000]]
    print(f"{events:,} events (real pipeline: {real_count:,}), mean {sum(sizes) / len(sizes):.0f} bytes, "
          f"{PARTITIONS} partitions, {arguments.rounds} round(s); load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    results: list[Result] = []
    started = datetime.datetime.now(datetime.UTC)
    code = code_version()  # at the start: others may commit while it runs
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as state:
        async with embedded_broker(Path(state)) as broker:
            record = read_broker_record(Path(state))
            broker_pid = record.pid if record else None
            for round_number in range(arguments.rounds):
                for variant in variants:
                    records = real if variant.startswith("real-") else synthetic
                    print(f"round {round_number + 1}: {VARIANTS[variant]} ...", file=sys.stderr, flush=True)
                    result = await run_variant(variant, broker, broker_pid, records, profile_dir)
                    print(f"  {result.events_per_s:,.0f} events/s in {result.seconds:.2f} s "
                          f"({'ok' if result.ok else result.error})", file=sys.stderr, flush=True)  # fmt: skip
                    results.append(result)
    print()
    print_table(results)
    found = ratios(results)
    print("\nratios (best round of each):")
    print_ratios(found)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "code": code,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_end": os.getloadavg(),
        },
        "events": events,
        "real_events": real_count,
        "partitions": PARTITIONS,
        "rounds": arguments.rounds,
        "results": [{**asdict(r), "ok": r.ok} for r in results],
        "ratios": found,
    }
    await asyncio.to_thread(write_results, report)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    if profile_dir is not None:
        print_profiles(profile_dir)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events for variants a-c (default 200,000; --quick 20,000)")
    parser.add_argument("--real-events", type=int, help="events for the real pipeline (default 50,000; quick 5,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 events (5,000 real), to try it out")
    parser.add_argument("--rounds", type=int, default=1, help="run every variant this many times, interleaved")
    parser.add_argument("--only", help="comma-separated variants: " + ",".join(VARIANTS))
    parser.add_argument("--profile-worker", metavar="DIR", help="run the workers under cProfile, stats into DIR")
    parser.add_argument("--worker-env", action="append", default=[], metavar="IA_X=V",
                        help="a worker setting (repeatable), e.g. IA_BATCH_MAX_RECORDS=500")  # fmt: skip
    parsed = parser.parse_args()
    if parsed.profile_worker:
        parsed.profile_worker = Path(parsed.profile_worker).resolve()
        parsed.profile_worker.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(parsed))
