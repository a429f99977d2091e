"""One variant measured: topics made and preloaded, its processes started, the clock from its first input
to its last result, CPU and memory from /proc, the output checked, all into a ``Result``."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.procfs import cpu_seconds, peak_rss_mb, process_trees, total_cpu_seconds
from benchmarks.throughput.chains import chain_launch
from benchmarks.throughput.events import BENCH_PIPELINE, CUSTOM_PIPELINE, VARIANTS, Record
from benchmarks.throughput.launch import Launch, stop_process, tail, wait_ready
from benchmarks.throughput.topics import OutputReader, delete_topics, preload, read_all
from benchmarks.throughput.worker import worker_launch
from streams.kafka.admin import ensure_topics

STALL_S = 90.0
"""A variant that delivers no new result for this long is given up (and reported as failed)."""


@dataclass
class Result:
    variant: str
    label: str
    events: int
    seconds: float = 0.0
    events_per_s: float = 0.0
    steady_events_per_s: float = 0.0
    startup_s: float = 0.0
    process_cores: float | None = None
    process_peak_mb: float | None = None
    broker_cores: float | None = None
    output_records: int = 0
    distinct: int = 0
    duplicates: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    preload_events_per_s: float = 0.0
    consumed_when_ready: int | None = None
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the start, results so far), about 40 points: where the time went."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.distinct == self.events


async def run_variant(
    variant: str,
    broker: str,
    broker_pid: int | None,
    records: list[Record],
    profile_dir: Path | None,
    *,
    worker_env: Mapping[str, str] | None = None,
    alongside: Callable[[Launch], Awaitable[None]] | None = None,
) -> Result:
    """Measure ``variant`` on ``records``. ``worker_env``: settings for a worker variant's processes (after
    ``--worker-env``'s); ``alongside``: a task run while the clock runs (from the first input to the last
    result), then cancelled, e.g. scraping the worker's ``/metrics``."""
    result = Result(variant, VARIANTS[variant], len(records))
    tag = f"b{uuid.uuid4().hex[:8]}-{variant}"
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as temp:
        work = Path(temp)
        real = variant.startswith("real-")
        copies = 2 if variant.endswith("-2p") else 1
        if "worker" in variant:
            profile = profile_dir / f"{variant}.prof" if profile_dir is not None else None
            pipeline = CUSTOM_PIPELINE if real else BENCH_PIPELINE
            event_loop = "asyncio" if variant.endswith("-asyncio") else "auto"
            launch = worker_launch(
                broker, tag, work, pipeline, profile, variant == "worker-db", copies, event_loop, worker_env
            )
        else:
            kind = variant.removeprefix("real-").removesuffix("-2p").removesuffix("-uvloop")
            launch = chain_launch(kind, broker, tag, work, real, copies, variant.endswith("-uvloop"))
        await ensure_topics(broker, launch.topics)
        result.preload_events_per_s = await preload(broker, launch.input_topic, records)
        reader = OutputReader(broker, launch.output_topic, len(records))
        reading = asyncio.create_task(reader.run())
        log = work / "process.log"
        with log.open("wb") as log_file:
            launched = time.time()
            processes = []
            beside: asyncio.Task[None] | None = None
            for copy in range(launch.copies):
                env = dict(launch.env)
                if "BENCH_FAUST_DATADIR" in env:  # a Faust worker's data directory is its own
                    env["BENCH_FAUST_DATADIR"] += f"-{copy}"
                processes.append(await asyncio.to_thread(subprocess.Popen, launch.command, cwd=launch.cwd, env=env,
                                                         stdout=log_file, stderr=subprocess.STDOUT))  # fmt: skip
            try:
                t0, result.consumed_when_ready = await wait_ready(launch, processes, log)
                result.startup_s = t0 - launched
                if alongside is not None:
                    beside = asyncio.ensure_future(alongside(launch))
                measured = process_trees([process.pid for process in processes])
                cpu_process, cpu_broker = total_cpu_seconds(measured), cpu_seconds(broker_pid)
                while not reader.done.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.done.wait(), 1.0)
                    if any(p.poll() is not None for p in processes) and not reader.done.is_set():
                        codes = [process.returncode for process in processes]
                        raise RuntimeError(f"exited with {codes} after {reader.count} results")
                    if time.time() - max(reader.last_arrival, t0) > STALL_S:
                        raise RuntimeError(f"stalled: {reader.count} of {len(records)} results")
                t_end = reader.time_at(len(records))
                cpu_after = total_cpu_seconds(measured), cpu_seconds(broker_pid)
                result.process_peak_mb = peak_rss_mb(measured)
                result.seconds = t_end - t0
                result.events_per_s = len(records) / result.seconds
                low, high = reader.time_at(len(records) // 10), reader.time_at(len(records) * 9 // 10)
                result.steady_events_per_s = (len(records) * 9 // 10 - len(records) // 10) / max(high - low, 1e-9)
                step = max(1, len(reader.arrivals) // 40)
                points = reader.arrivals[::step] + reader.arrivals[-1:]
                result.timeline = [(round(at - t0, 3), seen) for at, seen in points]
                if cpu_process is not None and cpu_after[0] is not None:
                    result.process_cores = (cpu_after[0] - cpu_process) / (time.time() - t0)
                if cpu_broker is not None and cpu_after[1] is not None:
                    result.broker_cores = (cpu_after[1] - cpu_broker) / (time.time() - t0)
            except RuntimeError as exc:
                result.error = str(exc)
                print(f"  {variant}: {exc}\n  log tail:\n{tail(log, 2000)}", file=sys.stderr)
            finally:
                for task in (reading, beside):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                for process in processes:
                    await asyncio.to_thread(stop_process, process)
        values = await read_all(broker, launch.output_topic)
        seqs = [launch.seq_of(value) for value in values]
        result.output_records = len(values)
        result.distinct = len(set(seqs) - {None})
        result.duplicates = len(seqs) - len(set(seqs))
        for value in values:
            status = str(value.get("status"))
            result.statuses[status] = result.statuses.get(status, 0) + 1
        if result.error is None and result.distinct != len(records):
            result.error = f"{result.distinct} distinct results of {len(records)}"
        await delete_topics(broker, [spec.name for spec in launch.topics])
    return result
