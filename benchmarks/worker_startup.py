"""Worker start-up: from launching ``ia-modules worker`` to ``/health`` answering 200 (consuming), and the same
for the hand-written Faust chain of ``benchmarks/faust_chain.py``.

    python -m benchmarks.worker_startup [--runs 5]

Modes, interleaved run by run so that machine noise hits all of them:

  embedded           IA_BROKER unset (the worker starts its own embedded Tansu broker), IA_DATABASE_URL=none:
                     the start-up target (consuming within 3 s)
  embedded+pg        IA_BROKER unset and IA_DATABASE_URL unset: the default, with the embedded PostgreSQL, whose
                     data directory was initialised by an untimed first start
  embedded-2p        as embedded, with two worker processes (IA_PROCESSES=2): until both consume
  external           IA_BROKER set to a broker that is already running (started here), IA_DATABASE_URL=none
  faust              the Faust chain (three agents) on that running broker, until its first agent has the one
                     event waiting on its input topic

Every worker runs the shipped pipelines (``pipelines/``) in a fresh working directory, as a user starts it.
Results are printed and written to ``benchmarks/results/worker_startup.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.throughput.chains import chain_launch
from benchmarks.throughput.events import BIN, ROOT, synthetic_events
from benchmarks.throughput.launch import clean_env, read_ready, stop_process, tail
from benchmarks.throughput.report import code_version
from benchmarks.throughput.topics import preload
from streams.embedded.broker import embedded_broker, free_port
from streams.kafka.admin import ensure_topics

PIPELINES = ROOT / "pipelines"
RESULTS = ROOT / "benchmarks" / "results" / "worker_startup.json"
TARGET_S = 3.0
TIMEOUT_S = 60.0
MODES = ("embedded", "embedded+pg", "embedded-2p", "external", "faust")


@dataclass
class Timings:
    mode: str
    seconds: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    """For the worker: when it printed "worker ready" (its worker.start() done, before the group formed)."""
    stop_seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.seconds:
            return {}
        return {"min": min(self.seconds), "median": statistics.median(self.seconds), "max": max(self.seconds)}


def _ready_in(log: Path) -> float | None:
    found = re.search(r"worker ready in ([0-9.]+)s", tail(log, 20_000))
    return float(found.group(1)) if found else None


async def time_worker(env: dict[str, str], cwd: Path, port: int, log: Path) -> tuple[float, float | None, float]:
    """Launch a worker; seconds until /health said 200, its own "ready" figure, and seconds to stop on SIGTERM."""
    with log.open("wb") as log_file:
        launched = time.monotonic()
        process = await asyncio.to_thread(
            subprocess.Popen, [str(BIN / "ia-modules"), "worker"], cwd=cwd, env=env, stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(timeout=0.5) as client:
                while True:
                    elapsed = time.monotonic() - launched
                    if process.poll() is not None:
                        raise RuntimeError(f"the worker exited with {process.returncode}:\n{tail(log)}")
                    if elapsed > TIMEOUT_S:
                        raise RuntimeError(f"no /health 200 after {TIMEOUT_S:g} s:\n{tail(log)}")
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"http://127.0.0.1:{port}/health")
                        if response.status_code == 200:
                            break
                    await asyncio.sleep(0.01)
        finally:
            stopping = time.monotonic()
            await asyncio.to_thread(stop_process, process)
            stopped = time.monotonic() - stopping
    return elapsed, _ready_in(log), stopped


def worker_env(port: int, broker: str | None, database: bool) -> dict[str, str]:
    env = clean_env(IA_PIPELINES_DIR=str(PIPELINES), IA_WEB_PORT=str(port), IA_LOG_LEVEL="WARNING")
    if broker is not None:
        env.update(IA_BROKER=f"kafka://{broker}", IA_APP_ID=f"s{uuid.uuid4().hex[:8]}",
                   IA_TOPIC_PREFIX=f"s{uuid.uuid4().hex[:8]}", IA_SESSION_TIMEOUT_MS="2000")  # fmt: skip
    if not database:
        env["IA_DATABASE_URL"] = "none"
    return env


async def time_faust(broker: str, work: Path) -> float:
    """Launch the Faust chain with one event on its input; seconds until its first agent had it."""
    tag = f"s{uuid.uuid4().hex[:8]}-faust"
    launch = chain_launch("faust", broker, tag, work, real=False)
    await ensure_topics(broker, launch.topics)
    await preload(broker, launch.input_topic, synthetic_events(1))
    log = work / "faust.log"
    assert launch.ready_file is not None
    with log.open("wb") as log_file:
        launched = time.time()
        process = await asyncio.to_thread(subprocess.Popen, launch.command, cwd=launch.cwd, env=launch.env,
                                          stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            while (t0 := read_ready(launch.ready_file)) is None:
                if process.poll() is not None:
                    raise RuntimeError(f"the Faust chain exited with {process.returncode}:\n{tail(log)}")
                if time.time() - launched > TIMEOUT_S:
                    raise RuntimeError(f"the Faust chain did not consume within {TIMEOUT_S:g} s:\n{tail(log)}")
                await asyncio.sleep(0.01)
        finally:
            await asyncio.to_thread(stop_process, process)
    return t0 - launched


def import_seconds() -> float:
    """How long the interpreter takes to start and import what a worker imports (best of three)."""
    code = "import streams.cli, streams.process.serve, streams.app, streams.worker, faust, aiokafka"
    best = float("inf")
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(), check=True)
        best = min(best, time.monotonic() - started)
    return best


def prepare_pg(directory: Path) -> float:
    """Start a worker once in ``directory`` so that its embedded PostgreSQL is initialised; seconds it took."""
    port = free_port()
    started = time.monotonic()
    asyncio.run(time_worker(worker_env(port, None, True), directory, port, directory / "first.log"))
    return time.monotonic() - started


async def run(runs: int, modes: list[str], pg_dir: Path) -> dict[str, Timings]:
    timings = {mode: Timings(mode) for mode in modes}
    with tempfile.TemporaryDirectory(prefix="bench-startup-broker-") as state:
        async with embedded_broker(Path(state)) as broker:
            for number in range(runs):
                for mode in modes:
                    with tempfile.TemporaryDirectory(prefix=f"bench-startup-{mode}-") as temp:
                        work = Path(temp)
                        port = free_port()
                        try:
                            if mode == "faust":
                                timings[mode].seconds.append(await time_faust(broker, work))
                                continue
                            if mode == "embedded+pg":
                                cwd, env = pg_dir, worker_env(port, None, True)
                            elif mode.startswith("embedded"):
                                cwd, env = work, worker_env(port, None, False)
                                if mode == "embedded-2p":
                                    env["IA_PROCESSES"] = "2"
                            else:
                                # the worker's Faust app creates only the last level of .ia/faust (reported)
                                (work / ".ia").mkdir()
                                cwd, env = work, worker_env(port, broker, False)
                            elapsed, ready, stopped = await time_worker(env, cwd, port, work / "worker.log")
                        except RuntimeError as exc:
                            timings[mode].notes.append(f"run {number + 1}: {exc}")
                            print(f"{mode} run {number + 1}: {exc}", file=sys.stderr)
                            continue
                        timings[mode].seconds.append(elapsed)
                        if ready is not None:
                            timings[mode].started.append(ready)
                        timings[mode].stop_seconds.append(stopped)
                done = [f"{m} {timings[m].seconds[-1]:.2f}s" for m in modes if len(timings[m].seconds) > number]
                print(f"run {number + 1}: " + ", ".join(done), file=sys.stderr)
    return timings


def main(arguments: argparse.Namespace) -> dict[str, Any]:
    modes = arguments.only.split(",") if arguments.only else list(MODES)
    started = datetime.datetime.now(datetime.UTC)
    code = code_version()  # at the start: others may commit while it runs
    imports = import_seconds()
    with tempfile.TemporaryDirectory(prefix="bench-startup-pg-") as pg:
        first_pg = prepare_pg(Path(pg)) if "embedded+pg" in modes else None
        timings = asyncio.run(run(arguments.runs, modes, Path(pg)))
    print(f"\nstart-up to consuming, {arguments.runs} runs each (interpreter + imports alone: {imports:.2f} s)")
    print(f"{'mode':<14} {'min':>6} {'median':>7} {'max':>6}  {'own ready*':>10} {'stop':>6}  target")
    for mode in modes:
        t = timings[mode]
        s = t.summary()
        if not s:
            print(f"{mode:<14} failed: {t.notes}")
            continue
        own = f"{statistics.median(t.started):.2f}" if t.started else "-"
        stop = f"{statistics.median(t.stop_seconds):.2f}" if t.stop_seconds else "-"
        target = "" if mode == "faust" else ("met" if s["median"] <= TARGET_S else "MISSED") + f" (<= {TARGET_S:g} s)"
        print(f"{mode:<14} {s['min']:>6.2f} {s['median']:>7.2f} {s['max']:>6.2f}  {own:>10} {stop:>6}  {target}")
    print("* the worker's own 'worker ready in' line: its start() done, before its consumer group formed")
    if first_pg is not None:
        print(f"first start with the embedded PostgreSQL (initdb included, not in the table): {first_pg:.2f} s")
    report = {
        "date": started.isoformat(timespec="seconds"),
        "code": code,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": arguments.runs,
        "target_s": TARGET_S,
        "imports_s": imports,
        "first_start_with_initdb_s": first_pg,
        "modes": {mode: {**timings[mode].summary(), "all": timings[mode].seconds, "own_ready": timings[mode].started,
                         "stop": timings[mode].stop_seconds, "notes": timings[mode].notes} for mode in modes},
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="comma-separated modes: " + ",".join(MODES))
    main(parser.parse_args())
