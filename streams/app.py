"""The faust-streaming App of a worker: its lifecycle, its web server (``/health``) and its timers (join
timeouts). The stages' hot path is the worker's own aiokafka consumer beside it (see docs/streaming.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View

from streams.kafka.cluster import bootstrap_servers
from streams.metrics import CONTENT_TYPE, WorkerPage
from streams.worker import Worker

logger = logging.getLogger(__name__)

GAUGES_TIMEOUT_S = 2.0
"""How long a scrape waits for the broker's end offsets (the lag) before it answers with the last ones."""


def health_body(worker: Worker) -> tuple[int, dict[str, Any]]:
    """200 with the worker's partitions once it consumes them; 503 before."""
    partitions: dict[str, list[int]] = {}
    for tp in sorted(worker.assignment):
        partitions.setdefault(tp.topic, []).append(tp.partition)
    body: dict[str, Any] = {
        "status": "consuming" if worker.consuming else "starting",
        "pipelines": [plan.id for plan in worker.plans],
        "partitions": partitions,
        "consumed": worker.stats.consumed,
        "produced": worker.produced,
        "database": worker.committer.database_state if worker.committer is not None else "none",
    }
    return (200 if worker.consuming else 503), body


def sweep_interval_s(worker: Worker) -> float:
    """How often join timeouts are checked: a tenth of the shortest ``join_timeout_s``, between 0.2 and 5 s."""
    timeouts = [plan.model.stream.join_timeout_s for plan in worker.plans]
    return min([max(0.2, min(5.0, timeout / 10)) for timeout in timeouts] or [5.0])


class _WebAndTimers(BootStrategy):
    """Faust starts its web server, sensors and timers, and no Kafka client of its own: the worker's consumer
    and producer do all the Kafka work, and a second consumer group (with its own thread, event loop and
    heartbeats) would only take CPU and GIL time from the hot path."""

    enable_kafka = False


class WorkerApp(faust.App):
    BootStrategy = _WebAndTimers


def create_app(worker: Worker, *, web_port: int, web_host: str = "0.0.0.0", datadir: Path = Path(".ia/faust")) -> Any:
    """A Faust App serving the worker's ``/health`` and ``/metrics`` and running its join-timeout timer."""
    session_s = worker.options.session_timeout_ms / 1000
    datadir.mkdir(parents=True, exist_ok=True)
    app = WorkerApp(
        f"{worker.options.app_id}-app",
        broker=";".join(f"kafka://{server}" for server in bootstrap_servers(worker.broker)),
        web_port=web_port,
        web_bind=web_host,
        web_host="127.0.0.1" if web_host == "0.0.0.0" else web_host,
        datadir=str(datadir),
        autodiscover=False,
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.1, session_s / 5),
        broker_rebalance_timeout=max(session_s, 10.0),
        broker_request_timeout=max(30.0, session_s * 3),
        topic_replication_factor=worker.options.replication_factor,
        worker_redirect_stdouts=False,
        web_enabled=True,
    )

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            status, body = health_body(worker)
            return self.json(body, status=status)

    if worker.metrics is not None:
        page = WorkerPage(worker.metrics)

        @app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                try:
                    await asyncio.wait_for(worker.refresh_gauges(), GAUGES_TIMEOUT_S)
                except Exception as exc:  # the broker is slow or away: the other series are still worth reading
                    logger.debug("consumer lag not refreshed: %r", exc)
                return self.bytes(await page.render(), headers={"Content-Type": CONTENT_TYPE})

    @app.timer(sweep_interval_s(worker))  # type: ignore[untyped-decorator]
    async def expire_joins() -> None:
        await worker.sweep_joins()

    return app
