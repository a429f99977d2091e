"""One fetched batch from fetch to commit, and the order in which what it produced becomes durable.

The stage runner appends what running a record produced to ``Produced``: records to send (envelopes, results,
dead letters, join state), the markers of joins that fired, finished runs and dead letters for the results sink.
A ``Checkpoint`` is a fetched batch's ``Produced`` with the offsets it consumed; ``Committer.commit`` makes it
durable in one order: send, wait for the broker's acknowledgements, write the join markers (only now, so a
crash before them fires those joins again rather than never), write the sink's rows, commit the offsets.

While the database is unreachable the committer holds the offsets back, pauses the worker's partitions (it
keeps polling, so it stays in its group, and takes in nothing more), and retries with backoff; once the rows
are written it commits and resumes. A batch the database refuses for any other reason is written row by row; a
run whose row is refused on its own becomes an ``internal_error`` dead letter, on the topic and in the table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from ia_modules.database import DatabaseConnectionError, DatabaseError
from streams.kafka.producer import Emission, Sent, produce
from streams.kafka.records import now_ms
from streams.metrics.catalog import SinkSeries, WorkerMetrics

if TYPE_CHECKING:  # the sink's package imports this module
    from streams.sink.results import FinishedRun, ResultsSink

logger = logging.getLogger(__name__)

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 30.0


class Produced:
    """What running records produced, in the order ``Committer.commit`` makes it durable."""

    __slots__ = ("join_markers", "join_state", "letters", "runs", "sends")

    def __init__(self) -> None:
        self.sends: list[Emission] = []
        """Records to produce at once: envelopes for later stages, results, dead letters."""
        self.join_state: list[Emission] = []
        """Changelog records of join state (partial, seeded, deleted): produced at once, with ``sends``."""
        self.join_markers: list[Emission] = []
        """Changelog records saying a join fired: produced once ``sends`` are acknowledged."""
        self.runs: list[FinishedRun] = []
        """Finished runs, for ``pipeline_runs``."""
        self.letters: list[dict[str, Any]] = []
        """Dead letters (also among ``sends``), for the ``dead_letters`` table."""

    def extend(self, other: Produced) -> None:
        self.sends.extend(other.sends)
        self.join_state.extend(other.join_state)
        self.join_markers.extend(other.join_markers)
        self.runs.extend(other.runs)
        self.letters.extend(other.letters)

    def __bool__(self) -> bool:
        return bool(self.sends or self.join_state or self.join_markers or self.runs or self.letters)

    def to_send(self) -> list[Emission]:
        """What is produced first, before the acknowledgements are awaited."""
        return self.sends + self.join_state if self.join_state else self.sends


class RecordPart:
    """The part of a ``Produced`` that one record adds (from its creation on, while records of one partition
    run one after the other): what the stage runner checks before the record is done, and replaces when the
    run must end another way. Join state and markers are not part of it: a join's state changes stand."""

    __slots__ = ("letters", "out", "runs", "sends_from")

    def __init__(self, out: Produced) -> None:
        self.out = out
        self.sends_from = len(out.sends)
        self.runs = len(out.runs)
        self.letters = len(out.letters)

    def replace(self) -> None:
        """Take back the record's sends, finished runs and letters, for what replaces them."""
        del self.out.sends[self.sends_from :]
        del self.out.runs[self.runs :]
        del self.out.letters[self.letters :]


@dataclass
class Checkpoint:
    """One fetched batch: what its records produced and the offsets to commit once that is durable."""

    produced: Produced = field(default_factory=Produced)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    consumed: int = 0
    submitted: float = 0.0
    """When its records were handed to the producer (``time.perf_counter``), for ``ia_produce_latency_seconds``."""


@dataclass
class CommitStats:
    produced: int = 0
    rows_written: int = 0
    letters_written: int = 0
    outages: int = 0
    rows_rejected: int = 0
    commits_failed: int = 0


@dataclass
class Committer:
    """Makes checkpoints durable in order, for one worker's producer, consumer and results sink."""

    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    sink: ResultsSink | None
    metrics: WorkerMetrics | None = None
    stats: CommitStats = field(default_factory=CommitStats)
    _runs: list[FinishedRun] = field(default_factory=list)
    _letters: list[dict[str, Any]] = field(default_factory=list)
    _held: dict[TopicPartition, int] = field(default_factory=dict)
    _retry_at: float = 0.0
    _delay_s: float = INITIAL_RETRY_DELAY_S
    _sink_series: SinkSeries | None = None

    def __post_init__(self) -> None:
        if self.metrics is not None and self.sink is not None:
            self._sink_series = self.metrics.sink_series()
            self._sink_series.up.set(1)  # connected at start: up until a write fails

    async def commit(self, checkpoint: Checkpoint, sent: asyncio.Task[Sent] | None = None) -> None:
        """Send what ``checkpoint`` produced (or wait for ``sent``, its sends already handed to the producer) and
        its acknowledgements, write its join markers, write its rows, then commit its offsets; if the database
        is away, hold the offsets and pause."""
        produced = checkpoint.produced
        if sent is None:
            self.stats.produced += await produce(self.producer, produced.to_send())
        else:
            self.stats.produced += await (await sent).acknowledged()
        metrics = self.metrics
        if metrics is not None:
            if checkpoint.submitted:
                metrics.produce_latency.child().observe(time.perf_counter() - checkpoint.submitted)
            if produced.letters:
                metrics.dead_letters_produced(produced.letters)
        if produced.join_markers:
            self.stats.produced += await produce(self.producer, produced.join_markers)
        holding = self.holding
        self._runs.extend(produced.runs)
        self._letters.extend(produced.letters)
        self._held.update(checkpoint.offsets)
        if not await self._flush():
            self.consumer.pause(*self.consumer.assignment())
        elif holding:  # the database came back while batches taken in before the pause were completing
            await self._resume()
        elif self._held:
            await self._commit()

    @property
    def holding(self) -> bool:
        """Offsets or rows are held back because the database is away."""
        return bool(self._held or self._runs or self._letters)

    @property
    def database_state(self) -> str:
        """For the health page: ``none`` (no results sink), ``unreachable`` (since the last write failed for
        want of a connection), or ``ok``."""
        if self.sink is None:
            return "none"
        return "unreachable" if self._delay_s != INITIAL_RETRY_DELAY_S else "ok"

    async def retry_if_due(self) -> None:
        """While holding, try the database again once the backoff has passed."""
        if self.holding and time.monotonic() >= self._retry_at and await self._flush():
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
        """Write the rows held; True once they are durable (at once without a results sink)."""
        if self.sink is None or not (self._runs or self._letters):
            self._durable()
            return True
        series = self._sink_series
        started = time.perf_counter()
        try:
            try:
                await self.sink.write(self._runs, self._letters)
                self.stats.rows_written += len(self._runs)
                self.stats.letters_written += len(self._letters)
                if series is not None:
                    series.runs_written.value += len(self._runs)
                    series.letters_written.value += len(self._letters)
            except DatabaseConnectionError:
                raise
            except DatabaseError:
                await self._write_one_by_one()
        except DatabaseConnectionError as exc:
            if series is not None:
                series.up.set(0)
            if self._delay_s == INITIAL_RETRY_DELAY_S:
                self.stats.outages += 1
                logger.warning("the database is unreachable (%s): holding offsets and pausing; retrying", exc)
            self._retry_at = time.monotonic() + self._delay_s
            self._delay_s = min(self._delay_s * 2, MAX_RETRY_DELAY_S)
            return False
        if series is not None:
            series.wrote(time.perf_counter() - started)
        self._durable()
        self._delay_s = INITIAL_RETRY_DELAY_S
        return True

    def _durable(self) -> None:
        """The runs and letters held are durable: counted (``ia_runs_total`` and the latencies), then let go."""
        if self.metrics is not None and self._runs:
            self.metrics.runs_durable(self._runs, now_ms())
        self._runs.clear()
        self._letters.clear()

    async def _write_one_by_one(self) -> None:
        """A batch the database refused: write its rows singly, so one bad row does not hold back the rest.

        A run whose row is refused on its own becomes an ``internal_error`` dead letter with the database's
        reason, produced to its pipeline's dead-letter topic (and acknowledged) once every run was tried, then
        written with the other letters. A letter refused on its own is logged with its run id (it is on the
        topic). Losing the connection meanwhile is an outage like any other: rows already written are written
        again, harmlessly; once the refused runs' letters are produced, those runs are done with."""
        assert self.sink is not None
        series = self._sink_series
        refused = Produced()
        for run in self._runs:
            try:
                await self.sink.write([run], [])
                self.stats.rows_written += 1
                if series is not None:
                    series.runs_written.value += 1
            except DatabaseConnectionError:
                raise
            except DatabaseError as exc:
                self.stats.rows_rejected += 1
                if series is not None:
                    series.runs_refused.value += 1
                self._refused(run, exc, refused)
        if refused.sends:
            self.stats.produced += await produce(self.producer, refused.sends)
            if self.metrics is not None:
                self.metrics.dead_letters_produced(refused.letters)
        if self.metrics is not None:  # a refused run's result is on the output topic: it is done with
            self.metrics.runs_durable(self._runs, now_ms())
        self._runs.clear()
        self._letters.extend(refused.letters)
        for letter in self._letters:
            try:
                await self.sink.write([], [letter])
                self.stats.letters_written += 1
                if series is not None:
                    series.letters_written.value += 1
            except DatabaseConnectionError:
                raise
            except DatabaseError as exc:
                self.stats.rows_rejected += 1
                if series is not None:
                    series.letters_refused.value += 1
                logger.error(
                    "dead_letters refused a letter of run %s (it is on the topic): %s", letter.get("run_id"), exc
                )

    @staticmethod
    def _refused(run: FinishedRun, exc: DatabaseError, out: Produced) -> None:
        """The dead letter of a run whose ``pipeline_runs`` row the database refused, into ``out``."""
        run_id = run.record.get("run_id")
        if run.dead_letters is None:  # a run no stage runner finished (no dead-letter topic to tell)
            logger.error("pipeline_runs refused run %s: %s", run_id, exc)
            return
        code = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        run.dead_letters.row_refused(run, f"pipeline_runs refused the run's row{code}: {exc}", out)
        logger.warning(
            "pipeline_runs refused run %s; its dead letter goes to %s: %s", run_id, run.dead_letters.topic, exc
        )

    async def _commit(self) -> None:
        offsets = {tp: offset for tp, offset in self._held.items() if tp in self.consumer.assignment()}
        self._held.clear()
        if not offsets:
            return
        started = time.perf_counter()
        try:
            await self.consumer.commit(offsets)
            if self.metrics is not None:
                self.metrics.commit_duration.child().observe(time.perf_counter() - started)
        except (CommitFailedError, IllegalStateError) as exc:
            self.stats.commits_failed += 1
            logger.warning("commit failed (the records will be processed again by their new owner): %s", exc)
