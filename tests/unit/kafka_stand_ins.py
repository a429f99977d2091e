"""Typed stand-ins for the clients the worker's modules are handed, recording what they are asked in order.

Each has only the methods the module under test calls, with aiokafka's (or the results sink's) signatures:

- ``StandInProducer``: ``create_batch()`` and ``send_batch(batch, topic, partition=)``, as ``produce()`` and
  ``send()`` in streams/kafka/producer.py use AIOKafkaProducer. A batch takes records until its byte budget is
  spent (its first record always fits, as in aiokafka, unless ``strict``); ``send_batch`` returns a future that is
  done once "the broker acknowledged" the batch: at once (on the next loop turn) or when the test says so.
- ``StandInConsumer``: ``assignment()``, ``pause()``, ``resume()`` and ``commit(offsets)`` of AIOKafkaConsumer.
- ``StandInSink``: ``write(runs, letters)`` of ResultsSink; refuses with DatabaseConnectionError while the database
  is "down" and with DatabaseError (SQLSTATE 22001) for a batch holding a refused run id.

All three append to one ``Journal`` so that a test can check the order of events across them. No I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from ia_modules.database import DatabaseConnectionError, DatabaseError
from streams.sink.results import FinishedRun

Event = tuple[Any, ...]


class Journal(list[Event]):
    """What the stand-ins were asked, in order, e.g. ``("send", "out:0", (b"v1",))``, ``("ack", "out:0")``,
    ``("write", ("r1",), ("r2",))``, ``("commit", {"in:0": 11})``, ``("pause", ("in:0",))``."""

    def kinds(self) -> list[str]:
        return [event[0] for event in self]

    def of(self, kind: str) -> list[Event]:
        return [event for event in self if event[0] == kind]


def where(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def named(tps: Any) -> tuple[str, ...]:
    return tuple(sorted(where(tp.topic, tp.partition) for tp in tps))


@dataclass(frozen=True)
class Appended:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class RecordingBatch:
    """aiokafka's BatchBuilder as ``send()`` uses it: ``append`` gives None once the batch is full."""

    def __init__(self, budget: int, strict: bool) -> None:
        self.budget = budget
        self.strict = strict
        self.records: list[Appended] = []
        self.used = 0

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: int | None, headers: list[tuple[str, bytes]]
    ) -> object | None:
        size = len(key or b"") + len(value or b"")
        if self.used + size > self.budget and (self.records or self.strict):
            return None
        self.used += size
        self.records.append(Appended(key, value, tuple(headers)))
        return object()

    def record_count(self) -> int:
        return len(self.records)


@dataclass
class Handed:
    """One batch handed to the producer, and the future the broker's acknowledgement completes."""

    topic: str
    partition: int
    records: list[Appended]
    future: asyncio.Future[None]

    @property
    def values(self) -> tuple[bytes | None, ...]:
        return tuple(record.value for record in self.records)


class StandInProducer:
    """The part of AIOKafkaProducer that streams/kafka/producer.py calls."""

    def __init__(
        self,
        journal: Journal | None = None,
        *,
        batch_bytes: int = 1024,
        strict: bool = False,
        auto_acknowledge: bool = True,
    ) -> None:
        self.journal = journal if journal is not None else Journal()
        self.batch_bytes = batch_bytes
        self.strict = strict
        self.auto_acknowledge = auto_acknowledge
        self.handed: list[Handed] = []
        self.taking = asyncio.Event()
        """Cleared, ``send_batch`` waits before taking a batch, as aiokafka does while the partition's previous
        batch is still undelivered."""
        self.taking.set()

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch(self.batch_bytes, self.strict)

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        await self.taking.wait()
        handed = Handed(topic, partition, list(batch.records), asyncio.get_running_loop().create_future())
        self.handed.append(handed)
        self.journal.append(("send", where(topic, partition), handed.values))
        if self.auto_acknowledge:
            asyncio.get_running_loop().call_soon(self.acknowledge, handed)
        return handed.future

    def acknowledge(self, handed: Handed, error: BaseException | None = None) -> None:
        """The broker answered for ``handed``: acknowledged it, or failed it with ``error``."""
        if handed.future.done():
            return
        if error is None:
            self.journal.append(("ack", where(handed.topic, handed.partition)))
            handed.future.set_result(None)
        else:
            self.journal.append(("failed", where(handed.topic, handed.partition)))
            handed.future.set_exception(error)

    def acknowledge_all(self) -> None:
        for handed in self.handed:
            self.acknowledge(handed)

    def sent_values(self, topic: str, partition: int) -> list[bytes | None]:
        """Every value handed over for one partition, in the order the producer took them."""
        return [value for h in self.handed if (h.topic, h.partition) == (topic, partition) for value in h.values]


class StandInConsumer:
    """The part of AIOKafkaConsumer the committer calls."""

    def __init__(self, journal: Journal, assigned: set[TopicPartition]) -> None:
        self.journal = journal
        self.assigned = set(assigned)
        self.paused: set[TopicPartition] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.commit_error: BaseException | None = None

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)
        self.journal.append(("pause", named(partitions)))

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)
        self.journal.append(("resume", named(partitions)))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_error is not None:
            self.journal.append(("commit failed", {where(tp.topic, tp.partition): o for tp, o in offsets.items()}))
            raise self.commit_error
        self.committed.update(offsets)
        self.journal.append(("commit", {where(tp.topic, tp.partition): o for tp, o in offsets.items()}))


@dataclass
class StandInSink:
    """ResultsSink.write: a batch of finished runs and dead letters, written in one transaction or not at all."""

    journal: Journal
    reachable: bool = True
    refused: set[str] = field(default_factory=set)
    """Run ids (of runs or letters) the database refuses: a batch holding one is refused whole."""
    refused_runs: set[str] = field(default_factory=set)
    """Run ids whose ``pipeline_runs`` row (but not their letters) the database refuses, as ``refused`` does."""
    rows: list[str] = field(default_factory=list)
    """Run ids written, runs and letters, in order."""
    letters: list[dict[str, Any]] = field(default_factory=list)
    """The letters written, in order."""

    async def write(self, runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        run_ids = tuple(str(run.record["run_id"]) for run in runs)
        letter_ids = tuple(str(letter["run_id"]) for letter in letters)
        if not self.reachable:
            self.journal.append(("unreachable", run_ids, letter_ids))
            raise DatabaseConnectionError("connection refused")
        if self.refused & {*run_ids, *letter_ids} or self.refused_runs & set(run_ids):
            self.journal.append(("refused", run_ids, letter_ids))
            raise DatabaseError("value too long for type character varying(64)", sqlstate="22001")
        self.journal.append(("write", run_ids, letter_ids))
        self.rows.extend([*run_ids, *letter_ids])
        self.letters.extend(letters)
