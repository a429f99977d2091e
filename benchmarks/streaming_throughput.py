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
import contextlib
import datetime
import inspect
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.bench_steps import TRIVIAL_HOPS
from benchmarks.raw_chain import real_hops
from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.loader import load_plan
from ia_modules.pipeline.runner import run_pipeline
from streams.embedded.broker import embedded_broker, free_port, read_broker_record
from streams.envelope import partition_for
from streams.kafka.admin import TopicSpec, ensure_topics, topic_specs
from streams.kafka.producer import Emission, produce
from streams.topology import build_topology

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH_PIPELINE = ROOT / "benchmarks" / "pipelines" / "bench_processing.json"
CUSTOM_PIPELINE = ROOT / "pipelines" / "custom_processing.json"
CUSTOM_EVENTS = ROOT / "pipelines" / "custom_processing.events.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "streaming_throughput.json"
PARTITIONS = 4
EVENT_BYTES = 1000
STALL_S = 90.0
"""A variant that delivers no new result for this long is given up (and reported as failed)."""

VARIANTS: dict[str, str] = {
    "raw": "a. raw aiokafka chain",
    "faust": "b. Faust chain (3 agents)",
    "worker": "c. worker, bench pipeline",
    "worker-db": "c. worker + pipeline_runs sink",
    "floor": "e. raw chain, runner by hand",
    "raw-2p": "f. raw chain, 2 processes",
    "faust-2p": "f. Faust chain, 2 processes",
    "worker-2p": "f. worker --processes 2",
    "raw-uvloop": "g. raw chain on uvloop",
    "faust-uvloop": "g. Faust chain on uvloop",
    "worker-asyncio": "g. worker on asyncio's loop",
    "real-raw": "d. raw chain, real steps",
    "real-faust": "d. Faust chain, real steps",
    "real-worker": "d. worker, custom_processing",
}

# -- events ------------------------------------------------------------------------------------------------------

_WORDS = (
    "the parcel arrived two days late but the support team answered within an hour and sent a replacement "
    "which fits well the colour matches the photos and the fabric feels sturdy enough for daily use I would "
    "order again although the tracking page never updated and the box was slightly crushed at one corner"
).split()


def _text(variant: int, length: int) -> str:
    words = _WORDS[variant % len(_WORDS) :] + _WORDS[: variant % len(_WORDS)]
    text = ""
    while len(text) < length:
        text += " ".join(words) + ". "
    return text[:length].rstrip() + "."


_TEXTS = [_text(i, 820) for i in range(97)]
_CHANNELS = ("app", "chat", "email", "web")


@dataclass(frozen=True)
class Record:
    key: bytes
    partition: int
    value: bytes


def keyed(event: dict[str, Any]) -> Record:
    """The record a publisher sends for ``event``: keyed by ``customer_id`` (the pipelines' ``stream.key``), on
    the partition the worker maps that key to, so the worker never forwards it."""
    key = str(event["customer_id"]).encode()
    return Record(key, partition_for(key, PARTITIONS), orjson.dumps(event))


def synthetic_events(count: int) -> list[Record]:
    """``count`` feedback-like events of about 1 KB, each with a unique ``seq``; 20,000 distinct keys."""
    records = []
    for seq in range(count):
        event = {
            "event_id": f"ev-{seq:08d}",
            "seq": seq,
            "customer_id": f"cust-{(seq * 7919) % 20_000:05d}",
            "channel": _CHANNELS[seq % len(_CHANNELS)],
            "locale": "en-GB",
            "submitted_at": "2024-06-02T09:07:00Z",
            "text": _TEXTS[seq % len(_TEXTS)],
        }
        records.append(keyed(event))
    return records


def sample_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CUSTOM_EVENTS.read_text().splitlines() if line.strip()]


def real_events(count: int) -> list[Record]:
    """The shipped sample events cycled to ``count``: each gets a unique ``seq`` and ``event_id``, its
    ``customer_id`` a cycle suffix (66 samples would give too few keys to spread over 4 partitions), and a
    ``padding`` field (ignored by the steps) up to about 1 KB."""
    samples = sample_events()
    records = []
    for seq in range(count):
        cycle, sample = divmod(seq, len(samples))
        event = {
            **samples[sample],
            "seq": seq,
            "event_id": f"{samples[sample]['event_id']}-{cycle}",
            "customer_id": f"{samples[sample]['customer_id']}-{cycle % 64}",
        }
        size = len(orjson.dumps(event))
        if size < EVENT_BYTES - 20:
            event["padding"] = "x" * (EVENT_BYTES - 20 - size)
        records.append(keyed(event))
    return records


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


# -- measuring ---------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_trees(pids: list[int]) -> list[int]:
    """``pids`` and all their descendants (a worker's processes, a chain's copies)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], list(pids)
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def total_cpu_seconds(pids: list[int]) -> float | None:
    """``cpu_seconds`` summed over ``pids`` (None if one is unknown)."""
    times = [cpu_seconds(pid) for pid in pids]
    return None if any(t is None for t in times) else sum(t for t in times if t is not None)


def peak_rss_mb(pids: list[int]) -> float | None:
    """The processes' peak resident memory (VmHWM) summed, None if unknown."""
    total = 0.0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            return None
        total += next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), 0.0)
    return total


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


class OutputReader:
    """Counts the records arriving on a topic (from its beginning), noting when each batch arrived."""

    def __init__(self, broker: str, topic: str, target: int) -> None:
        self.broker = broker
        self.topic = topic
        self.target = target
        self.count = 0
        self.arrivals: list[tuple[float, int]] = []
        self.done = asyncio.Event()
        self.last_arrival = time.time()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=20, max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while self.count < self.target:
                batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
                got = sum(len(records) for records in batch.values())
                if got:
                    self.count += got
                    self.last_arrival = time.time()
                    self.arrivals.append((self.last_arrival, self.count))
            self.done.set()
        finally:
            await consumer.stop()

    def time_at(self, count: int) -> float:
        return next(at for at, seen in self.arrivals if seen >= count)


async def read_all(broker: str, topic: str, idle_s: float = 2.0) -> list[dict[str, Any]]:
    """Every record of ``topic`` from its beginning, decoded, until it has been quiet for ``idle_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    values: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for records in batch.values():
                values.extend(orjson.loads(record.value or b"null") for record in records)
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return values


async def preload(broker: str, topic: str, records: list[Record]) -> float:
    """Put ``records`` on ``topic``; returns events/s of the loading (for information)."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for begin in range(0, len(records), 10_000):
            chunk = records[begin : begin + 10_000]
            await produce(producer, (Emission(topic, r.partition, r.key, r.value) for r in chunk))
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


async def delete_topics(broker: str, names: list[str]) -> None:
    """Free the broker's memory (Tansu keeps everything in memory); best effort."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(names)
    finally:
        await admin.close()


# -- the variants ------------------------------------------------------------------------------------------------


@dataclass
class Launch:
    """How to start one variant and where it reads and writes."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    input_topic: str
    output_topic: str
    topics: list[TopicSpec]
    seq_of: Callable[[dict[str, Any]], Any]
    ready_file: Path | None = None
    health_port: int | None = None
    copies: int = 1
    """Processes started with ``command`` (members of the same consumer groups)."""


WORKER_ENV: dict[str, str] = {}
"""Settings given to every worker variant (``--worker-env``), to compare tunings."""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IA_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def result_seq(value: dict[str, Any]) -> Any:
    """The ``seq`` of the event a result record (the worker's shape) is for."""
    return (value.get("input") or {}).get("seq")


def chain_launch(
    kind: str, broker: str, tag: str, work: Path, real: bool, copies: int = 1, uvloop: bool = False
) -> Launch:
    """The Faust chain (``faust``), the raw chain (``raw``) or the raw chain doing the worker's work by hand
    (``floor``); ``real`` runs the shipped pipeline's steps; ``copies`` processes of it in one group; on uvloop
    instead of asyncio's own loop."""
    names = [f"{tag}.{suffix}" for suffix in ("in", "t1", "t2", "out")]
    ready = work / "ready.json"
    if kind == "faust":
        command = [str(BIN / "faust"), "-A", "benchmarks.faust_chain", "-L", "uvloop" if uvloop else "aio",
                   "worker", "-l", "warn", "--without-web"]  # fmt: skip
        env = _clean_env(BENCH_FAUST_BROKER=broker, BENCH_FAUST_APP_ID=f"{tag}-app",
                         BENCH_FAUST_TOPICS=",".join(names), BENCH_READY_FILE=str(ready),
                         BENCH_FAUST_DATADIR=str(work / "faust-data"),
                         BENCH_FAUST_WORK="real" if real else "trivial")  # fmt: skip
    else:
        chain_work = "specialised" if kind == "floor" else "real" if real else "trivial"
        command = [sys.executable, "-m", "benchmarks.raw_chain", "--broker", broker, "--group", tag, "--topics",
                   ",".join(names), "--work", chain_work, "--ready-file", str(ready),
                   "--loop", "uvloop" if uvloop else "asyncio"]  # fmt: skip
        env = _clean_env()
    seq = result_seq if kind == "floor" else lambda value: value.get("seq")
    return Launch(command, env, work, names[0], names[3], [TopicSpec(name, PARTITIONS) for name in names],
                  seq, ready_file=ready, copies=copies)  # fmt: skip


def worker_launch(
    broker: str,
    tag: str,
    work: Path,
    pipeline: Path,
    profile: Path | None,
    database: bool,
    processes: int = 1,
    event_loop: str = "auto",
) -> Launch:
    pipelines_dir = work / "pipelines"
    pipelines_dir.mkdir()
    # The worker's Faust app keeps its data in .ia/faust and creates only the last level of it: without .ia in
    # the working directory its start fails and /health never answers (reported; the embedded broker makes .ia).
    (work / ".ia").mkdir()
    shutil.copy(pipeline, pipelines_dir / pipeline.name)
    app_id = f"{tag}-app"
    topology = build_topology(load_plan(pipeline), tag, app_id)
    port = free_port()
    env = _clean_env(IA_BROKER=f"kafka://{broker}", IA_TOPIC_PREFIX=tag, IA_APP_ID=app_id,
                     IA_PIPELINES_DIR=str(pipelines_dir), IA_WEB_PORT=str(port), IA_SESSION_TIMEOUT_MS="2000",
                     IA_LOG_LEVEL="WARNING")  # fmt: skip
    env["IA_EVENT_LOOP"] = event_loop
    env.update(WORKER_ENV)
    if not database:
        env["IA_DATABASE_URL"] = "none"
    command = [str(BIN / "ia-modules"), "worker", "--processes", str(processes)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return Launch(command, env, work, topology.input_topics[0], topology.output_topic, topic_specs(topology),
                  result_seq, health_port=port)  # fmt: skip


def tail(log: Path, limit: int = 3000) -> str:
    return log.read_text(errors="replace")[-limit:]


def read_ready(path: Path) -> float | None:
    """The ``t0`` a chain wrote to its ready file, None before it did."""
    return float(json.loads(path.read_text())["t0"]) if path.exists() else None


async def wait_ready(launch: Launch, processes: list[subprocess.Popen[bytes]], log: Path) -> tuple[float, int | None]:
    """When the variant first had input records in hand (time.time()), and for the worker how many records it
    had already consumed when /health first said 200 (the measurement is late by at most that)."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in processes):
                codes = [process.returncode for process in processes]
                raise RuntimeError(f"exited with {codes}:\n{tail(log)}")
            if launch.ready_file is not None and (t0 := read_ready(launch.ready_file)) is not None:
                return t0, None
            if launch.health_port is not None:
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://127.0.0.1:{launch.health_port}/health")
                    if response.status_code == 200:
                        return time.time(), int(response.json().get("consumed", 0))
            await asyncio.sleep(0.01)
    raise RuntimeError(f"not consuming after 90 s:\n{tail(log)}")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_variant(
    variant: str, broker: str, broker_pid: int | None, records: list[Record], profile_dir: Path | None
) -> Result:
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
            launch = worker_launch(broker, tag, work, pipeline, profile, variant == "worker-db", copies, event_loop)
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
            for copy in range(launch.copies):
                env = dict(launch.env)
                if "BENCH_FAUST_DATADIR" in env:  # a Faust worker's data directory is its own
                    env["BENCH_FAUST_DATADIR"] += f"-{copy}"
                processes.append(await asyncio.to_thread(subprocess.Popen, launch.command, cwd=launch.cwd, env=env,
                                                         stdout=log_file, stderr=subprocess.STDOUT))  # fmt: skip
            try:
                t0, result.consumed_when_ready = await wait_ready(launch, processes, log)
                result.startup_s = t0 - launched
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
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
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


# -- reporting ---------------------------------------------------------------------------------------------------


def best(results: list[Result], variant: str) -> Result | None:
    done = [r for r in results if r.variant == variant and r.ok]
    return max(done, key=lambda r: r.events_per_s) if done else None


def ratios(results: list[Result]) -> dict[str, float]:
    found = {variant: best(results, variant) for variant in VARIANTS}
    pairs = {
        "worker/faust": ("worker", "faust"),
        "worker/raw": ("worker", "raw"),
        "floor/raw": ("floor", "raw"),
        "worker/floor": ("worker", "floor"),
        "faust/raw": ("faust", "raw"),
        "worker-db/worker": ("worker-db", "worker"),
        "worker-2p/faust-2p": ("worker-2p", "faust-2p"),
        "worker-2p/raw-2p": ("worker-2p", "raw-2p"),
        "worker-2p/worker": ("worker-2p", "worker"),
        "worker-2p/faust": ("worker-2p", "faust"),
        "worker-2p/raw": ("worker-2p", "raw"),
        "worker/faust-uvloop": ("worker", "faust-uvloop"),
        "worker/raw-uvloop": ("worker", "raw-uvloop"),
        "worker/worker-asyncio": ("worker", "worker-asyncio"),
        "worker-asyncio/faust": ("worker-asyncio", "faust"),
        "worker-asyncio/raw": ("worker-asyncio", "raw"),
        "real-worker/real-raw": ("real-worker", "real-raw"),
        "real-worker/real-faust": ("real-worker", "real-faust"),
    }
    out = {}
    for name, (top, bottom) in pairs.items():
        a, b = found[top], found[bottom]
        if a is not None and b is not None:
            out[name] = a.events_per_s / b.events_per_s
            out[name + " (steady)"] = a.steady_events_per_s / b.steady_events_per_s
    return out


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: list[Result]) -> None:
    header = (f"{'variant':<30} {'events':>7} {'seconds':>8} {'events/s':>9} {'steady/s':>9} {'us/event':>8} "
              f"{'proc cores':>10} {'peak MB':>7} {'broker cores':>12} {'startup s':>9}  check")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in results:
        check = "ok" if r.ok else f"FAILED: {r.error}"
        if r.ok and r.duplicates:
            check += f" ({r.duplicates} duplicates)"
        us = 1e6 / r.events_per_s if r.events_per_s else 0.0
        print(f"{r.label:<30} {r.events:>7} {r.seconds:>8.2f} {r.events_per_s:>9,.0f} "
              f"{r.steady_events_per_s:>9,.0f} {us:>8.1f} {_cores(r.process_cores):>10} "
              f"{r.process_peak_mb or 0:>7.0f} "
              f"{_cores(r.broker_cores):>12} {r.startup_s:>9.2f}  {check}")  # fmt: skip


def print_ratios(found: dict[str, float]) -> None:
    targets = {"worker/faust": ">= 5", "worker/raw": ">= 0.5"}
    for name, value in found.items():
        base = name.removesuffix(" (steady)")
        target = f"  (target {targets[base]}: {'met' if value >= float(targets[base][3:]) else 'MISSED'})" if (
            base in targets and base == name) else ""  # fmt: skip
        print(f"  {name:<32} {value:6.2f}{target}")


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


def code_version() -> str:
    """The commit measured, with "-dirty" when the working tree had changes."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(report: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


def print_profiles(profile_dir: Path) -> None:
    import pstats

    for path in sorted(profile_dir.glob("*.prof")):
        print(f"\n=== {path.name}: top functions by own time ===")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(30)
        print(f"=== {path.name}: by cumulative time ===")
        stats.sort_stats("cumulative").print_stats(40)


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
