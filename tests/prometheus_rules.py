"""The alert rules of deploy/prometheus, read for the tests: ``alert_expressions()`` gives each alert's name and PromQL
expression, ``alerting_rules()`` the whole rules, ``promtool()`` the path of Prometheus's checker.

The files are YAML. PyYAML is used when it is importable; it is not a dependency of the project, so without it
``read_yaml`` reads them with a small reader of the block-style YAML they are written in (block mappings and
sequences, plain and quoted scalars, ``|`` and ``>`` block scalars, ``[]``/``{}`` and one-line flow sequences,
comments) and fails, naming the line, on anything else (anchors, tags, multi-line plain or quoted scalars, several
documents). Plain scalars stay strings with that reader (``for: 5m``, ``severity: page``, ``5`` alike).
tests/e2e/test_prometheus_rules.py checks what it reads against what a real Prometheus loads from the same file.
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "alerts.yml"
"""The alert rules Prometheus evaluates (``rule_files`` of prometheus.yml)."""
RULES_TEST_FILE = PROMETHEUS_DIR / "alerts_test.yml"
"""``promtool test rules`` cases of every alert."""
CONFIG_FILE = PROMETHEUS_DIR / "prometheus.yml"
"""The scrape configuration of the docker-compose deployment."""

PROMTOOL = "/usr/bin/promtool"
"""Where the Debian package ``prometheus`` puts the checker."""


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule as the rules file writes it (``for`` as written, e.g. ``"5m"``, or ``""``)."""

    name: str
    expr: str
    for_: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def alerting_rules(path: Path = RULES_FILE) -> list[AlertRule]:
    """Every alerting rule of every group of ``path``, in file order (recording rules are left out)."""
    document = read_yaml(path)
    rules: list[AlertRule] = []
    for group in (document or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" not in rule:
                continue
            rules.append(
                AlertRule(
                    name=str(rule["alert"]),
                    expr=str(rule["expr"]).strip(),
                    for_=str(rule.get("for") or ""),
                    labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                    annotations={str(k): str(v) for k, v in (rule.get("annotations") or {}).items()},
                )
            )
    return rules


def alert_expressions(path: Path = RULES_FILE) -> list[tuple[str, str]]:
    """``(alert name, PromQL expression)`` of every alerting rule of ``path``, in file order."""
    return [(rule.name, rule.expr) for rule in alerting_rules(path)]


def promtool() -> str:
    """The path of ``promtool``; fails the test (never skips it) when it is not installed."""
    found = PROMTOOL if Path(PROMTOOL).is_file() else shutil.which("promtool")
    if found is None:
        pytest.fail(
            f"promtool is not installed ({PROMTOOL} is missing): run `make system-packages`, which installs the "
            "Debian package `prometheus` (it brings promtool, which checks deploy/prometheus)",
            pytrace=False,
        )
    return found


def read_yaml(path: Path) -> Any:
    """``path`` parsed: with PyYAML's ``safe_load`` when it is importable, else with ``read_block_yaml``."""
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return read_block_yaml(path.read_text(encoding="utf-8"), str(path))
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- a reader of block-style YAML ----------------------------------------------------------------------------------


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not read."""


_KEY = re.compile(
    r"""^(?P<key>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^\s'"#\[\]{},&*!|>%@`-][^#]*?|-[^\s#][^#]*?):(?:\s+|$)"""
)
_BLOCK_SCALAR = re.compile(r"^(?P<style>[|>])(?P<chomp>[-+]?)\s*(?:#.*)?$")


def read_block_yaml(text: str, source: str = "<yaml>") -> Any:
    """``text`` parsed as block-style YAML (see the module's docstring for what is read)."""
    return _BlockReader(text, source).document()


class _BlockReader:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.at = 0
        # A "- " item's first line is read as if its dash were a space: (line, indent, content) to read instead.
        self.pending: tuple[int, int, str] | None = None

    def fail(self, line: int, why: str) -> YamlSubsetError:
        return YamlSubsetError(f"{self.source}:{line + 1}: {why} (tests/prometheus_rules.py reads block YAML only)")

    def peek(self) -> tuple[int, int, str] | None:
        """The next line that is not blank or a comment: (index, indent, content without the indent)."""
        if self.pending is not None:
            return self.pending
        while self.at < len(self.lines):
            raw = self.lines[self.at]
            stripped = raw.lstrip(" ")
            if stripped.startswith("\t"):
                raise self.fail(self.at, "a tab in the indentation")
            if stripped and not stripped.startswith("#"):
                if stripped in ("---", "...") or stripped.startswith(("--- ", "%")):
                    raise self.fail(self.at, "document markers and directives")
                return self.at, len(raw) - len(stripped), stripped.rstrip()
            self.at += 1
        return None

    def advance(self) -> None:
        if self.pending is not None:
            self.pending = None
        else:
            self.at += 1

    def document(self) -> Any:
        first = self.peek()
        if first is None:
            return None
        value = self.node(first[1])
        rest = self.peek()
        if rest is not None:
            raise self.fail(rest[0], "unexpected indentation")
        return value

    def node(self, indent: int) -> Any:
        line = self.peek()
        assert line is not None and line[1] == indent
        content = line[2]
        if content == "-" or content.startswith("- "):
            return self.sequence(indent)
        if _KEY.match(content):
            return self.mapping(indent)
        self.advance()
        value = self.scalar(content, line[0])
        self.no_continuation(indent)
        return value

    def sequence(self, indent: int) -> list[Any]:
        items: list[Any] = []
        while (line := self.peek()) is not None and line[1] == indent and (line[2] == "-" or line[2].startswith("- ")):
            index, _, content = line
            rest = content[1:].lstrip(" ")
            self.advance()
            if rest and not rest.startswith("#"):
                self.pending = (index, indent + len(content) - len(rest), rest)
                items.append(self.node(self.pending[1]))
            else:
                items.append(self.child(indent, in_sequence=True))
        return items

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (line := self.peek()) is not None and line[1] == indent:
            index, _, content = line
            match = _KEY.match(content)
            if match is None or content.startswith("- "):
                raise self.fail(index, "expected `key: value`")
            key = self.scalar(match["key"].rstrip(), index)
            if not isinstance(key, str):
                raise self.fail(index, "a key that is not a scalar")
            if key in result:
                raise self.fail(index, f"key {key!r} twice")
            value = content[match.end() :]
            self.advance()
            block = _BLOCK_SCALAR.match(value)
            if block is not None:
                result[key] = self.block_scalar(indent, block["style"], block["chomp"])
            elif value and not value.startswith("#"):
                result[key] = self.scalar(value, index)
                self.no_continuation(indent)
            else:
                result[key] = self.child(indent, in_sequence=False)
        if (line := self.peek()) is not None and line[1] > indent:
            raise self.fail(line[0], "unexpected indentation")
        return result

    def child(self, indent: int, *, in_sequence: bool) -> Any:
        """The value on the lines under a `key:` or `-` left empty: more indented, or a sequence at the indent of a
        mapping's key; none is null."""
        line = self.peek()
        if line is None or line[1] < indent:
            return None
        if line[1] > indent:
            return self.node(line[1])
        if not in_sequence and (line[2] == "-" or line[2].startswith("- ")):
            return self.sequence(indent)
        return None

    def no_continuation(self, indent: int) -> None:
        line = self.peek()
        if line is not None and line[1] > indent:
            raise self.fail(line[0], "a scalar continued on the next line (write it on one line, or use `|`)")

    def block_scalar(self, indent: int, style: str, chomp: str) -> str:
        """The lines of a `|` or `>` scalar (more indented than its key), with the chomping `-`, `+` or none."""
        body: list[str] = []
        block_indent: int | None = None
        while self.at < len(self.lines):
            raw = self.lines[self.at]
            stripped = raw.lstrip(" ")
            if stripped:
                here = len(raw) - len(stripped)
                if here <= indent:
                    break
                if block_indent is None:
                    block_indent = here
                elif here < block_indent:
                    raise self.fail(self.at, "a block scalar line less indented than its first")
                elif here > block_indent and style == ">":
                    raise self.fail(self.at, "a more indented line in a folded scalar")
                body.append(raw[block_indent:])
            else:
                body.append("")
            self.at += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if not body:
            return ""
        if style == "|":
            text = "\n".join(body)
        else:  # folded: the lines of a paragraph joined by a space; each empty line between them a newline
            text = body[0]
            for previous, part in itertools.pairwise(body):
                if part == "":
                    text += "\n"
                elif previous == "":
                    text += part
                else:
                    text += " " + part
        if chomp == "-":
            return text
        return text + "\n" * (1 + trailing if chomp == "+" else 1)

    def scalar(self, text: str, index: int) -> Any:
        text = text.strip()
        if text.startswith("'"):
            end = _closing_single(text)
            if end is None:
                raise self.fail(index, "a single-quoted scalar not closed on its line")
            self.only_comment_after(text[end + 1 :], index)
            return text[1:end].replace("''", "'")
        if text.startswith('"'):
            end = _closing_double(text)
            if end is None:
                raise self.fail(index, "a double-quoted scalar not closed on its line")
            self.only_comment_after(text[end + 1 :], index)
            try:
                decoded: str = json.loads(text[: end + 1])
            except ValueError as exc:
                raise self.fail(index, f"a double-quoted escape JSON does not have: {exc}") from exc
            return decoded
        if text.startswith(("[", "{")):
            return self.flow(text, index)
        if text.startswith(("&", "*", "!", "|", ">", "%", "@", "`")):
            raise self.fail(index, f"{text[0]!r} (anchors, aliases, tags and reserved indicators)")
        plain = re.split(r"\s#", text, maxsplit=1)[0].rstrip()
        if plain in ("", "~", "null", "Null", "NULL"):
            return None
        return plain

    def flow(self, text: str, index: int) -> Any:
        body = re.split(r"\s#", text, maxsplit=1)[0].rstrip()
        if body in ("[]", "{}"):
            return [] if body == "[]" else {}
        if body.startswith("[") and body.endswith("]"):
            items = [item.strip() for item in body[1:-1].split(",")]
            if any(not item or item[0] in "[]{}" or ": " in item for item in items):
                raise self.fail(index, "a flow sequence of anything but simple scalars")
            return [self.scalar(item, index) for item in items]
        raise self.fail(index, "a flow collection other than [], {} and [a, b, ...]")

    def only_comment_after(self, rest: str, index: int) -> None:
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            raise self.fail(index, f"text after a quoted scalar: {rest!r}")


def _closing_single(text: str) -> int | None:
    position = 1
    while (position := text.find("'", position)) != -1:
        if text[position + 1 : position + 2] == "'":
            position += 2
            continue
        return position
    return None


def _closing_double(text: str) -> int | None:
    position = 1
    while position < len(text):
        if text[position] == "\\":
            position += 2
            continue
        if text[position] == '"':
            return position
        position += 1
    return None
