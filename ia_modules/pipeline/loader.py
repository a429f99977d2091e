"""Reading pipeline files: JSON with located syntax errors, and looking a pipeline up by id in a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .compiler import PipelinePlan, compile_pipeline
from .errors import ConfigProblem, PipelineConfigError, PipelineNotFoundError


def read_json(path: Path) -> Any:
    """The parsed file; a syntax error becomes a PipelineConfigError with its line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineNotFoundError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PipelineConfigError(str(path), [ConfigProblem("$", f"not UTF-8 text: {exc.reason}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = ConfigProblem("$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        raise PipelineConfigError(str(path), [problem]) from None


def load_plan(path: str | Path) -> PipelinePlan:
    """Read, validate and compile a pipeline file (blocking: call it off the event loop)."""
    file = Path(path)
    return compile_pipeline(read_json(file), str(file), file_stem=file.stem)


def pipeline_files(directory: str | Path) -> list[Path]:
    """The pipeline files of a folder, sorted (``*.json``; sample events are ``*.events.jsonl``)."""
    return sorted(p for p in Path(directory).glob("*.json") if p.is_file())


def find_pipeline(name: str, directory: str | Path) -> Path:
    """``name`` as a path if it is one, else the pipeline with that id in ``directory``."""
    candidate = Path(name)
    if candidate.suffix == ".json" or candidate.is_file():
        if not candidate.is_file():
            raise PipelineNotFoundError(f"no pipeline file '{name}'")
        return candidate
    by_stem = Path(directory) / f"{name}.json"
    if by_stem.is_file():
        return by_stem
    for file in pipeline_files(directory):
        try:
            raw = read_json(file)
        except (PipelineConfigError, PipelineNotFoundError):
            continue
        stream = raw.get("stream") if isinstance(raw, dict) else None
        if isinstance(stream, dict) and stream.get("id") == name:
            return file
    known = ", ".join(p.stem for p in pipeline_files(directory)) or "none"
    raise PipelineNotFoundError(f"no pipeline '{name}' in {directory} (found: {known})")
