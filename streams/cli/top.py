"""``ia-modules top``: the workers' ``/metrics`` as a live table in the terminal, for whoever has no Grafana.
The figures come from ``top_figures``; here they are fetched (every URL at once) and drawn with rich."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated

import httpx
import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from streams.cli.output import err, out
from streams.cli.top_figures import Figures, PipelineFigures, Quantiles, Scrape, Snapshot, answered, figures
from streams.metrics.reading import Page
from streams.process.event_loop import loop_factory
from streams.settings import Settings


def metrics_url(given: str) -> str:
    """``host:port`` or a URL without a path means that worker's ``/metrics``."""
    url = given if "://" in given else f"http://{given}"
    return url if url.split("://", 1)[1].count("/") else f"{url}/metrics"


class Sampler:
    """Reads every URL's ``/metrics`` at once, each answer (or why there was none) timed when it came."""

    def __init__(self, urls: list[str], timeout_s: float) -> None:
        self.urls = urls
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def sample(self) -> Snapshot:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return tuple(await asyncio.gather(*(self._scrape(self._client, url) for url in self.urls)))

    async def _scrape(self, client: httpx.AsyncClient, url: str) -> Scrape:
        started = time.monotonic()
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            return Scrape(url, time.monotonic(), time.time(), error=f"unreachable: {exc or type(exc).__name__}")
        at, wall = (started + time.monotonic()) / 2, time.time()  # the page was made about halfway through
        if response.status_code != 200:
            hint = " (IA_METRICS=0 on that worker?)" if response.status_code == 404 else ""
            return Scrape(url, at, wall, error=f"HTTP {response.status_code}{hint}")
        try:
            return Scrape(url, at, wall, page=Page.parse(response.text))
        except ValueError as exc:
            return Scrape(url, at, wall, error=f"not a Prometheus page ({exc})")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def rate_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def count_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _quantile_cells(figures: Quantiles, *which: str) -> list[Text]:
    """Cells of a histogram's quantiles; those of the whole time since start (no interval figure) dimmed, ``*``."""
    values = {"p50": figures.p50, "p99": figures.p99}
    if not figures.since_start:
        return [Text(seconds_text(values[name])) for name in which]
    return [Text(seconds_text(values[name]) + "*", style="dim") for name in which]


def _red_if(text: str, value: float | None) -> Text:
    return Text(text, style="red" if value else "")


def dead_letters_text(row: PipelineFigures) -> Text:
    if not row.dead_letters:
        return Text("0")
    kinds = ", ".join(f"{kind} {count:,.0f}" for kind, count in row.dead_letters.items())
    return Text(f"{row.dead_letters_total:,.0f} ({kinds})", style="yellow")


PIPELINE_COLUMNS = ("pipeline", "in/s", "runs/s", "runs", "failed/s", "failed", "run p50", "run p99", "e2e p99",
                    "dead letters", "lag")  # fmt: skip


def pipelines_table(shown: Figures) -> Table:
    over = f"rates over the last {shown.seconds:.2f} s" if shown.seconds is not None else "rates after two refreshes"
    table = Table(title=f"pipelines ({over})", title_justify="left", caption_justify="left")
    for column in PIPELINE_COLUMNS:
        table.add_column(column, justify="left" if column in ("pipeline", "dead letters") else "right")
    since_start = False
    for row in shown.pipelines:
        since_start |= row.run_duration.since_start or row.end_to_end.since_start
        table.add_row(
            row.pipeline,
            rate_text(row.events_in),
            rate_text(row.runs),
            count_text(row.runs_total),
            _red_if(rate_text(row.failed), row.failed),
            _red_if(count_text(row.failed_total), row.failed_total),
            *_quantile_cells(row.run_duration, "p50", "p99"),
            *_quantile_cells(row.end_to_end, "p99"),
            dead_letters_text(row),
            count_text(row.lag),
        )
    if since_start and shown.pipelines:
        table.caption = "* since the workers started: no run of that pipeline finished between the last two refreshes"
    return table


def sinks_table(shown: Figures) -> Table:
    table = Table(title="results sink", title_justify="left")
    for column in ("sink", "state", "rows written/s", "refused", "last write"):
        table.add_column(column, justify="left" if column in ("sink", "state") else "right")
    for sink in shown.sinks:
        all_up = sink.up == sink.series
        state = ("up" if all_up else "down") + (f" {sink.up}/{sink.series}" if sink.series > 1 else "")
        age = "never" if sink.last_success_age_s is None else f"{sink.last_success_age_s:,.1f} s ago"
        table.add_row(
            sink.sink,
            Text(state, style="green" if all_up else "red"),
            rate_text(sink.rows_written),
            _red_if(count_text(sink.rows_refused_total), sink.rows_refused_total),
            age,
        )
    return table


def workers_table(shown: Figures) -> Table:
    table = Table(title="workers", title_justify="left")
    for column in ("worker", "process", "partitions", "rebalances", "CPU %", "RSS"):
        table.add_column(column, justify="left" if column in ("worker", "process") else "right")
    for row in shown.processes:
        cpu = "-" if row.cpu_percent is None else f"{row.cpu_percent:.1f}"
        rss = "-" if row.rss_bytes is None else f"{row.rss_bytes / 2**20:,.1f} MiB"
        table.add_row(
            row.url, row.process or "-", count_text(row.partitions), count_text(row.rebalances), cpu, rss
        )  # fmt: skip
    for url, error in shown.errors:
        table.add_row(url, Text(error, style="red"), "-", "-", "-", "-")
    return table


def view(shown: Figures, urls: int) -> RenderableType:
    """One refresh: the pipelines, the sink and the workers, and the URLs that did not answer."""
    heading = Text(f"ia-modules top   {datetime.now():%H:%M:%S}   {shown.answered}/{urls} worker URL(s) answering")
    parts: list[RenderableType] = [heading, pipelines_table(shown)]
    if shown.other_lag:
        parts.append(Text(f"lag on topics of no pipeline shown: {shown.other_lag:,.0f}", style="yellow"))
    if shown.sinks:
        parts.append(sinks_table(shown))
    parts.append(workers_table(shown))
    return Group(*parts)


def _once(runner: asyncio.Runner, sampler: Sampler, interval: float) -> tuple[Snapshot, Snapshot]:
    first = runner.run(sampler.sample())
    runner.run(asyncio.sleep(interval))
    return first, runner.run(sampler.sample())


def _live(runner: asyncio.Runner, sampler: Sampler, interval: float) -> None:
    """Refresh every ``interval`` seconds until Ctrl-C (terminal output stays off the event loop)."""
    due = time.monotonic()
    prev = runner.run(sampler.sample())
    with Live(view(figures(None, prev), len(sampler.urls)), console=out, auto_refresh=False) as live:
        while True:
            due += interval
            runner.run(asyncio.sleep(max(0.0, due - time.monotonic())))
            cur = runner.run(sampler.sample())
            live.update(view(figures(prev, cur), len(sampler.urls)), refresh=True)
            prev = cur


def top(
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="a worker's /metrics or host:port (repeat for several; default: IA_WEB_PORT here)",
        ),
    ] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between refreshes")] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="print one table after two samples INTERVAL apart, exit")
    ] = False,
) -> None:
    """Live per-pipeline rates, latencies, failures, dead letters and lag, from the workers' /metrics.

    in/s: records consumed from the pipeline's input topics (each topic it consumed but <prefix>.<pipeline>.<step>).
    runs/s, failed/s: runs finished, all and failed, per second between the last two refreshes; runs, failed: totals.
    run p50/p99, e2e p99: run duration and end-to-end latency of the runs finished between the last two refreshes
    (* when none did: of every run since the workers started). lag: summed over the pipeline's topics.
    Several URLs' and processes' series are added up. With --once it exits 2 when no worker answered."""
    settings = Settings()
    urls = list(dict.fromkeys(metrics_url(u) for u in url or [f"127.0.0.1:{settings.web_port}"]))
    sampler = Sampler(urls, timeout_s=max(2.0, interval))
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            try:
                if not once:
                    _live(runner, sampler, interval)  # until Ctrl-C
                    return
                first, second = _once(runner, sampler, interval)
            finally:
                runner.run(sampler.close())
    except KeyboardInterrupt:  # Ctrl-C is how a live view ends
        return
    if not answered(first) and not answered(second):
        reasons = "; ".join(f"{scrape.url}: {scrape.error}" for scrape in second)
        err.print(f"[red]error:[/red] no worker answered ({escape(reasons)}); is `ia-modules worker` running?")
        raise typer.Exit(2)
    out.print(view(figures(first, second), len(urls)))
