"""Where runs end up besides the output topic, and in which order: the checkpoint (what a batch produced, made
durable in order: send, acknowledgements, join markers, rows, offsets), the results sink (``pipeline_runs`` and
``dead_letters`` rows, in batches) and dead letters (made for the dead-letter topic, listed and replayed)."""

from streams.sink.checkpoint import Checkpoint, Committer, Produced, RecordPart
from streams.sink.dead_letters import DeadLetters, ReplayOutcome, list_letters, replay_letters
from streams.sink.results import FinishedRun, ResultsSink

__all__ = [
    "Checkpoint",
    "Committer",
    "DeadLetters",
    "FinishedRun",
    "Produced",
    "RecordPart",
    "ReplayOutcome",
    "ResultsSink",
    "list_letters",
    "replay_letters",
]
