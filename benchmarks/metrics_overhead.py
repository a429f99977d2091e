"""What the worker's Prometheus metrics cost end to end: ``ia-modules worker`` on the bench pipeline with metrics
off (``IA_METRICS=0``: no series, no ``/metrics``) against on and scraped every second, rounds interleaved.

    .venv/bin/python -m benchmarks.metrics_overhead [--rounds 5] [--events 50000] [--scrape-every 1.0]

One embedded Tansu broker, 4 partitions, the streaming throughput benchmark's worker variant (``worker``: the
bench pipeline, ``IA_DATABASE_URL=none``) measured by its own code (``throughput.run.run_variant``: input
preloaded, the clock from the worker's first ``/health`` 200 to the last result on the output topic, every
result checked). Rounds alternate off, on, off, on, ...; while an "on" worker runs, a task here fetches
``http://127.0.0.1:<IA_WEB_PORT>/metrics`` every second (each scrape also asks the broker for the end offsets,
for ``ia_consumer_lag``), as Prometheus would; an "off" worker is asked once that it has no ``/metrics`` (404).
The figure is the median events/s of each, and on / off of the medians (and of each round's pair). The
in-memory counterpart, which does not move with the machine's load, is
``python -m benchmarks.stage_instructions --compare-metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.throughput.events import PARTITIONS, ROOT, synthetic_events
from benchmarks.throughput.launch import Launch
from benchmarks.throughput.report import code_version, print_table
from benchmarks.throughput.run import Result, run_variant
from streams.embedded.broker import embedded_broker, read_broker_record
from streams.metrics.reading import Page

RESULTS = ROOT / "benchmarks" / "results" / "metrics_overhead.json"
SETTINGS = {"off": {"IA_METRICS": "0"}, "on": {"IA_METRICS": "1"}}


@dataclass
class Scrapes:
    """What scraping one worker gave: how many pages, how long each took to come back, the last one."""

    every_s: float
    pages: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)
    page_bytes: int = 0
    last_page: str = ""
    status_off: int | None = None
    """The answer of an "off" worker's ``/metrics`` (404 expected)."""

    def summary(self) -> dict[str, Any]:
        page = Page.parse(self.last_page) if self.last_page else None
        return {
            "pages": self.pages,
            "failed": self.failed,
            "median_ms": statistics.median(self.seconds) * 1000 if self.seconds else None,
            "max_ms": max(self.seconds) * 1000 if self.seconds else None,
            "page_bytes": self.page_bytes,
            "runs_at_last_scrape": page.total("ia_runs_total") if page else None,
            "consumed_at_last_scrape": page.total("ia_events_consumed_total") if page else None,
            "status_off": self.status_off,
        }


async def scrape(launch: Launch, scrapes: Scrapes) -> None:
    """Fetch the worker's ``/metrics`` every ``scrapes.every_s`` until cancelled (on a fixed schedule, as
    Prometheus does: a slow answer does not push the next scrape back)."""
    url = f"http://127.0.0.1:{launch.health_port}/metrics"
    async with httpx.AsyncClient(timeout=10.0) as client:
        due = time.monotonic()
        while True:
            started = time.perf_counter()
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                scrapes.failed += 1
            else:
                scrapes.pages += 1
                scrapes.seconds.append(time.perf_counter() - started)
                scrapes.page_bytes = len(response.content)
                scrapes.last_page = response.text
            due += scrapes.every_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def metrics_absent(launch: Launch, scrapes: Scrapes) -> None:
    """An "off" worker's ``/metrics``, asked once: 404 when ``IA_METRICS=0`` took effect."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        with contextlib.suppress(httpx.HTTPError):
            scrapes.status_off = (await client.get(f"http://127.0.0.1:{launch.health_port}/metrics")).status_code


def scraped(metrics: str, scrapes: Scrapes) -> str:
    """One line on what the scrapes of a run gave."""
    seen = scrapes.summary()
    if metrics == "off":
        return f"/metrics answered {seen['status_off']}"
    if not seen["pages"]:
        return f"no scrape answered ({seen['failed']} failed)"
    return (f"{seen['pages']} scrapes ({seen['failed']} failed), median {seen['median_ms']:.1f} ms, max "
            f"{seen['max_ms']:.0f} ms, {seen['page_bytes'] / 1024:.0f} KiB; "
            f"{seen['runs_at_last_scrape']:,.0f} runs counted at the last")  # fmt: skip


def ratio(on: float, off: float) -> float:
    return on / off if off else float("nan")


async def main(arguments: argparse.Namespace) -> dict[str, Any]:
    records = synthetic_events(arguments.events)
    code = code_version()  # at the start: others may commit while it runs
    started = datetime.datetime.now(datetime.UTC)
    print(f"{arguments.events:,} events, {PARTITIONS} partitions, {arguments.rounds} rounds of metrics off then on "
          f"(scraped every {arguments.scrape_every:g} s); code {code}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    runs: list[tuple[str, Result, Scrapes]] = []
    clock = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as state:
        async with embedded_broker(Path(state)) as broker:
            broker_record = read_broker_record(Path(state))
            broker_pid = broker_record.pid if broker_record else None
            for round_number in range(1, arguments.rounds + 1):
                for metrics in ("off", "on"):
                    scrapes = Scrapes(arguments.scrape_every)

                    async def alongside(launch: Launch, scrapes: Scrapes = scrapes, metrics: str = metrics) -> None:
                        await (scrape if metrics == "on" else metrics_absent)(launch, scrapes)

                    result = await run_variant("worker", broker, broker_pid, records, None,
                                               worker_env=SETTINGS[metrics], alongside=alongside)  # fmt: skip
                    result.label = f"worker, metrics {metrics}"
                    runs.append((metrics, result, scrapes))
                    print(f"round {round_number}, metrics {metrics}: {result.events_per_s:,.0f} events/s in "
                          f"{result.seconds:.2f} s, {result.process_cores or 0:.2f} cores "
                          f"({'ok' if result.ok else result.error}); {scraped(metrics, scrapes)}",
                          flush=True)  # fmt: skip
    elapsed = time.monotonic() - clock
    print()
    print_table([result for _, result, _ in runs])
    rates = {m: [r.events_per_s for metrics, r, _ in runs if metrics == m and r.ok] for m in ("off", "on")}
    medians = {m: statistics.median(values) if values else 0.0 for m, values in rates.items()}
    pairs = [ratio(on.events_per_s, off.events_per_s)
             for (_, off, _), (_, on, _) in zip(runs[::2], runs[1::2], strict=True) if off.ok and on.ok]  # fmt: skip
    print(f"\nmedian events/s: metrics off {medians['off']:,.0f}, on (scraped) {medians['on']:,.0f}: "
          f"on / off {ratio(medians['on'], medians['off']):.3f}")  # fmt: skip
    if pairs:
        print(f"on / off per round: {', '.join(f'{p:.3f}' for p in pairs)} (median {statistics.median(pairs):.3f})")
    print(f"{elapsed / 60:.1f} min; load average at the end {os.getloadavg()[0]:.2f}")
    report = {
        "date": started.isoformat(timespec="seconds"),
        "code": code,
        "events": arguments.events,
        "rounds": arguments.rounds,
        "scrape_every_s": arguments.scrape_every,
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "minutes": elapsed / 60,
        "median_events_per_s": medians,
        "ratio_on_off": ratio(medians["on"], medians["off"]),
        "ratio_per_round": pairs,
        "runs": [{"metrics": m, **asdict(r), "ok": r.ok, "scrapes": s.summary()} for m, r, s in runs],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(RESULTS.write_text, json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    if any(not result.ok for _, result, _ in runs):
        sys.exit(1)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of off then on (default 5)")
    parser.add_argument("--events", type=int, default=50_000, help="events per run (default 50,000)")
    parser.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes (default 1)")
    asyncio.run(main(parser.parse_args()))
