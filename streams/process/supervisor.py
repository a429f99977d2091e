"""Several worker processes on one machine (``ia-modules worker --processes N``), behind one health page.

A worker runs its stages in one Python thread, so one process uses one core. The supervisor starts what the
workers share once (the embedded broker and database when they are used, the migrations), then N worker
processes with that broker and database: each is a member of the consumer group, so the partitions are split
between them, exactly as for workers on separate machines. A process that dies is started again (the group gives
its partitions to the others meanwhile); SIGINT or SIGTERM stops them all in order. ``/health`` and ``/metrics``
on ``IA_WEB_PORT`` answer for all of them (``/metrics``: each process's series labelled ``process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from aiohttp import web

from streams.embedded.broker import free_port
from streams.embedded.child_processes import die_with_parent, stop_process
from streams.metrics import CONTENT_TYPE, merge_pages, process_registry, render
from streams.process.serve import broker_for_worker, load_plans, migrated_database_url
from streams.settings import Settings

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
"""How long a worker process may take to finish its batch, commit and leave the group before it is killed."""

RESTART_DELAY_S = (1.0, 30.0)
"""The pause before a dead worker process is started again: the first, doubling up to the last while it keeps
dying within ``STEADY_S`` of its start."""

STEADY_S = 60.0
"""A worker process that ran this long before it died is started again after the first delay."""

RELAYED_LINE_BYTES = 1 << 20
"""How much of a line of a worker process's output is buffered before it is passed on (a longer line is passed
on in parts, still as one line)."""

METRICS_TIMEOUT_S = 5.0
"""How long a scrape of the supervisor waits for each worker process's ``/metrics``."""

CONFIG_ERROR_EXIT = 2
"""The exit code of ``ia-modules worker`` for a configuration error: starting it again would not help."""


class WorkerProcessesFailed(RuntimeError):
    """A worker process exited with a configuration error (its own output says which)."""


@dataclass
class WorkerSlot:
    """One of the N worker processes: the one running now, and how often it had to be started again."""

    index: int
    web_port: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    delay_s: float = RESTART_DELAY_S[0]
    restart_at: float | None = None
    """When the process, dead, is to be started again (``time.monotonic()``)."""
    health: tuple[int, dict[str, Any]] = field(default_factory=lambda: (0, {}))
    relays: list[asyncio.Task[None]] = field(default_factory=list)
    """Copying the process's stdout and stderr to ours, each line marked with the process."""


def combined_health(slots: list[WorkerSlot], pipelines: list[str]) -> tuple[int, dict[str, Any]]:
    """200 once every worker process consumes, with the partitions of all of them; 503 before."""
    partitions: dict[str, set[int]] = {}
    processes: list[dict[str, Any]] = []
    databases: set[str] = set()
    consumed = produced = 0
    for slot in slots:
        status, body = slot.health
        for topic, numbers in body.get("partitions", {}).items():
            partitions.setdefault(topic, set()).update(numbers)
        consumed += body.get("consumed", 0)
        produced += body.get("produced", 0)
        if "database" in body:
            databases.add(body["database"])
        processes.append(
            {
                "pid": slot.process.pid if slot.process is not None and slot.process.returncode is None else None,
                "status": body.get("status", "starting" if status else "not answering"),
                "partitions": body.get("partitions", {}),
                "restarts": slot.restarts,
            }
        )
    consuming = all(slot.health[0] == 200 for slot in slots)
    database = "unreachable" if "unreachable" in databases else databases.pop() if len(databases) == 1 else "none"
    body = {
        "status": "consuming" if consuming else "starting",
        "pipelines": pipelines,
        "partitions": {topic: sorted(numbers) for topic, numbers in sorted(partitions.items())},
        "consumed": consumed,
        "produced": produced,
        "database": database,
        "processes": processes,
    }
    return (200 if consuming else 503), body


def worker_environment(
    base: Mapping[str, str], broker: str, session_timeout_ms: int, database_url: str | None, web_port: int
) -> dict[str, str]:
    """A worker process's environment: the supervisor's, with the broker and database it started (or was given)
    and a web port of its own."""
    return {
        **base,
        "IA_BROKER": broker if "://" in broker else f"kafka://{broker}",
        "IA_SESSION_TIMEOUT_MS": str(session_timeout_ms),
        "IA_DATABASE_URL": database_url or "none",
        "IA_WEB_PORT": str(web_port),
        "IA_PROCESSES": "1",
    }


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, settings: Settings, pipelines_dir: Path, processes: int) -> None:
        self.settings = settings
        self.pipelines_dir = pipelines_dir
        self.slots = [WorkerSlot(index, free_port()) for index in range(processes)]
        self.pipelines: list[str] = []
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once every worker process consumes."""
        self._own_metrics = process_registry()
        self._environment_for: Callable[[int], dict[str, str]] | None = None
        """A worker process's environment for its web port (set once the broker and database are known)."""

    async def run(self) -> None:
        """Until SIGINT or SIGTERM (or a worker process's configuration error: WorkerProcessesFailed)."""
        plans = await asyncio.to_thread(  # a bad file fails here, once
            load_plans, self.pipelines_dir, self.settings.topic_prefix, self.settings.app_id
        )
        self.pipelines = [plan.id for plan in plans]
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            async with contextlib.AsyncExitStack() as stack:
                broker, session_ms = await stack.enter_async_context(broker_for_worker(self.settings))
                url = await stack.enter_async_context(migrated_database_url(self.settings))
                base = {**os.environ, "IA_PIPELINES_DIR": str(self.pipelines_dir)}
                self._environment_for = functools.partial(worker_environment, base, broker, session_ms, url)
                await stack.enter_async_context(self._web_pages())
                try:
                    for slot in self.slots:
                        await self._start(slot)
                    await self._watch()
                finally:
                    await asyncio.gather(*(self._stop(slot) for slot in self.slots))
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    async def _start(self, slot: WorkerSlot) -> None:
        assert self._environment_for is not None, "started before the broker and database are known"
        environment = self._environment_for(slot.web_port)
        slot.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=RELAYED_LINE_BYTES,
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor, which stops them in order
            preexec_fn=die_with_parent(),
        )
        slot.started = time.monotonic()
        slot.health = (0, {})
        prefix = f"[worker {slot.index + 1}] ".encode()
        assert slot.process.stdout is not None and slot.process.stderr is not None
        slot.relays = [
            asyncio.create_task(relay_lines(slot.process.stdout, sys.stdout.buffer, prefix)),
            asyncio.create_task(relay_lines(slot.process.stderr, sys.stderr.buffer, prefix)),
        ]

    async def _stop(self, slot: WorkerSlot) -> None:
        if slot.process is not None:
            await stop_process(slot.process, STOP_TIMEOUT_S)
            await asyncio.gather(*slot.relays, return_exceptions=True)

    async def _watch(self) -> None:
        """Poll the worker processes' health; start again the ones that died, after a pause."""
        async with httpx.AsyncClient(timeout=1.0) as client:
            while not self.stopping.is_set():
                for slot in self.slots:
                    await self._restart_if_dead(slot, time.monotonic())
                await asyncio.gather(*(self._poll(client, slot) for slot in self.slots if slot.restart_at is None))
                if combined_health(self.slots, self.pipelines)[0] == 200:
                    self.ready.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.1 if not self.ready.is_set() else 0.5)

    async def _restart_if_dead(self, slot: WorkerSlot, now: float) -> None:
        """A process that exited is started again after its pause (WorkerProcessesFailed for a configuration
        error); the pause doubles while it keeps dying soon after its start."""
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                slot.restart_at = None
                slot.restarts += 1
                slot.web_port = free_port()  # its last one may have been taken meanwhile
                await self._start(slot)
            return
        process = slot.process
        if process is None or process.returncode is None:
            return
        if process.returncode == CONFIG_ERROR_EXIT:
            raise WorkerProcessesFailed(
                f"worker process {slot.index + 1} (pid {process.pid}) stopped with a configuration error "
                "(its output above says which)"
            )
        if now - slot.started >= STEADY_S:
            slot.delay_s = RESTART_DELAY_S[0]
        slot.restart_at = now + slot.delay_s
        logger.warning(
            "worker process %d (pid %d) exited with %s; starting it again in %.0fs",
            slot.index + 1, process.pid, _exit_reason(process.returncode), slot.delay_s,
        )  # fmt: skip
        slot.delay_s = min(RESTART_DELAY_S[1], slot.delay_s * 2)
        slot.health = (0, {})

    async def _poll(self, client: httpx.AsyncClient, slot: WorkerSlot) -> None:
        try:
            response = await client.get(f"http://127.0.0.1:{slot.web_port}/health")
            slot.health = (response.status_code, response.json())
        except (httpx.HTTPError, ValueError):
            slot.health = (0, {})

    async def metrics_page(self, client: httpx.AsyncClient) -> bytes:
        """Every running worker process's ``/metrics``, read now, as one page: each process's series labelled
        ``process="<n>"``, the supervisor's own process metrics ``process="supervisor"``. A process that does not
        answer is left out (Prometheus sees its counters resume, or reset, when it answers again)."""

        async def page_of(slot: WorkerSlot) -> tuple[str, str] | None:
            try:
                response = await client.get(f"http://127.0.0.1:{slot.web_port}/metrics")
                response.raise_for_status()
            except httpx.HTTPError:
                return None
            return str(slot.index + 1), response.text

        running = [slot for slot in self.slots if slot.process is not None and slot.process.returncode is None]
        pages = [page for page in await asyncio.gather(*(page_of(slot) for slot in running)) if page is not None]
        own = await asyncio.to_thread(render, self._own_metrics)
        return await asyncio.to_thread(merge_pages, [*pages, ("supervisor", own.decode())])

    @contextlib.asynccontextmanager
    async def _web_pages(self) -> AsyncIterator[None]:
        """``/health`` on IA_WEB_PORT: the worker processes' answers as last polled (at most 0.5 s old); and
        ``/metrics`` (unless IA_METRICS=0): theirs, read when scraped."""

        async def health(request: web.Request) -> web.Response:
            status, body = combined_health(self.slots, self.pipelines)
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_get("/health", health)
        if self.settings.metrics:
            client = httpx.AsyncClient(timeout=METRICS_TIMEOUT_S)

            async def metrics(request: web.Request) -> web.Response:
                return web.Response(body=await self.metrics_page(client), headers={"Content-Type": CONTENT_TYPE})

            app.router.add_get("/metrics", metrics)
            app.on_cleanup.append(lambda _: client.aclose())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "0.0.0.0", self.settings.web_port)
            await site.start()
            yield
        finally:
            await runner.cleanup()


async def relay_lines(source: asyncio.StreamReader, target: BinaryIO, prefix: bytes) -> None:
    """Copy ``source`` to ``target`` until it ends, ``prefix`` at the start of every line. The writes are a
    terminal's or a log collector's: short, and the worker processes would block the same way on theirs."""
    at_line_start = True
    while True:
        try:
            chunk = await source.readuntil(b"\n")
        except asyncio.IncompleteReadError as ended:
            chunk = ended.partial
        except asyncio.LimitOverrunError as long:  # a line longer than the limit: the part buffered first
            chunk = await source.readexactly(long.consumed)
        if not chunk:
            if not at_line_start:
                target.write(b"\n")
                target.flush()
            return
        target.write(prefix + chunk if at_line_start else chunk)
        target.flush()
        at_line_start = chunk.endswith(b"\n")


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"
