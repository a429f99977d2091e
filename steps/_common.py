"""Small helpers shared by the steps: config coercion, SQL identifier checks, awaiting maybe-async results."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: One SQL identifier (Postgres truncates names at 63 bytes), optionally schema-qualified as ``schema.table``.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
TABLE_NAME_PATTERN = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})?")


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first when it is awaitable: lets a step call sync and async services alike."""
    if inspect.isawaitable(value):
        return await value
    return value


def quoted_table_name(step_name: str, value: Any) -> str:
    """The table name ``value`` double-quoted for SQL (``"schema"."table"``), or ValueError if it is not a
    plain identifier: table names come from config and are spliced into SQL, so nothing else may pass."""
    if not isinstance(value, str) or not TABLE_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"step '{step_name}': invalid table_name {value!r}: expected an identifier matching "
            f"{_IDENTIFIER} or schema.table"
        )
    return ".".join(f'"{part}"' for part in value.split("."))


def config_bool(step_name: str, key: str, value: Any) -> bool:
    """A boolean config value; accepts true/false and their usual spellings as text (as templates may give)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "off", "0", ""}:
        return False
    if isinstance(value, int):
        return value != 0
    raise ValueError(f"step '{step_name}': config '{key}' must be a boolean, got {value!r}")


def config_int(step_name: str, key: str, value: Any, *, minimum: int | None = None) -> int:
    """An integer config value, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"step '{step_name}': config '{key}' must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"step '{step_name}': config '{key}' must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"step '{step_name}': config '{key}' must be >= {minimum}, got {number}")
    return number


def config_float(step_name: str, key: str, value: Any) -> float:
    """A finite number from config."""
    if isinstance(value, bool):
        raise ValueError(f"step '{step_name}': config '{key}' must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"step '{step_name}': config '{key}' must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"step '{step_name}': config '{key}' must be finite, got {value!r}")
    return number


def is_number(value: Any) -> bool:
    """True for finite ints and floats (booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def canonical_json(value: Any) -> str:
    """Stable JSON text of ``value`` (sorted keys, no spaces); non-JSON values are written with ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(value: Any, length: int = 16) -> str:
    """A short sha256 hex digest of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def utc_now_iso() -> str:
    """The current time as an ISO 8601 UTC timestamp (for database rows, never for step outputs)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def text_of(value: Any, *, keys: tuple[str, ...] = ("text",)) -> str | None:
    """The text carried by ``value``: the string itself, or the first string under ``keys`` of a mapping."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in keys:
            candidate = value.get(key)
            if isinstance(candidate, str):
                return candidate
    return None
