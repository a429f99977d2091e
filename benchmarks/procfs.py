"""CPU time and peak memory of processes, read from Linux /proc: what a benchmark's variant or server
process costs, measured from outside it (shared by the throughput and the sink benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
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


def cpu_seconds_each(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process of ``pids`` still running."""
    return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}
