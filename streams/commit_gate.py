"""What must be durable before a batch's offsets are committed, beyond the broker's acknowledgements: the
results sink's rows. While the database is unreachable the gate holds the offsets back, pauses the
worker's partitions (it keeps polling, so it stays in its group, and takes in nothing more), and retries
with backoff; once the rows are written it commits and resumes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from ia_modules.database import DatabaseConnectionError, DatabaseError

from .sink import FinishedRun, ResultsSink

logger = logging.getLogger("ia_modules.streams.sink")

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 30.0


@dataclass
class GateStats:
    rows_written: int = 0
    letters_written: int = 0
    outages: int = 0
    rows_rejected: int = 0
    commits_failed: int = 0


@dataclass
class CommitGate:
    consumer: AIOKafkaConsumer
    sink: ResultsSink | None
    stats: GateStats = field(default_factory=GateStats)
    _runs: list[FinishedRun] = field(default_factory=list)
    _letters: list[dict[str, Any]] = field(default_factory=list)
    _held: dict[TopicPartition, int] = field(default_factory=dict)
    _retry_at: float = 0.0
    _delay_s: float = INITIAL_RETRY_DELAY_S

    @property
    def holding(self) -> bool:
        """Offsets are held back because the database is away."""
        return bool(self._held)

    @property
    def database_state(self) -> str:
        """For the health page: ``none`` (no results sink), ``unreachable`` (since the last write failed for
        want of a connection), or ``ok``."""
        if self.sink is None:
            return "none"
        return "unreachable" if self._delay_s != INITIAL_RETRY_DELAY_S else "ok"

    async def complete(
        self, offsets: dict[TopicPartition, int], runs: list[FinishedRun], letters: list[dict[str, Any]]
    ) -> None:
        """Write the rows, then commit ``offsets``; if the database is away, hold them and pause."""
        holding = self.holding
        self._runs.extend(runs)
        self._letters.extend(letters)
        self._held.update(offsets)
        if not await self._flush():
            self.consumer.pause(*self.consumer.assignment())
        elif holding:  # the database came back while batches taken in before the pause were completing
            await self._resume()
        else:
            await self._commit()

    async def add(self, runs: list[FinishedRun], letters: list[dict[str, Any]]) -> None:
        """Rows that come from no consumed record (join timeouts): written now, or with the next flush."""
        self._runs.extend(runs)
        self._letters.extend(letters)
        if not self._held:
            await self._flush()

    async def retry_if_due(self) -> None:
        """While holding, try the database again once the backoff has passed."""
        if self._held and time.monotonic() >= self._retry_at and await self._flush():
            await self._resume()

    async def _resume(self) -> None:
        logger.warning("the database is back: %d held offsets committed, consuming again", len(self._held))
        await self._commit()
        self.consumer.resume(*self.consumer.assignment())

    def drop(self) -> None:
        """Partitions were revoked: what is held will be consumed again by their next owner."""
        self._runs.clear()
        self._letters.clear()
        self._held.clear()

    async def _flush(self) -> bool:
        if self.sink is None or not (self._runs or self._letters):
            self._runs.clear()
            self._letters.clear()
            return True
        try:
            try:
                await self.sink.write(self._runs, self._letters)
                self.stats.rows_written += len(self._runs)
                self.stats.letters_written += len(self._letters)
            except DatabaseConnectionError:
                raise
            except DatabaseError:
                await self._write_one_by_one()
        except DatabaseConnectionError as exc:
            if self._delay_s == INITIAL_RETRY_DELAY_S:
                self.stats.outages += 1
                logger.warning("the database is unreachable (%s): holding offsets and pausing; retrying", exc)
            self._retry_at = time.monotonic() + self._delay_s
            self._delay_s = min(self._delay_s * 2, MAX_RETRY_DELAY_S)
            return False
        self._runs.clear()
        self._letters.clear()
        self._delay_s = INITIAL_RETRY_DELAY_S
        return True

    async def _write_one_by_one(self) -> None:
        """A batch the database refused: write its rows singly, so one bad row does not hold back the rest.
        A row refused on its own is logged with its run id (its result is on the output topic); losing the
        connection meanwhile is an outage like any other (rows already written are written again, harmlessly)."""
        assert self.sink is not None
        for run in self._runs:
            try:
                await self.sink.write([run], [])
                self.stats.rows_written += 1
            except DatabaseConnectionError:
                raise
            except DatabaseError as exc:
                self.stats.rows_rejected += 1
                logger.error("pipeline_runs refused run %s: %s", run.record.get("run_id"), exc)
        for letter in self._letters:
            try:
                await self.sink.write([], [letter])
                self.stats.letters_written += 1
            except DatabaseConnectionError:
                raise
            except DatabaseError as exc:
                self.stats.rows_rejected += 1
                logger.error("dead_letters refused a letter of run %s: %s", letter.get("run_id"), exc)

    async def _commit(self) -> None:
        offsets = {tp: offset for tp, offset in self._held.items() if tp in self.consumer.assignment()}
        self._held.clear()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            self.stats.commits_failed += 1
            logger.warning("commit failed (the records will be processed again by their new owner): %s", exc)
