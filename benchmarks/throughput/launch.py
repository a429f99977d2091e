"""How a variant's processes are described, started clean of IA_/BENCH_ settings, waited for until they
consume, and stopped: what the chain and worker launchers fill in and the measuring uses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import STEP_PACKAGES
from benchmarks.throughput.events import ROOT
from streams.kafka.admin import TopicSpec


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


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IA_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["IA_STEP_PACKAGES"] = STEP_PACKAGES
    env.update(extra)
    return env


def result_seq(value: dict[str, Any]) -> Any:
    """The ``seq`` of the event a result record (the worker's shape) is for."""
    return (value.get("input") or {}).get("seq")


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
