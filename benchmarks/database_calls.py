"""What telling awaited from un-awaited DatabaseManager calls costs the awaited path, in one run.

    python -m benchmarks.database_calls [--calls 20000] [--rounds 7] [--no-postgres]

Since the manager's ``execute``/``fetch_one``/... also run to completion when called without ``await`` (the
guide's way), each call first looks up how its call site uses the value (``ia_modules.database.call_sites``:
``sys._getframe(1)`` and one dictionary lookup) before returning the coroutine. Every variant below is measured
against the coroutine that the method was before that change (``_fetch_one``, the same body, called directly):

    dispatch   ``await db.fetch_one(sql)`` against ``await db._fetch_one(sql)`` with a statement that does no I/O
               (a manager whose ``_fetch_one`` returns at once): the lookup's own cost, per call
    sqlite     the same pair on SQLite ``:memory:`` (``SELECT 1``, through aiosqlite's thread)
    postgres   the same pair on PostgreSQL (``SELECT 1``; IA_BENCH_DATABASE_URL's scratch database, else the
               embedded server), unless ``--no-postgres``
    unawaited  for scale, not a ratio: ``db.fetch_one(sql)`` without await on a running loop, SQLite ``:memory:``
               (each call hops to the private loop and aiosqlite's thread and blocks until it is back)

Rounds interleave the pair (their order alternating). For wall-clock time and for this process's CPU time (which
load from other processes hardly touches), the best per-call time of each is reported, their ratio, and the
median (and range) of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ia_modules.database import DatabaseManager

SQL = "SELECT 1 AS one"


class NoIODatabase(DatabaseManager):
    """A manager whose statement returns at once: what remains is the method call itself."""

    async def _fetch_one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        return None


Measured = tuple[float, float]
"""Per call: wall-clock seconds, and this process's CPU seconds (all its threads: aiosqlite's too)."""


async def awaited(db: DatabaseManager, calls: int) -> Measured:
    """Per ``await db.fetch_one(SQL)``: the public method, which checks its call site first."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await db.fetch_one(SQL)
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


async def plain_coroutine(db: DatabaseManager, calls: int) -> Measured:
    """Per ``await db._fetch_one(SQL)``: the coroutine the method was before, called directly."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await db._fetch_one(SQL)
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


async def unawaited(db: DatabaseManager, calls: int) -> Measured:
    """Per ``db.fetch_one(SQL)`` without await, on this running loop."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        db.fetch_one(SQL)  # type: ignore[unused-coroutine]  # typed as awaited; without await it runs to completion
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


Timer = Callable[[DatabaseManager, int], Awaitable[Measured]]


async def compare(name: str, db: DatabaseManager, calls: int, rounds: int) -> None:
    """Interleaved rounds of the public method and the plain coroutine on ``db``; two lines of figures."""
    await awaited(db, max(calls // 10, 1))  # warm up: the site's classification, caches, connections
    await plain_coroutine(db, max(calls // 10, 1))
    new: list[Measured] = []
    old: list[Measured] = []
    pair: list[tuple[Timer, list[Measured]]] = [(awaited, new), (plain_coroutine, old)]
    for round_number in range(rounds):
        for timer, into in pair if round_number % 2 == 0 else pair[::-1]:
            into.append(await timer(db, calls))
    for index, clock in ((0, "wall"), (1, "cpu")):
        best_new, best_old = min(m[index] for m in new), min(m[index] for m in old)
        ratios = [n[index] / o[index] for n, o in zip(new, old, strict=True) if o[index] > 0]
        print(
            f"{name:9} {clock:4}  awaited {best_new * 1e6:8.3f} us  plain coroutine {best_old * 1e6:8.3f} us  "
            f"difference {(best_new - best_old) * 1e9:+7.0f} ns  ratio of bests {best_new / best_old:.3f}, "
            f"median round {statistics.median(ratios):.3f} ({min(ratios):.3f} to {max(ratios):.3f})"
        )


async def main(calls: int, rounds: int, postgres: bool) -> None:
    logging.getLogger("ia_modules.database").setLevel(logging.ERROR)  # the un-awaited variant's one warning
    print(f"{calls} calls per variant and round, {rounds} rounds")
    await compare("dispatch", NoIODatabase("sqlite:///:memory:", project_migrations_dir=False), calls, rounds)
    sqlite = DatabaseManager("sqlite:///:memory:", project_migrations_dir=False)
    await compare("sqlite", sqlite, calls, rounds)
    measured = [await unawaited(sqlite, max(calls // 4, 1)) for _ in range(rounds)]
    print(
        f"unawaited  {min(m[0] for m in measured) * 1e6:8.3f} us per call (wall), "
        f"{min(m[1] for m in measured) * 1e6:8.3f} us CPU, blocking the loop (SQLite :memory:)"
    )
    await sqlite.close()
    if postgres:
        from benchmarks.sink_inserts import database

        async with database() as (url, where):
            db = DatabaseManager(url, project_migrations_dir=False)
            await compare("postgres", db, max(calls // 4, 1), rounds)
            await db.close()
            print(f"postgres: {where}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL pair")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, not args.no_postgres))


if __name__ == "__main__":
    cli()
