"""Instructions per event of the stage runner, counted by valgrind: a figure that does not move with the load.

    .venv/bin/python -m benchmarks.stage_instructions [--events 2000]
    .venv/bin/python -m benchmarks.stage_instructions --compare-metrics [--rounds 1]

Wall-clock and even CPU time on this shared 2-core machine move by 10 to 15 % from one run to the next, which
hides the effect of most single changes. This runs ``stage_cpu``'s in-memory worker (the bench pipeline's three
hops, no broker) under ``valgrind --tool=cachegrind --cache-sim=no`` twice, with N events and with none (the
same start-up and warm-up), and prints the difference per event; two runs of the same code agree within 0.5 %.
It needs valgrind (``apt-get install valgrind``) and takes about a minute.

``--compare-metrics`` measures the in-memory worker twice more, each batch made durable by a ``Committer`` as
the worker does it (``stage_cpu.InMemoryWorker(commit=True)``): with metrics off (``IA_METRICS=0``: no series)
and on (a ``WorkerMetrics``: the stage runner's step, route and join series, the committer's run counts and
latency histograms, the batch series), and prints both and the difference in % (target: under 3 %); each
round measures off and on back to back, ``--rounds`` times. ``--callgrind DIR`` writes a callgrind profile of
the N-event run of each variant there instead (for ``callgrind_annotate``; slower, no figures).
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
from streams.metrics.catalog import WorkerMetrics

WARM_UP = 500
ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("runner", "metrics-off", "metrics-on")
"""``runner``: the stage runner alone (the history's figure); ``metrics-off``/``metrics-on``: the batches also
committed, without and with the worker's metrics."""


async def run_events(count: int, made: int, variant: str = "runner") -> None:
    """Make ``WARM_UP + made`` events (whatever ``count``, so that both runs do the same set-up), warm up on
    ``WARM_UP`` of them, then run ``count`` more in one batch per hop."""
    pipeline = await Pipeline.load(BENCH_PIPELINE)
    events = synthetic_events(WARM_UP + made)
    keyed = [(r.key, r.partition, r.value) for r in events]
    gc.collect()
    gc.freeze()
    metrics = WorkerMetrics() if variant == "metrics-on" else None
    worker = InMemoryWorker(pipeline, metrics, commit=variant != "runner")
    await worker.run(keyed[:WARM_UP], batch=WARM_UP)
    if count:
        await worker.run(keyed[WARM_UP : WARM_UP + count], batch=count)
    if metrics is not None:  # the series were updated: every run counted, every step observed
        runs = sum(metrics.runs.child(pipeline.plan.id, status).value for status in ("success", "failed"))
        assert runs == WARM_UP + count, f"{runs} runs counted for {WARM_UP + count}"


def instructions(count: int, made: int, variant: str = "runner", callgrind: Path | None = None) -> int:
    """Instructions valgrind counts for a process that runs ``count`` of ``made`` events (after the warm-up);
    with ``callgrind``, the run's callgrind profile is written into that directory too."""
    tool = ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    if callgrind is not None:
        tool = ["--tool=callgrind", f"--callgrind-out-file={callgrind / f'callgrind.{variant}.{count}'}"]
    command = ["valgrind", *tool, sys.executable, "-m", "benchmarks.stage_instructions", "--inner", str(count),
               "--events", str(made), "--variant", variant]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.search(r"(?:I\s+refs|Collected)\s*:\s+([\d,]+)", finished.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{finished.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_event(events: int, variant: str) -> float:
    """Instructions per event of ``variant``: its N-event run minus its run of none."""
    return (instructions(events, events, variant) - instructions(0, events, variant)) / events


def compare_metrics(events: int, rounds: int) -> None:
    """Metrics off and on, back to back, ``rounds`` times; the difference in % per round."""
    print(f"{events:,} events, instructions per event (stage runner, 3 hops, batches committed):")
    differences = []
    for round_number in range(1, rounds + 1):
        off = per_event(events, "metrics-off")
        on = per_event(events, "metrics-on")
        differences.append((on - off) / off * 100)
        print(f"  round {round_number}: metrics off {off / 1000:,.1f} k, on {on / 1000:,.1f} k: "
              f"{differences[-1]:+.2f} % (target under 3 %)", flush=True)  # fmt: skip
    if rounds > 1:
        print(f"  difference: {min(differences):+.2f} % to {max(differences):+.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--compare-metrics", action="store_true", help="metrics off against on, in %%")
    parser.add_argument("--rounds", type=int, default=1, help="with --compare-metrics: off and on this many times")
    parser.add_argument("--callgrind", type=Path, metavar="DIR", help="callgrind profiles of off and on into DIR")
    parser.add_argument("--inner", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="runner", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.inner is not None:
        asyncio.run(run_events(arguments.inner, arguments.events, arguments.variant))
        return
    if shutil.which("valgrind") is None:
        sys.exit("stage_instructions needs valgrind: apt-get install valgrind")
    events = arguments.events
    if arguments.callgrind is not None:
        arguments.callgrind.mkdir(parents=True, exist_ok=True)
        for variant in ("metrics-off", "metrics-on"):
            instructions(events, events, variant, arguments.callgrind.resolve())
        print(f"callgrind profiles of {events:,} events, metrics off and on, in {arguments.callgrind}:")
        print(f"  callgrind_annotate --inclusive=yes {arguments.callgrind}/callgrind.metrics-on.{events}")
    elif arguments.compare_metrics:
        compare_metrics(events, arguments.rounds)
    else:
        figure = per_event(events, "runner")
        print(f"{events:,} events: {figure / 1000:,.1f} k instructions per event (stage runner, 3 hops)")


if __name__ == "__main__":
    main()
