"""Reading pipeline files: JSON with located syntax errors, looking a pipeline up by id in a folder, and rewriting
a file of an older format in the current form."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .compiler import PipelinePlan, compile_pipeline
from .errors import ConfigProblem, PipelineConfigError, PipelineNotFoundError
from .models import pipeline_id_from_file_name
from .older_forms import Conversion, upgrade


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


def load_plan(path: str | Path, *, warn: bool = True) -> PipelinePlan:
    """Read, validate and compile a pipeline file (blocking: call it off the event loop). A file of an older
    format gives an OlderFormatWarning (``warn=False``: its notes are only in the plan's or error's
    ``older_forms``)."""
    file = Path(path)
    return compile_pipeline(read_json(file), str(file), file_stem=file.stem, warn=warn)


def rewrite_in_current_form(path: str | Path) -> list[Conversion]:
    """Rewrite a file written in an older format in the current form, atomically, keeping its other content and
    the order of its keys; what was rewritten, or nothing (the file untouched) when there was nothing to do. The
    older forms that are refused (``flow.transitions``, older condition types) are left for the author."""
    file = Path(path)
    raw = read_json(file)
    text = file.read_text(encoding="utf-8")
    if not isinstance(raw, dict):
        return []
    upgraded = upgrade(raw)
    if not upgraded.conversions:
        return []
    indent = _indent_of(text)
    rewritten = json.dumps(upgraded.config, indent=indent, ensure_ascii=False) + ("\n" if text.endswith("\n") else "")
    _write_atomically(file, rewritten)
    return upgraded.conversions


def _indent_of(text: str) -> int | str:
    """The indentation of the file's first indented line (two spaces when it has none), to write it alike."""
    found = re.search(r"\n([ \t]+)\S", text)
    if found is None:
        return 2
    whitespace = found.group(1)
    return whitespace if "\t" in whitespace else len(whitespace)


def _write_atomically(file: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``file``, then rename it over ``file``: a reader sees the old
    content or the new, never half of it. The file keeps its permissions."""
    mode = file.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


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
    known = []
    for file in pipeline_files(directory):
        try:
            raw = read_json(file)
        except (PipelineConfigError, PipelineNotFoundError):
            continue
        stream = raw.get("stream") if isinstance(raw, dict) else None
        given = stream.get("id") if isinstance(stream, dict) else None
        pipeline_id = given if isinstance(given, str) and given else pipeline_id_from_file_name(file.stem)
        if pipeline_id == name:
            return file
        known.append(pipeline_id)
    raise PipelineNotFoundError(f"no pipeline '{name}' in {directory} (found: {', '.join(known) or 'none'})")
