"""The launcher of the hand-written chains: the raw aiokafka chain (trivial, real or the worker's work by hand,
``floor``) and the Faust chain, as processes on their own four topics."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.throughput.events import BIN, PARTITIONS
from benchmarks.throughput.launch import Launch, clean_env, result_seq
from streams.kafka.admin import TopicSpec


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
        env = clean_env(BENCH_FAUST_BROKER=broker, BENCH_FAUST_APP_ID=f"{tag}-app",
                        BENCH_FAUST_TOPICS=",".join(names), BENCH_READY_FILE=str(ready),
                        BENCH_FAUST_DATADIR=str(work / "faust-data"),
                        BENCH_FAUST_WORK="real" if real else "trivial")  # fmt: skip
    else:
        chain_work = "specialised" if kind == "floor" else "real" if real else "trivial"
        command = [sys.executable, "-m", "benchmarks.raw_chain", "--broker", broker, "--group", tag, "--topics",
                   ",".join(names), "--work", chain_work, "--ready-file", str(ready),
                   "--loop", "uvloop" if uvloop else "asyncio"]  # fmt: skip
        env = clean_env()
    seq = result_seq if kind == "floor" else lambda value: value.get("seq")
    return Launch(command, env, work, names[0], names[3], [TopicSpec(name, PARTITIONS) for name in names],
                  seq, ready_file=ready, copies=copies)  # fmt: skip
