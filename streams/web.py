"""The worker's web port: ``/health`` (200 with its partitions once consuming, 503 before)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .worker import Worker


def health_body(worker: Worker) -> tuple[int, dict[str, object]]:
    partitions: dict[str, list[int]] = {}
    for tp in sorted(worker.assignment):
        partitions.setdefault(tp.topic, []).append(tp.partition)
    body: dict[str, object] = {
        "status": "consuming" if worker.consuming else "starting",
        "pipelines": [plan.id for plan in worker.plans],
        "partitions": partitions,
        "consumed": worker.stats.consumed,
        "produced": worker.stats.produced,
    }
    return (200 if worker.consuming else 503), body


async def start_web(worker: Worker, host: str, port: int) -> web.AppRunner:
    """Serve the health page; the caller cleans up the returned runner."""

    async def health(request: web.Request) -> web.Response:
        status, body = health_body(worker)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
