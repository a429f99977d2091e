"""Results sink with NUL: rows/s of committing batches where 2% of the runs carry ``\\u0000`` against clean batches,
in the same run, through the committer's real path (``Committer.commit`` -> ``ResultsSink.write``).

    .venv/bin/python -m benchmarks.sink_nul [--runs 20000] [--batch 500] [--rounds 6] [--nul-every 50] [--quick]

PostgreSQL's text and jsonb cannot hold NUL: before the sink escaped it, a batch holding one such run was refused
whole and written again row by row, and the NUL rows were lost. The target: batches with 2% NUL runs within 10%
of clean ones, and every run written.

On the embedded PostgreSQL (a fresh data directory in a temporary folder, removed at the end), or on a scratch
database on ``IA_BENCH_DATABASE_URL`` (benchmarks/sink_inserts.py's ``database()``). The runs are
benchmarks/sink_records.py's order_enrichment result records (~1 KB rows); in the ``nul`` variant every
``--nul-every``-th run (50: 2%) has a NUL in an input value, in an input key and in its outputs. Each batch is a
``Checkpoint`` committed by a ``Committer`` whose producer and consumer do nothing (the rows are what is measured;
a refused row's dead letter would be "produced" at no cost). Every round writes fresh run ids, committing the two
variants' batches alternately, each batch timed on its own, so that load from elsewhere on the (shared) machine
hits both alike; a variant's rows/s in a round is its rows over the time its own batches took. The best and
median round of each are reported, with the CPU time per row of this process and of the server's processes
(/proc, embedded server only); then every variant's rows are counted in the table and the NUL runs read back and
compared with what was written. ``run_row`` alone (no database) is timed on each
variant's rows too: what the escaping costs the client.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import time
from typing import Any, cast

import orjson
from aiokafka import TopicPartition

from benchmarks.procfs import cpu_seconds_each
from benchmarks.sink_inserts import EVENTS, Totals, database, describe, server_pids
from benchmarks.sink_records import make_runs
from ia_modules.database import DatabaseManager
from streams.sink.checkpoint import Checkpoint, Committer, Produced
from streams.sink.results import FinishedRun, ResultsSink, run_row

VARIANTS = ("clean", "nul")
TARGET = 0.10  # the NUL variant within 10% of the clean one
PARTITION = TopicPartition("orders", 0)


class _Batch:
    def append(self, **_: Any) -> object:
        return object()

    def record_count(self) -> int:
        return 1


class NoBroker:
    """The producer and consumer calls the committer makes, answered at once."""

    def __init__(self) -> None:
        self.produced = 0

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.produced += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    def pause(self, *partitions: TopicPartition) -> None:
        raise AssertionError("the database went away during the benchmark")

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        pass


def with_nul(run: FinishedRun) -> FinishedRun:
    """The run with a NUL in an input value, an input key and its outputs (as the end stage hands it over)."""
    record = dict(run.record)
    record["input"] = {**record["input"], "gift_note": "happy\0birthday", "meta": {"tag\0key": ["x\0"]}}
    record["outputs"] = {**record["outputs"], "note": "happy\0birthday"}
    return FinishedRun(record, run.finished_ms)


def runs_of(events: list[dict[str, Any]], variant: str, tag: str, count: int, nul_every: int) -> list[FinishedRun]:
    runs = make_runs(events, tag, count)
    if variant == "nul":
        runs = [with_nul(run) if i % nul_every == nul_every - 1 else run for i, run in enumerate(runs)]
    return runs


def checkpoints_of(runs: list[FinishedRun], batch: int, offset: int) -> list[Checkpoint]:
    checkpoints = []
    for start in range(0, len(runs), batch):
        produced = Produced()
        produced.runs = runs[start : start + batch]
        checkpoints.append(Checkpoint(produced, {PARTITION: offset + start + batch}, len(produced.runs)))
    return checkpoints


async def round_of(
    committer: Committer, batches: dict[str, list[Checkpoint]], totals: dict[str, Totals], pids: list[int]
) -> None:
    """Commit the variants' batches alternately (clean, nul, nul, clean, ...), each timed on its own, so that
    whatever else the machine does hits both alike; the round's rows/s and CPU time into ``totals``."""
    elapsed = dict.fromkeys(batches, 0.0)
    rows = dict.fromkeys(batches, 0)
    gc.collect()
    for i in range(max(len(b) for b in batches.values())):
        for name in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            if i >= len(batches[name]):
                continue
            checkpoint = batches[name][i]
            server_before = cpu_seconds_each(pids)
            client_before = time.process_time()
            started = time.perf_counter()
            await committer.commit(checkpoint)
            elapsed[name] += time.perf_counter() - started
            totals[name].client_s += time.process_time() - client_before
            server_after = cpu_seconds_each(pids)
            totals[name].server_s += sum(server_after[p] - server_before[p] for p in server_after if p in server_before)
            rows[name] += len(checkpoint.produced.runs)
    for name in batches:
        totals[name].rates.append(rows[name] / elapsed[name])
        totals[name].rows += rows[name]


async def main(runs_per_round: int, batch: int, rounds: int, nul_every: int) -> dict[str, Any]:
    events = [orjson.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]
    async with database() as (url, where):
        db = DatabaseManager(url, max_pool_size=2)
        try:
            await db.initialize()
            return await measure(db, where, events, runs_per_round, batch, rounds, nul_every)
        finally:
            await db.close()


async def measure(
    db: DatabaseManager, where: str, events: list[dict[str, Any]], per_round: int, batch: int, rounds: int, every: int
) -> dict[str, Any]:
    broker = NoBroker()
    committer = Committer(cast(Any, broker), cast(Any, broker), ResultsSink(db))
    pids_of = server_pids(db) if where.startswith("embedded") else None
    print(f"{where}: {await describe(db)}")
    print(
        f"{per_round:,} runs per variant and round, {rounds} rounds, {batch} runs per batch, the variants' batches "
        f"alternating; variant nul: every {every}th run ({1 / every:.0%}) carries NUL"
    )
    totals = {name: Totals() for name in VARIANTS}
    written: dict[str, list[FinishedRun]] = {name: [] for name in VARIANTS}
    offset = 0
    for round_no in range(rounds):
        batches = {}
        for name in VARIANTS:
            runs = runs_of(events, name, f"{name}:{round_no}", per_round, every)
            written[name].extend(runs)
            batches[name] = checkpoints_of(runs, batch, offset)
            offset += per_round
        await round_of(committer, batches, totals, await pids_of() if pids_of else [])
        print(f"  round {round_no + 1}: " + ", ".join(f"{n} {t.rates[-1]:,.0f} rows/s" for n, t in totals.items()))
    stats = committer.stats
    print(f"committer: {stats.rows_written:,} rows written, {stats.rows_rejected:,} refused, {broker.produced} sent")
    row_us = {name: rows_alone_us(written[name][:per_round]) for name in VARIANTS}
    print("run_row() alone, no database (client us/row): " + ", ".join(f"{n} {us:.2f}" for n, us in row_us.items()))

    best = {name: max(t.rates) for name, t in totals.items()}
    median = {name: statistics.median(t.rates) for name, t in totals.items()}
    cpu_us = {name: (t.client_s + t.server_s) / t.rows * 1e6 for name, t in totals.items()}
    missing = await count_missing(db, written)
    mismatched = await compare_nul_rows(db, written["nul"], every)
    print(
        f"\n{'variant':<8}{'best rows/s':>13}{'median':>9}{'CPU us/row: client':>21}{'server':>8}{'rows missing':>14}"
    )
    for name, t in totals.items():
        server = f"{t.server_s / t.rows * 1e6:>8.1f}" if pids_of else f"{'n/a':>8}"
        print(
            f"{name:<8}{best[name]:>13,.0f}{median[name]:>9,.0f}{t.client_s / t.rows * 1e6:>21.1f}{server}"
            f"{missing[name]:>14,}"
        )
    change = {"best": best["nul"] / best["clean"] - 1, "median": median["nul"] / median["clean"] - 1}
    change["cpu"] = cpu_us["nul"] / cpu_us["clean"] - 1
    within = -change["median"] <= TARGET and not any(missing.values())
    print(
        f"nul vs clean: {change['best']:+.1%} rows/s best round, {change['median']:+.1%} median"
        + (f", {change['cpu']:+.1%} CPU per row (client + server)" if pids_of else "")
        + f"; NUL runs read back differing: {mismatched}; {'within' if within else 'NOT within'} the target "
        f"(median rows/s at most {TARGET:.0%} lower, no row missing)"
    )
    return {"best": best, "median": median, "cpu_us": cpu_us, "missing": missing, "mismatched": mismatched}


def rows_alone_us(runs: list[FinishedRun], repeat: int = 5) -> float:
    """Microseconds per run of ``run_row`` (the escaping included), best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for run in runs:
            run_row(run)
        best = min(best, (time.perf_counter() - started) / len(runs) * 1e6)
    return best


async def count_missing(db: DatabaseManager, written: dict[str, list[FinishedRun]]) -> dict[str, int]:
    """Runs of each variant with no ``pipeline_runs`` row."""
    present = {str(row["run_id"]) for row in await db.fetch_all("SELECT run_id FROM pipeline_runs")}
    return {name: sum(run.record["run_id"] not in present for run in runs) for name, runs in written.items()}


async def compare_nul_rows(db: DatabaseManager, runs: list[FinishedRun], every: int) -> int | str:
    """NUL runs whose row, read back (``read_json``), differs from the run's input and outputs."""
    try:
        from streams.sink.results import read_json
    except ImportError:  # the sink before it escaped NUL: nothing to read back
        return "n/a"
    nul_runs = {run.record["run_id"]: run for i, run in enumerate(runs) if i % every == every - 1}
    rows = await db.fetch_all("SELECT run_id::text AS run_id, input::text AS input, output::text AS output "
                              "FROM pipeline_runs WHERE input::text LIKE '%' || E'\\uE000' || '%'")  # fmt: skip
    found = {row["run_id"]: row for row in rows}
    return int(
        sum(
            run_id not in found
            or read_json(found[run_id]["input"]) != run.record["input"]
            or read_json(found[run_id]["output"]) != run.record["outputs"]
            for run_id, run in nul_runs.items()
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs per variant and round (default 20,000)")
    parser.add_argument("--batch", type=int, default=500, help="runs per committed batch (default 500)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; the variants alternate (default 6)")
    parser.add_argument("--nul-every", type=int, default=50, help="every n-th run carries NUL (default 50: 2%%)")
    parser.add_argument("--quick", action="store_true", help="2,000 runs per variant and round, 4 rounds")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("streams.sink.checkpoint").setLevel(logging.CRITICAL)  # the old sink logs every lost row
    runs, rounds = (2_000, 4) if arguments.quick else (arguments.runs, arguments.rounds)
    asyncio.run(main(runs, arguments.batch, rounds, arguments.nul_every))
