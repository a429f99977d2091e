"""Errors of the pipeline core: one for invalid pipeline files, others for step failures at run time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a pipeline file: where (a JSON path like ``steps[2].inputs.raw``) and what."""

    path: str
    message: str

    def render(self, source: str) -> str:
        return f"{source}: {self.path}: {self.message}"


class PipelineConfigError(ValueError):
    """A pipeline file is invalid; the message lists every problem found, one per line. ``older_forms`` are the
    older-format notes of the same file (see OlderFormatWarning), so that a caller can show them too."""

    def __init__(
        self, source: str, problems: Iterable[ConfigProblem], older_forms: Iterable[ConfigProblem] = ()
    ) -> None:
        self.source = source
        self.problems = list(problems)
        self.older_forms = list(older_forms)
        super().__init__("\n".join(p.render(source) for p in self.problems))


class OlderFormatWarning(FutureWarning):
    """A pipeline file written in an older format of the original project: it loads, read in the current form,
    and each note says what was read how. ``ia-modules validate --fix`` rewrites the file in the current form."""

    def __init__(self, source: str, notes: Iterable[ConfigProblem]) -> None:
        self.source = source
        self.notes = list(notes)
        lines = [note.render(source) for note in self.notes]
        super().__init__("\n".join([*lines, f"('ia-modules validate --fix {source}' rewrites it in the current form)"]))


class PermanentStepError(Exception):
    """Raise it (or a subclass) from a step for a failure that retrying cannot fix, such as an invalid record:
    the step fails at once, whatever its retry policy."""


class StepOutputError(TypeError):
    """A step returned something other than a JSON-serialisable dict."""


class ConditionError(RuntimeError):
    """A ``function`` condition raised or returned something other than a bool."""


class PipelineNotFoundError(LookupError):
    """A pipeline id or path names no pipeline file."""
