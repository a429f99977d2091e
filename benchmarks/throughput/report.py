"""The report of a run: the table of results, the ratios between variants (best round of each), the JSON
written to ``benchmarks/results/``, the commit measured and the worker profiles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.throughput.events import ROOT, VARIANTS
from benchmarks.throughput.run import Result

RESULTS = ROOT / "benchmarks" / "results" / "streaming_throughput.json"


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
