"""What running a worker as a command takes: pipelines from a folder, the broker (embedded unless IA_BROKER is set),
the services, the web port, signals, and an orderly stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ia_modules.database import DatabaseManager
from ia_modules.pipeline.compiler import PipelinePlan
from ia_modules.pipeline.loader import load_plan, pipeline_files
from streams.app import create_app
from streams.embedded.broker import embedded_broker, find_recorded_broker
from streams.embedded.postgres import database_turned_off, database_url
from streams.kafka.cluster import BrokerAddressError, parse_broker, redacted_broker
from streams.kafka.security import KafkaSecurity
from streams.metrics import WorkerMetrics
from streams.process.services import build_services
from streams.settings import Settings
from streams.sink.results import ResultsSink
from streams.topology import check_topic_clashes
from streams.worker import Worker, WorkerOptions

logger = logging.getLogger(__name__)

EMBEDDED_SESSION_TIMEOUT_MS = 2000
"""The embedded broker holds a group join for half the session timeout: a short one makes the worker start fast."""


class NoBrokerError(RuntimeError):
    """Neither IA_BROKER nor a running embedded broker."""


def web_port_problem(port: int) -> str | None:
    """Why ``/health`` cannot listen on ``port`` (another process has it), None if it can. Checked before anything
    starts, so that a second worker on the same port says so at once instead of starting without a health page."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds: TIME_WAIT is fine
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            return f"cannot serve /health on port {port} (IA_WEB_PORT): {exc.strerror or exc}"
    return None


def load_plans(directory: Path, topic_prefix: str = "ia", app_id: str = "ia-modules") -> list[PipelinePlan]:
    """Every pipeline of ``directory``; PipelineConfigError for the first invalid one, or for two that share an id
    or a topic (``topic_prefix`` and ``app_id`` name the topics). Files of an older format load, logged as a
    warning."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no folder {directory} (--pipelines or IA_PIPELINES_DIR)")
    plans = [load_plan(file, warn=False) for file in pipeline_files(directory)]
    for plan in plans:  # a file of an older format runs; say once how it is read and how to rewrite it
        for note in plan.older_forms:
            logger.warning("%s: %s: %s", plan.source, note.path, note.message)
        if plan.older_forms:
            logger.warning("%s: older pipeline format: ia-modules validate --fix rewrites it", plan.source)
    if not plans:
        raise FileNotFoundError(f"no pipeline files (*.json) in {directory}")
    check_topic_clashes(plans, topic_prefix, app_id)
    return plans


def check_broker(settings: Settings) -> None:
    """IA_BROKER parsed before anything starts: BrokerAddressError naming the setting and no part of its value."""
    if settings.broker:
        try:
            parse_broker(settings.broker)
        except BrokerAddressError as exc:
            raise BrokerAddressError(f"IA_BROKER: {exc}") from None


async def broker_for_clients(settings: Settings) -> str:
    """The broker ``publish`` and ``consume`` talk to: IA_BROKER, else the embedded one a worker started."""
    check_broker(settings)
    if settings.broker:
        return settings.broker
    recorded = await find_recorded_broker()
    if recorded is None:
        raise NoBrokerError("no broker: set IA_BROKER=kafka://host:port, or start `ia-modules worker` in this folder")
    return recorded


@contextlib.asynccontextmanager
async def migrated_database_url(settings: Settings) -> AsyncIterator[str | None]:
    """IA_DATABASE_URL (None for ``none``), or the embedded PostgreSQL's, running for the block; migrated."""
    if database_turned_off(settings):
        yield None
        return
    async with database_url(settings) as (url, _embedded):
        async with DatabaseManager(url) as migrating:  # no timeout here: a migration may take long
            await migrating.migrate()
        yield url


@contextlib.asynccontextmanager
async def database_for_worker(settings: Settings) -> AsyncIterator[DatabaseManager | None]:
    """The results sink's database (``migrated_database_url``), connected; None for ``IA_DATABASE_URL=none``."""
    async with migrated_database_url(settings) as url:
        if url is None:
            yield None
            return
        # The sink's own pool. A timeout turns a database that stopped answering into an outage the committer
        # reports and retries (without one a write could wait forever, the worker stalled and silent). No pool
        # floor: asyncpg would keep reconnecting in the background through an outage, logging a traceback each
        # time, while the committer already retries with backoff and says so in one line.
        timeout_s = settings.database_timeout_s
        db = DatabaseManager(url, min_pool_size=0, command_timeout=timeout_s, connect_timeout=timeout_s)
        try:
            await db.connect()
            yield db
        finally:
            await db.close()


@contextlib.asynccontextmanager
async def broker_for_worker(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """IA_BROKER, or an embedded broker started for this worker; with the session timeout that suits it."""
    check_broker(settings)
    if settings.broker:
        yield settings.broker, settings.session_timeout_ms or 10_000
        return
    async with embedded_broker() as address:
        yield address, settings.session_timeout_ms or EMBEDDED_SESSION_TIMEOUT_MS


GC_THRESHOLDS = (20_000, 20, 50)
"""The collector's generation thresholds in a worker (Python's defaults are 700, 10, 10)."""


def tune_garbage_collection() -> None:
    """A worker makes many short-lived dicts per record: collect the youngest generation less often, and keep
    what startup loaded (modules, plans, steps) out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _stop_if_failed(task: asyncio.Task[None], worker: Worker) -> None:
    """The Faust app (web server, timers) failed to start: say why and stop the worker, rather than run
    without a health page."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("the worker's Faust app failed to start: %r", task.exception())
        worker.stop()


async def serve(settings: Settings, pipelines_dir: Path, on_ready: Callable[[Worker], None] | None = None) -> Worker:
    """Run a worker until SIGINT or SIGTERM (or ``worker.stop()``); ``on_ready`` is called with it once it
    consumes. Returns it (stopped) for its statistics."""
    plans = await asyncio.to_thread(load_plans, pipelines_dir, settings.topic_prefix, settings.app_id)
    services = await build_services(settings.services)
    try:
        async with contextlib.AsyncExitStack() as stack:
            # the broker and the database start at once; both are cleaned up whatever happens to the other
            broker_entered, db_entered = await asyncio.gather(
                stack.enter_async_context(broker_for_worker(settings)),
                stack.enter_async_context(database_for_worker(settings)),
                return_exceptions=True,
            )
            if isinstance(broker_entered, BaseException):
                raise broker_entered
            if isinstance(db_entered, BaseException):
                raise db_entered
            broker, session_timeout_ms = broker_entered
            db = db_entered
            options = WorkerOptions(
                app_id=settings.app_id,
                topic_prefix=settings.topic_prefix,
                fuse=settings.fuse,
                replication_factor=settings.replication_factor,
                session_timeout_ms=session_timeout_ms,
                batch_max_records=settings.batch_max_records,
                max_record_bytes=settings.max_record_bytes,
                max_json_depth=settings.max_json_depth,
                security=KafkaSecurity.from_settings(settings),
            )
            sink = ResultsSink(db) if db is not None else None
            worker = Worker(plans, broker, services, options, sink, WorkerMetrics() if settings.metrics else None)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, worker.stop)
            app = create_app(worker, web_port=settings.web_port, datadir=Path(".ia") / "faust")
            app_starting = asyncio.create_task(app.start())  # web server and timers start while our group joins
            app_starting.add_done_callback(lambda task: _stop_if_failed(task, worker))
            try:
                await worker.start()
                tune_garbage_collection()
                logger.info("worker started on %s: %s", redacted_broker(broker), ", ".join(p.id for p in plans))
                if on_ready is not None:
                    on_ready(worker)
                await worker.run()
            finally:
                await asyncio.gather(app_starting, return_exceptions=True)
                await app.stop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
    finally:
        await services.cleanup_all()
    return worker
