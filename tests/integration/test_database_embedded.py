"""The embedded PostgreSQL: shared by its users, stopped by the last one, even after a user was killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from ia_modules.database import DatabaseConnectionError, DatabaseManager
from streams.embedded.postgres import EmbeddedPostgres
from tests.postgres_server import run_in_thread

pytestmark = pytest.mark.integration

HOLDER = """
import asyncio, sys
from streams.embedded.postgres import EmbeddedPostgres

async def main():
    await EmbeddedPostgres(sys.argv[1]).start()
    print("started", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_two_users_in_one_process_share_the_server(server_dir: Path) -> None:
    first, second = EmbeddedPostgres(server_dir / "pg"), EmbeddedPostgres(server_dir / "pg")
    url = await first.start()
    assert await second.start() == url
    await first.stop()
    async with DatabaseManager(url, project_migrations_dir=False) as db:
        assert await db.fetch_one("SELECT 1 AS up") == {"up": 1}
    await second.stop()
    assert not (server_dir / "pg" / "postmaster.pid").exists()
    with pytest.raises(DatabaseConnectionError):
        await DatabaseManager(url, project_migrations_dir=False, connect_timeout=2).connect()


def test_a_killed_user_does_not_keep_the_server_running_for_ever(server_dir: Path) -> None:
    pgdata = server_dir / "pg"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(pgdata)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "started"
        holder.send_signal(signal.SIGKILL)  # not reaped: it stays a zombie, which must count as gone
        deadline = time.monotonic() + 10
        while psutil.Process(holder.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)

        async def use_and_stop() -> None:
            async with EmbeddedPostgres(pgdata) as url:
                async with DatabaseManager(url, project_migrations_dir=False) as db:
                    assert await db.fetch_one("SELECT 1 AS up") == {"up": 1}

        run_in_thread(use_and_stop)
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        holder.kill()
        holder.wait()
