"""The guide's OutputFormatterStep: render processed data as JSON, plain text or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

FORMATS = ("json", "text", "csv")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one level of dotted keys (``keywords.0.term``); scalars keep their value."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return {prefix: ""}
        items: dict[str, Any] = {}
        for key, inner in value.items():
            items.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list):
        if not value:
            return {prefix: ""} if prefix else {}
        items = {}
        for index, inner in enumerate(value):
            items.update(flatten(inner, f"{prefix}.{index}" if prefix else str(index)))
        return items
    return {prefix or "value": value}


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OutputFormatterStep(Step):
    """Render ``processed_data`` (a dict is one record, a list is several) in config ``format``:

    - ``json``: canonical JSON (sorted keys), so equal data always gives equal text;
    - ``text``: one ``key: value`` line per flattened field, records separated by a blank line;
    - ``csv``: a header of the union of flattened fields (first-seen order) and one row per record.

    Returns ``formatted_output`` (text), ``format`` and ``record_count``.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        fmt = self.config.get("format", "json")
        if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
            raise ValueError(f"step '{name}': config 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.format = fmt.lower()

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        processed = data.get("processed_data")
        if processed is None:
            raise ValueError(f"step '{self.name}': input 'processed_data' is missing")
        records: list[Any] = processed if isinstance(processed, list) else [processed]
        if self.format == "json":
            output = json.dumps(processed, sort_keys=True, ensure_ascii=False)
        elif self.format == "text":
            output = "\n\n".join(
                "\n".join(f"{key}: {_scalar_text(value)}" for key, value in flatten(record).items())
                for record in records
            )
        else:
            output = self._csv([flatten(record) for record in records])
        return {
            "formatted_output": output,
            "format": self.format,
            "record_count": len(records),
            "status": "success",
        }

    @staticmethod
    def _csv(rows: list[dict[str, Any]]) -> str:
        header: dict[str, None] = {}
        for row in rows:
            header.update(dict.fromkeys(row))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(_scalar_text(row.get(key)) for key in header)
        return buffer.getvalue()
