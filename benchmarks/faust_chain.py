"""A hand-written Faust chain: three agents chained by topics, each doing one hop of ``benchmarks.bench_steps``.

    BENCH_FAUST_BROKER=HOST:PORT BENCH_FAUST_APP_ID=G BENCH_FAUST_TOPICS=IN,T1,T2,OUT [BENCH_FAUST_WORK=real] \\
        faust -A benchmarks.faust_chain worker -l warning --without-web

With ``BENCH_FAUST_WORK=real`` the hops call the shipped custom processing pipeline's step objects instead, as
``benchmarks/raw_chain.py --work real`` does (the same functions, ``raw_chain.real_hops``).

Agent 1 consumes IN and sends to T1, agent 2 T1 to T2, agent 3 T2 to OUT; each decodes with orjson, transforms,
encodes and ``await topic.send(...)`` with the record's key and partition: the plain way to write a Faust agent.
Faust acknowledges and commits on its own (at least once). The app is tuned as ``streams/app.py`` tunes the
worker's (a short session timeout, so that the group forms in about a second on the embedded broker) and its
producer and fetch sizes match the worker's (linger 2 ms, 512 KiB batches, 4 MiB per partition fetch).

When agent 1 receives its first event it writes ``{"t0": <time.time()>}`` to ``BENCH_READY_FILE``; the
orchestrator measures from there. The environment is read at import, as ``faust -A`` imports the module.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import time
from collections.abc import AsyncIterable
from typing import Any

import faust
import orjson

from benchmarks.bench_steps import TRIVIAL_HOPS
from benchmarks.raw_chain import Hop, real_hops, write_ready

BROKER = os.environ.get("BENCH_FAUST_BROKER", "127.0.0.1:9092")
APP_ID = os.environ.get("BENCH_FAUST_APP_ID", "bench-faust-chain")
TOPICS = os.environ.get("BENCH_FAUST_TOPICS", "faust.in,faust.t1,faust.t2,faust.out").split(",")
READY_FILE = os.environ.get("BENCH_READY_FILE")
REAL_WORK = os.environ.get("BENCH_FAUST_WORK") == "real"
SESSION_S = 2.0

app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    datadir=os.environ.get("BENCH_FAUST_DATADIR") or tempfile.mkdtemp(prefix="bench-faust-"),
    autodiscover=False,
    web_enabled=False,
    worker_redirect_stdouts=False,
    broker_session_timeout=SESSION_S,
    broker_heartbeat_interval=SESSION_S / 5,
    broker_rebalance_timeout=10.0,
    broker_request_timeout=30.0,
    consumer_auto_offset_reset="earliest",
    consumer_max_fetch_size=4 * 1024 * 1024,
    producer_linger=0.002,
    producer_max_batch_size=512 * 1024,
    producer_acks=-1,
    topic_partitions=4,
    topic_replication_factor=1,
)


def _topic(name: str) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


topics = [_topic(name) for name in TOPICS]
_started = {"ready": False}
_hops: list[tuple[Hop, Hop, Hop]] = []


async def _hops_to_run() -> tuple[Hop, Hop, Hop]:
    """The trivial hops, or the real steps' (loaded on first use: loading is async)."""
    if not _hops:
        _hops.append(await real_hops() if REAL_WORK else TRIVIAL_HOPS)
    return _hops[0]


def _agent(index: int) -> Any:
    source, target = topics[index], topics[index + 1]

    async def hop(stream: AsyncIterable[Any]) -> None:
        transform = (await _hops_to_run())[index]
        is_async = inspect.iscoroutinefunction(transform)
        async for event in stream.events():  # type: ignore[attr-defined]
            if index == 0 and not _started["ready"]:
                _started["ready"] = True
                write_ready(READY_FILE, t0=time.time())
            message = transform(orjson.loads(event.value))
            value = orjson.dumps(await message if is_async else message)  # type: ignore[misc]
            await target.send(key=event.key, value=value, partition=event.message.partition)

    hop.__name__ = hop.__qualname__ = f"hop{index + 1}"
    return app.agent(source, name=f"hop{index + 1}")(hop)


hop1, hop2, hop3 = (_agent(index) for index in range(3))

if __name__ == "__main__":
    app.main()
