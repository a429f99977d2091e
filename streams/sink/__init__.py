"""Where runs end up besides the output topic: the results sink (``pipeline_runs`` and ``dead_letters`` rows, in
batches) and dead letters (made for the dead-letter topic, listed and replayed from the table)."""

from streams.sink.dead_letters import DeadLetters, ReplayOutcome, list_letters, replay_letters
from streams.sink.results import FinishedRun, ResultsSink

__all__ = ["DeadLetters", "FinishedRun", "ReplayOutcome", "ResultsSink", "list_letters", "replay_letters"]
