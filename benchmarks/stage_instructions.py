"""Instructions per event of the stage runner, counted by valgrind: a figure that does not move with the load.

    .venv/bin/python -m benchmarks.stage_instructions [--events 2000]

Wall-clock and even CPU time on this shared 2-core machine move by 10 to 15 % from one run to the next, which
hides the effect of most single changes. This runs ``stage_cpu``'s in-memory worker (the bench pipeline's three
hops, no broker) under ``valgrind --tool=cachegrind --cache-sim=no`` twice, with N events and with none (the
same start-up and warm-up), and prints the difference per event; two runs of the same code agree within 0.5 %.
It needs valgrind (``apt-get install valgrind``) and takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.stage_cpu import InMemoryWorker
from benchmarks.throughput.events import BENCH_PIPELINE, synthetic_events
from ia_modules.pipeline.core import Pipeline

WARM_UP = 500
ROOT = Path(__file__).resolve().parent.parent


async def run_events(count: int, made: int) -> None:
    """Make ``WARM_UP + made`` events (whatever ``count``, so that both runs do the same set-up), warm up on
    ``WARM_UP`` of them, then run ``count`` more in one batch per hop."""
    pipeline = await Pipeline.load(BENCH_PIPELINE)
    events = synthetic_events(WARM_UP + made)
    keyed = [(r.key, r.partition, r.value) for r in events]
    gc.collect()
    gc.freeze()
    worker = InMemoryWorker(pipeline)
    await worker.run(keyed[:WARM_UP], batch=WARM_UP)
    if count:
        await worker.run(keyed[WARM_UP : WARM_UP + count], batch=count)


def instructions(count: int, made: int) -> int:
    """Instructions valgrind counts for a process that runs ``count`` of ``made`` events (after the warm-up)."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, "-m", "benchmarks.stage_instructions", "--inner", str(count),
               "--events", str(made)]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", finished.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{finished.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--inner", type=int, default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.inner is not None:
        asyncio.run(run_events(arguments.inner, arguments.events))
        return
    if shutil.which("valgrind") is None:
        sys.exit("stage_instructions needs valgrind: apt-get install valgrind")
    events = arguments.events
    per_event = (instructions(events, events) - instructions(0, events)) / events
    print(f"{arguments.events:,} events: {per_event / 1000:,.1f} k instructions per event (stage runner, 3 hops)")


if __name__ == "__main__":
    main()
