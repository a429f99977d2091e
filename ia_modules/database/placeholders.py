"""Translation of ``?`` placeholders to asyncpg's ``$1, $2, ...``, skipping what is not SQL code.

A ``?`` inside a string literal (``'...'``, ``E'...'``), a quoted identifier, a dollar-quoted body (``$$...$$``,
``$fn$...$fn$``) or a comment is left alone. ``??`` stands for a literal ``?`` (PostgreSQL's jsonb operators
``?``, ``?|``, ``?&``). SQL that already uses ``$1`` placeholders is passed through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_POSITIONAL = re.compile(r"\$[0-9]+")


@dataclass(frozen=True)
class Translation:
    """The SQL for asyncpg and how many ``?`` placeholders it had."""

    sql: str
    count: int


def _ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) > 127


def _end_of_quoted(sql: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the literal opened by ``sql[start] == quote`` (doubled quotes escape; with
    ``backslash``, as in ``E'...'``, so does a backslash). Unterminated: the end of the text."""
    i = start + 1
    n = len(sql)
    while i < n:
        char = sql[i]
        if backslash and char == "\\":
            i += 2
            continue
        if char == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _end_of_block_comment(sql: str, start: int) -> int:
    """Index just past the ``/* ... */`` comment at ``start``; PostgreSQL's block comments nest."""
    depth = 0
    i = start
    n = len(sql)
    while i < n:
        pair = sql[i : i + 2]
        if pair == "/*":
            depth += 1
            i += 2
        elif pair == "*/":
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_non_code(sql: str, i: int) -> int:
    """If a literal, quoted identifier, dollar-quoted body or comment starts at ``i``, the index past it;
    else ``i`` itself."""
    char = sql[i]
    pair = sql[i : i + 2]
    if char == "'":
        escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident_char(sql[i - 2]))
        return _end_of_quoted(sql, i, "'", escaped)
    if char == '"':
        return _end_of_quoted(sql, i, '"', False)
    if pair == "--":
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if pair == "/*":
        return _end_of_block_comment(sql, i)
    if char == "$" and not (i > 0 and _ident_char(sql[i - 1])):
        match = _DOLLAR_TAG.match(sql, i)
        if match:
            end = sql.find(match.group(), match.end())
            return len(sql) if end < 0 else end + len(match.group())
    return i


@lru_cache(maxsize=4096)
def to_numbered(sql: str) -> Translation:
    """``sql`` with each ``?`` placeholder numbered for asyncpg; cached, since the same few statements run
    again and again."""
    pieces: list[str] = []
    count = 0
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        skipped = _skip_non_code(sql, i)
        if skipped != i:
            i = skipped
            continue
        char = sql[i]
        if char == "$" and not (i > 0 and _ident_char(sql[i - 1])) and _POSITIONAL.match(sql, i):
            return Translation(sql, 0)
        if char == "?":
            pieces.append(sql[start:i])
            if sql[i + 1 : i + 2] == "?":
                pieces.append("?")
                i += 2
            else:
                count += 1
                pieces.append(f"${count}")
                i += 1
            start = i
            continue
        i += 1
    pieces.append(sql[start:])
    return Translation("".join(pieces), count)
