"""Results sink inserts: rows/s of writing ~1 KB ``pipeline_runs`` rows, 500 per batch, four ways, in one run.

    python -m benchmarks.sink_inserts [--rows 50000] [--batch 500] [--rounds 10] [--quick]

On the embedded PostgreSQL (a fresh data directory in a temporary folder, removed at the end), or on a scratch
database created (and dropped at the end) on ``IA_BENCH_DATABASE_URL`` when that is set; the project's migrations
applied by ``DatabaseManager.initialize()``. Every variant starts from the same kind of batch of ``FinishedRun``
records (an order_enrichment input of ~550 B, its outputs, a 5-step trace, error null) and turns them into rows
with ``streams.sink.results.run_row`` inside the timing, as the sink does:

    row          one autocommitted ``INSERT ... ON CONFLICT (run_id) DO NOTHING`` per row
    executemany  the same INSERT, one ``executemany`` per batch (asyncpg runs it as one transaction)
    copy         per batch, one transaction: ``copy_records_to_table`` into a TEMP table (ON COMMIT DELETE ROWS),
                 then ``INSERT INTO pipeline_runs SELECT ... ON CONFLICT (run_id) DO UPDATE ... WHERE
                 pipeline_runs.status = 'failed'`` (the sink's semantics)
    unnest       ``ResultsSink.write(runs, [])``: the sink's real code path (``UPSERT_RUNS_UNNEST`` through the
                 DatabaseManager)
    unnest_raw   the same statement on a bare asyncpg connection (what the manager's wrapper costs)
    copy_dup, unnest_dup   copy and unnest again on rows already present (a replayed or re-sent batch: every
                 row conflicts, none is updated)
    sink_mix     ``ResultsSink.write`` with 500 runs (5 of them failed) and their 5 dead letters per batch
    run_row      ``run_row`` alone, no database: the client-side share of every variant

Every variant writes fresh run ids (the *_dup ones re-send the rows ``executemany`` wrote in the same round).
Rounds interleave the variants (their order rotates each round) so that noise from other work on the machine
hits all of them; the best round of each is reported, with the median beside it. As wall-clock rates swing on
a shared machine, each variant's CPU time per row is also summed over all rounds: this process's
(``time.process_time``) and, on the embedded server, that of all the server's processes (read from /proc).
``1e6 / (client + server us)`` is the rows written per CPU-second (client and server take turns on every batch,
so one writer cannot go much faster than that however idle the machine; parallel writers need a core each).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import orjson

from benchmarks.procfs import cpu_seconds_each
from benchmarks.sink_records import letter_for, make_runs
from ia_modules.database import DatabaseManager
from streams.embedded.postgres import EmbeddedPostgres
from streams.sink.results import RUN_COLUMNS, UPSERT_RUNS_UNNEST, FinishedRun, ResultsSink, run_row

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "pipelines" / "order_enrichment.events.jsonl"
FAILED_PER_BATCH = 5  # sink_mix: failed runs (each with its dead letter) per batch

COLUMNS = ", ".join(RUN_COLUMNS)
UPDATED = ", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS[1:])
INSERT_ROW = (
    f"INSERT INTO pipeline_runs ({COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(RUN_COLUMNS) + 1))}) "
    "ON CONFLICT (run_id) DO NOTHING"
)
TEMP = "sink_runs_batch"
CREATE_TEMP = (
    f"CREATE TEMP TABLE IF NOT EXISTS {TEMP} ON COMMIT DELETE ROWS AS SELECT {COLUMNS} FROM pipeline_runs WITH NO DATA"
)
INSERT_FROM_TEMP = (
    f"INSERT INTO pipeline_runs ({COLUMNS}) SELECT {COLUMNS} FROM {TEMP} "
    f"ON CONFLICT (run_id) DO UPDATE SET {UPDATED}, recorded_at = now() WHERE pipeline_runs.status = 'failed'"
)

Writer = Callable[[list[FinishedRun], list[dict[str, Any]]], Awaitable[None]]
INSERTING = ("row", "executemany", "copy", "unnest", "unnest_raw", "sink_mix")
DUPLICATES = ("copy_dup", "unnest_dup")
LABELS = {
    "run_row": "run_row() alone, no database (client cost)",
    "row": "1. one autocommitted INSERT per row",
    "executemany": "2. executemany (one per batch)",
    "copy": "3. COPY to temp + INSERT SELECT",
    "unnest": "4. unnest upsert (ResultsSink.write)",
    "unnest_raw": "   unnest upsert, bare asyncpg",
    "copy_dup": "3. COPY, every row conflicts",
    "unnest_dup": "4. unnest (sink), every row conflicts",
    "sink_mix": "ResultsSink.write, 500 runs + 5 letters",
}


# -- the ways of writing a batch ----------------------------------------------------------------------------------


def writers(db: DatabaseManager) -> dict[str, Writer]:
    pool = db.asyncpg_pool
    sink = ResultsSink(db)

    async def one_per_row(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        async with pool.acquire() as conn:
            for run in runs:
                await conn.execute(INSERT_ROW, *run_row(run))

    async def executemany(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        rows = [run_row(run) for run in runs]
        async with pool.acquire() as conn:
            await conn.executemany(INSERT_ROW, rows)

    async def copy(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        rows = [run_row(run) for run in runs]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(CREATE_TEMP)
            await conn.copy_records_to_table(TEMP, records=rows, columns=RUN_COLUMNS)
            await conn.execute(INSERT_FROM_TEMP)

    async def unnest_raw(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        rows = [run_row(run) for run in runs]
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(UPSERT_RUNS_UNNEST, *columns)

    async def rows_only(runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        [run_row(run) for run in runs]

    return {
        "run_row": rows_only,
        "row": one_per_row,
        "executemany": executemany,
        "copy": copy,
        "unnest": sink.write,
        "unnest_raw": unnest_raw,
        "copy_dup": copy,
        "unnest_dup": sink.write,
        "sink_mix": sink.write,
    }


@dataclass
class Totals:
    """One variant over all rounds: rows/s of each round, and the sums behind the CPU cost per row."""

    rates: list[float] = field(default_factory=list)
    rows: int = 0
    client_s: float = 0.0
    server_s: float = 0.0


async def timed(
    write: Writer, batches: list[tuple[list[FinishedRun], list[dict[str, Any]]]], totals: Totals, server: Any
) -> None:
    """Write ``batches`` one after the other; the round's rows/s and CPU time into ``totals``. ``server``:
    a coroutine listing the server's process ids (None when the server is not on this machine)."""
    pids = await server() if server else []
    gc.collect()
    server_before = cpu_seconds_each(pids)
    client_before = time.process_time()
    started = time.perf_counter()
    for runs, letters in batches:
        await write(runs, letters)
    elapsed = time.perf_counter() - started
    client = time.process_time() - client_before
    server_after = cpu_seconds_each(pids)
    rows = sum(len(runs) for runs, _ in batches)
    totals.rates.append(rows / elapsed)
    totals.rows += rows
    totals.client_s += client
    totals.server_s += sum(server_after[pid] - server_before[pid] for pid in server_after if pid in server_before)


def batched(runs: list[FinishedRun], size: int, with_letters: bool = False) -> list[tuple[list[FinishedRun], Any]]:
    out = []
    for start in range(0, len(runs), size):
        chunk = runs[start : start + size]
        letters = [letter_for(run) for run in chunk if run.record["status"] == "failed"] if with_letters else []
        out.append((chunk, letters))
    return out


# -- the server ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def database() -> AsyncIterator[tuple[str, str]]:
    """``(url, where)``: a scratch database on IA_BENCH_DATABASE_URL, else the embedded server in a temp folder."""
    configured = os.environ.get("IA_BENCH_DATABASE_URL")
    if configured:
        name = f"ia_bench_sink_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(configured)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            parts = urlsplit(configured)
            url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(name), parts.query, parts.fragment))
            try:
                yield url, f"scratch database {name} on IA_BENCH_DATABASE_URL"
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        return
    folder = tempfile.mkdtemp(prefix="ia-bench-sink-")
    try:
        async with EmbeddedPostgres(Path(folder) / "pg") as url:
            yield url, "embedded PostgreSQL (server defaults, fsync on)"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def server_pids(db: DatabaseManager) -> Callable[[], Awaitable[list[int]]]:
    """The ids of the server's processes (backends, WAL writer, checkpointer, I/O workers...), whose CPU time
    is read from /proc: the server runs on this machine."""

    async def pids() -> list[int]:
        return [row["pid"] for row in await db.fetch_all("SELECT pid FROM pg_stat_activity")]

    return pids


async def describe(db: DatabaseManager) -> str:
    row = await db.fetch_one(
        "SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, "
        "current_setting('synchronous_commit') AS sync, current_setting('shared_buffers') AS buffers"
    )
    assert row is not None
    return (
        f"PostgreSQL {row['version']} (fsync={row['fsync']}, synchronous_commit={row['sync']}, "
        f"shared_buffers={row['buffers']})"
    )


# -- the benchmark ------------------------------------------------------------------------------------------------


async def main(rows: int, batch: int, rounds: int) -> dict[str, Any]:
    events = [orjson.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    per_round = max(batch, (rows // rounds) // batch * batch)
    async with database() as (url, where):
        db = DatabaseManager(url, max_pool_size=2)
        try:
            await db.initialize()
            return await measure(db, where, events, per_round, batch, rounds)
        finally:
            await db.close()


async def measure(
    db: DatabaseManager, where: str, events: list[dict[str, Any]], per_round: int, batch: int, rounds: int
) -> dict[str, Any]:
    write = writers(db)
    server = server_pids(db) if where.startswith("embedded") else None
    sample = [run_row(run) for run in make_runs(events, "sample", 1000)]
    text_bytes = statistics.mean(sum(len(v) for v in row if isinstance(v, str)) for row in sample)
    print(f"{where}: {await describe(db)}")
    print(
        f"{per_round * rounds:,} rows per variant ({rounds} rounds x {per_round:,}), {batch} rows per batch; "
        f"a row carries {text_bytes:,.0f} B of text (input, outputs, trace JSON and names)"
    )
    seen = {name: Totals() for name in (*INSERTING, *DUPLICATES, "run_row")}
    for round_no in range(rounds):
        order = INSERTING[round_no % len(INSERTING) :] + INSERTING[: round_no % len(INSERTING)]
        written: dict[str, list[FinishedRun]] = {}
        for name in order:
            failed_every = batch // FAILED_PER_BATCH if name == "sink_mix" else 0
            runs = make_runs(events, f"{name}:{round_no}", per_round, failed_every)
            written[name] = runs
            await timed(write[name], batched(runs, batch, with_letters=name == "sink_mix"), seen[name], server)
        for name in DUPLICATES if round_no % 2 == 0 else DUPLICATES[::-1]:
            await timed(write[name], batched(written["executemany"], batch), seen[name], server)
        await timed(write["run_row"], batched(written["unnest"], batch), seen["run_row"], None)
        print(f"  round {round_no + 1}: " + ", ".join(f"{name} {t.rates[-1]:,.0f}" for name, t in seen.items()))

    await check(db, per_round * rounds, rounds * (per_round // batch) * FAILED_PER_BATCH)
    stored = await db.fetch_one("SELECT avg(pg_column_size(p.*))::int AS size FROM pipeline_runs p")
    print(f"stored row size (pg_column_size): {stored['size'] if stored else '?'} B")
    print(f"load average at the end: {', '.join(f'{load:.2f}' for load in os.getloadavg())} ({os.cpu_count()} CPUs)")
    best = {name: max(t.rates) for name, t in seen.items()}
    median = {name: statistics.median(t.rates) for name, t in seen.items()}
    # CPU per row, client + server (None when the server's is not known: it is not on this machine)
    cpu_us = {
        name: (t.client_s + t.server_s) / t.rows * 1e6 if server or name == "run_row" else None
        for name, t in seen.items()
    }
    print(f"\n{'variant':<44}{'best rows/s':>12}{'median':>9}   CPU us/row: client  server  rows per CPU-s")
    for name in (*INSERTING[:5], *DUPLICATES, "sink_mix", "run_row"):
        t = seen[name]
        total = cpu_us[name]
        server_cpu = f"{t.server_s / t.rows * 1e6:>8.1f}" if total is not None else f"{'n/a':>8}"
        per_cpu_s = f"{1e6 / total:>9,.0f}" if total else f"{'n/a':>9}"
        print(
            f"{LABELS[name]:<44}{best[name]:>12,.0f}{median[name]:>9,.0f}"
            f"{t.client_s / t.rows * 1e6:>20.1f}{server_cpu}  {per_cpu_s}"
        )
    return conclude(best, median, cpu_us)


async def check(db: DatabaseManager, per_variant: int, failed: int) -> None:
    """Every inserting variant landed all its rows, the duplicate runs added none, the letters are there."""
    counts = await db.fetch_one(
        "SELECT count(*) AS runs, count(*) FILTER (WHERE status = 'failed') AS failed, "
        "(SELECT count(*) FROM dead_letters) AS letters FROM pipeline_runs"
    )
    assert counts is not None
    expected = {"runs": per_variant * len(INSERTING), "failed": failed, "letters": failed}
    assert dict(counts) == expected, f"rows written {dict(counts)} != expected {expected}"


def conclude(best: dict[str, float], median: dict[str, float], cpu: dict[str, float | None]) -> dict[str, Any]:
    def cpu_change(a: str, b: str) -> str:
        cpu_a, cpu_b = cpu[a], cpu[b]
        return "CPU per row unknown" if cpu_a is None or cpu_b is None else f"{cpu_a / cpu_b - 1:+.0%} CPU per row"

    fastest = max(("row", "executemany", "copy", "unnest"), key=best.__getitem__)
    gain = best["copy"] / best["unnest"] - 1
    gain_median = median["copy"] / median["unnest"] - 1
    gain_dup = best["copy_dup"] / best["unnest_dup"] - 1
    print(f"\nfastest of the four ways: {LABELS[fastest].split('. ', 1)[-1]} ({best[fastest]:,.0f} rows/s)")
    print(
        f"COPY vs the sink's unnest upsert: {gain:+.0%} rows/s (median {gain_median:+.0%}), "
        f"{cpu_change('copy', 'unnest')}; when every row conflicts: {gain_dup:+.0%} rows/s, "
        f"{cpu_change('copy_dup', 'unnest_dup')}"
    )
    if gain > 0.15 and gain_median > 0.15:
        chosen = "copy"
        print(
            "COPY is clearly faster (>15%): proposal: ResultsSink.write on PostgreSQL copies the rows into a TEMP "
            "table (ON COMMIT DELETE ROWS) with copy_records_to_table and upserts from it, in the same transaction"
        )
    else:
        chosen = "unnest"
        print("COPY is not clearly faster (>15%): the sink keeps its unnest upsert (one statement, one round trip)")
    target = 50_000
    for name in ("unnest", "sink_mix"):
        verdict = "keeps up with" if best[name] >= target else "does NOT keep up with"
        print(f"{LABELS[name].split('. ', 1)[-1]}: {best[name]:,.0f} rows/s {verdict} {target:,} runs/s", end="")
        cost = cpu[name]
        print(f" ({1e6 / cost:,.0f} rows per CPU-second)" if cost else "")
    return {"best": best, "median": median, "cpu_us": cpu, "chosen": chosen}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per variant (default 50,000)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, help="rounds the rows are split over (default 10; 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="5,000 rows per variant")
    arguments = parser.parse_args()
    rounds = arguments.rounds or (5 if arguments.quick else 10)
    asyncio.run(main(5_000 if arguments.quick else arguments.rows, arguments.batch, rounds))
