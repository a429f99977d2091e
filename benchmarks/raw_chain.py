"""A hand-written raw aiokafka chain: three consume-transform-produce loops in one process, one hop per topic.

    python -m benchmarks.raw_chain --broker HOST:PORT --group G --topics IN,T1,T2,OUT
                                   [--work trivial|real|specialised] [--ready-file PATH]

Each hop is its own consumer group member (group ``G-hop1``, ...), an asyncio task of this one process, sharing
one producer: the same shape as the worker, which is also one process with one producer. A hop runs the loop a
person would write with the worker's at-least-once discipline: ``getmany``, orjson decode, transform, orjson
encode, one producer batch per partition (``create_batch``/``send_batch``), wait for every acknowledgement, then
commit. Records keep their key and partition. ``--work trivial`` runs ``benchmarks.bench_steps``'s hops;
``--work real`` runs the shipped custom processing pipeline's step objects by hand, as
``benchmarks.runner_overhead.hand_written`` does (hop 1 loader + cleaner + checker, hop 2 advanced or standard,
hop 3 formatter). ``--work specialised`` runs ``benchmarks.specialised_hops``: the worker's own work for the
bench pipeline written by hand (record in, the worker's envelope or result record out, so the chain does no
decoding or encoding of its own). It runs until SIGTERM or SIGINT. When hop 1 first gets records it writes
``{"t0": <time.time()>}`` to ``--ready-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.bench_steps import TRIVIAL_HOPS
from benchmarks.specialised_hops import SpecialisedHops
from streams.kafka.cluster import cluster_id
from streams.process import event_loop

ROOT = Path(__file__).resolve().parents[1]
CUSTOM_PROCESSING = ROOT / "pipelines" / "custom_processing.json"

Hop = Callable[[dict[str, Any]], dict[str, Any]] | Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
RecordHop = Callable[[Any], bytes]
"""A hop that reads the consumed record itself and returns the value to produce."""


def write_ready(path: str | None, **info: Any) -> None:
    """Atomically write the ready file (the orchestrator polls for it)."""
    if not path:
        return
    temp = f"{path}.{os.getpid()}.tmp"
    Path(temp).write_text(json.dumps(info))
    os.replace(temp, path)


async def real_hops() -> tuple[Hop, Hop, Hop]:
    """The shipped pipeline's steps split at its topic hops, called as ``hand_written`` calls them."""
    from ia_modules.pipeline.core import Pipeline

    pipeline = await Pipeline.load(CUSTOM_PROCESSING)
    steps = {sid: plan.create() for sid, plan in pipeline.plan.steps.items()}
    threshold = pipeline.plan.parameters["quality_threshold"]
    loader, cleaner, checker = steps["data_loader"], steps["data_cleaner"], steps["quality_checker"]
    advanced, standard, formatter = steps["advanced_processor"], steps["standard_processor"], steps["output_formatter"]

    async def hop_start(event: dict[str, Any]) -> dict[str, Any]:
        try:
            got = await loader.run(dict(event))
            clean = await cleaner.run({**event, **got, "raw_data": got.get("loaded_data")})
            checked = await checker.run({**event, **clean, "cleaned_data": clean.get("cleaned_data")})
        except Exception as exc:  # a real pipeline keeps going: the run fails, the chain does not
            return {"event": event, "error": f"{type(exc).__name__}: {exc}"}
        return {"event": event, "quality": checked}

    async def hop_branch(message: dict[str, Any]) -> dict[str, Any]:
        if "error" in message:
            return message
        event, checked = message["event"], message.pop("quality")
        branch = advanced if checked["quality_score"] > threshold else standard
        try:
            done = await branch.run({**event, **checked, "data": checked.get("validated_data")})
        except Exception as exc:
            return {"event": event, "error": f"{type(exc).__name__}: {exc}"}
        message.update(quality_score=checked.get("quality_score"), processed=done)
        return message

    async def hop_format(message: dict[str, Any]) -> dict[str, Any]:
        event = message["event"]
        result = {"seq": event.get("seq"), "status": "failed", "outputs": None, "error": message.get("error"),
                  "input": event}  # fmt: skip
        if "error" in message:
            return result
        done = message["processed"]
        try:
            output = await formatter.run({**event, **done, "processed_data": done.get("result")})
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            return result
        result["status"] = "success"
        result["outputs"] = {
            "final_result": output.get("formatted_output"),
            "processing_metadata": {
                "quality_score": message.get("quality_score"),
                "processing_type": done.get("processing_type"),
                "total_records": output.get("record_count"),
            },
        }
        return result

    return hop_start, hop_branch, hop_format


class Chain:
    """Three hops, each a consumer group member of its own, sharing a producer."""

    def __init__(
        self,
        broker: str,
        group: str,
        topics: list[str],
        hops: tuple[Hop, Hop, Hop] | tuple[RecordHop, RecordHop, RecordHop],
        ready_file: str | None,
        on_records: bool = False,
    ):
        self.on_records = on_records
        self.broker = broker
        self.group = group
        self.topics = topics
        self.hops = hops
        self.ready_file = ready_file
        self.stopping = asyncio.Event()
        self.consumed = [0, 0, 0]
        self.assigned_at: list[float | None] = [None, None, None]
        self.producer = AIOKafkaProducer(
            bootstrap_servers=broker, acks="all", linger_ms=2, max_batch_size=512 * 1024, enable_idempotence=False
        )

    async def run(self) -> None:
        await self.producer.start()
        try:
            await asyncio.gather(*(self.hop(index) for index in range(3)))
        finally:
            await self.producer.stop()

    async def hop(self, index: int) -> None:
        source, target, transform = self.topics[index], self.topics[index + 1], self.hops[index]
        is_async = inspect.iscoroutinefunction(transform)
        on_records = self.on_records
        consumer = AIOKafkaConsumer(
            source,
            bootstrap_servers=self.broker,
            group_id=f"{self.group}-hop{index + 1}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=400,
            rebalance_timeout_ms=10_000,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        producer = self.producer
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=2000)
                if self.assigned_at[index] is None and consumer.assignment():
                    self.assigned_at[index] = time.time()
                if not batch:
                    continue
                if index == 0 and self.consumed[0] == 0:
                    write_ready(self.ready_file, t0=time.time(), assigned_at=self.assigned_at)
                pending = []
                for tp, records in batch.items():
                    out = producer.create_batch()
                    for record in records:
                        if on_records:
                            value = transform(record)
                        else:
                            message = orjson.loads(record.value or b"{}")
                            result = await transform(message) if is_async else transform(message)  # type: ignore[misc]
                            value = orjson.dumps(result)
                        if out.append(key=record.key, value=value, timestamp=None) is None:
                            pending.append(await producer.send_batch(out, target, partition=tp.partition))
                            out = producer.create_batch()
                            out.append(key=record.key, value=value, timestamp=None)
                    pending.append(await producer.send_batch(out, target, partition=tp.partition))
                await asyncio.gather(*pending)
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
                self.consumed[index] += sum(len(records) for records in batch.values())
        finally:
            await consumer.stop()


async def main(arguments: argparse.Namespace) -> None:
    topics = arguments.topics.split(",")
    if len(topics) != 4:
        raise SystemExit("--topics needs four names: input, hop-1 output, hop-2 output, final output")
    if arguments.work == "specialised":
        specialised = SpecialisedHops(await cluster_id(arguments.broker))
        hops: Any = (specialised.start, specialised.branch, specialised.finish)
    else:
        hops = TRIVIAL_HOPS if arguments.work == "trivial" else await real_hops()
    chain = Chain(
        arguments.broker, arguments.group, topics, hops, arguments.ready_file, arguments.work == "specialised"
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, chain.stopping.set)
    runner = asyncio.ensure_future(chain.run())
    stopping = asyncio.ensure_future(chain.stopping.wait())
    await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not runner.done():  # a hop may sit in getmany: give it a moment, then cancel
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(runner, 5)
    if runner.done() and not runner.cancelled():
        runner.result()
    print(json.dumps({"consumed": chain.consumed}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True, help="IN,T1,T2,OUT")
    parser.add_argument("--work", choices=("trivial", "real", "specialised"), default="trivial")
    parser.add_argument("--ready-file")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop to run on")
    parsed = parser.parse_args()
    event_loop.run(main(parsed), parsed.loop)
