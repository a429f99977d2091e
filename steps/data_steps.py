"""Steps that bring a record's text into the pipeline: the guide's DataLoaderStep and DataCleanerStep."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import config_bool, config_int

#: Fields the loader tries, in order, when neither config nor inputs name one.
DEFAULT_TEXT_FIELDS = ("text", "body", "content", "message")

_WHITESPACE = re.compile(r"\s+")
#: Typographic characters NFKC leaves alone but that only make text harder to compare.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)


class DataLoaderStep(Step):
    """Take the text of an event into the pipeline as ``loaded_data``.

    The text comes from the input ``raw_text`` when the pipeline maps one, else from the field named by config
    ``text_field``, else from the first of ``text``, ``body``, ``content``, ``message`` present. With
    ``validation_enabled`` (default true) a missing, non-text or blank value is an error, so a malformed event
    fails at the door instead of scoring as empty text. Config ``max_chars`` (default 100,000) caps the size.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.source_type = str(self.config.get("source_type", "event"))
        self.validation_enabled = config_bool(name, "validation_enabled", self.config.get("validation_enabled", True))
        field = self.config.get("text_field")
        if field is not None and (not isinstance(field, str) or not field):
            raise ValueError(f"step '{name}': config 'text_field' must be a field name, got {field!r}")
        self.text_fields: tuple[str, ...] = (field,) if field else DEFAULT_TEXT_FIELDS
        self.max_chars = config_int(name, "max_chars", self.config.get("max_chars", 100_000), minimum=1)

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        field, value = self._find(data)
        if value is None:
            if self.validation_enabled:
                raise ValueError(
                    f"step '{self.name}': the event has no text: expected one of the fields "
                    f"{', '.join(self.text_fields)}"
                )
            value = ""
        if not isinstance(value, str):
            if self.validation_enabled:
                raise ValueError(f"step '{self.name}': field '{field}' must be text, got {type(value).__name__}")
            value = str(value)
        if self.validation_enabled and not value.strip():
            raise ValueError(f"step '{self.name}': field '{field}' is blank")
        if len(value) > self.max_chars:
            raise ValueError(
                f"step '{self.name}': field '{field}' has {len(value)} characters, more than max_chars {self.max_chars}"
            )
        return {
            "loaded_data": {
                "text": value,
                "source_field": field,
                "source_type": self.source_type,
                "characters": len(value),
            },
            "status": "success",
        }

    def _find(self, data: Mapping[str, Any]) -> tuple[str, Any]:
        if data.get("raw_text") is not None:
            return "raw_text", data["raw_text"]
        for field in self.text_fields:
            if data.get(field) is not None:
                return field, data[field]
        return self.text_fields[0], None


class DataCleanerStep(Step):
    """Normalise a text so that later steps measure its content, not its encoding.

    Takes ``raw_data`` (the loader's dict with a ``text`` key, or a string), applies Unicode NFKC, maps curly
    quotes and dashes to ASCII, removes control and format characters (zero-width spaces, BOMs, ...), and
    collapses whitespace; returns ``cleaned_data`` (the input dict with the clean ``text``) and a report of what
    changed. Config ``keep_newlines`` (default false) keeps line breaks while collapsing other whitespace.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.keep_newlines = config_bool(name, "keep_newlines", self.config.get("keep_newlines", False))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        raw = data.get("raw_data")
        if raw is None:
            raise ValueError(f"step '{self.name}': input 'raw_data' is missing")
        if isinstance(raw, str):
            record: dict[str, Any] = {"text": raw}
        elif isinstance(raw, Mapping) and isinstance(raw.get("text"), str):
            record = dict(raw)
        else:
            raise ValueError(
                f"step '{self.name}': input 'raw_data' must be text or a dict with a 'text' string, "
                f"got {type(raw).__name__}"
            )
        original: str = record["text"]
        cleaned, report = self.clean(original)
        record["text"] = cleaned
        record["characters"] = len(cleaned)
        return {"cleaned_data": record, "cleaning_report": report, "status": "success"}

    def clean(self, text: str) -> tuple[str, dict[str, Any]]:
        """The cleaned text and counts of what changed."""
        normalized = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
        unicode_changes = sum(1 for char in text if unicodedata.normalize("NFKC", char).translate(_TYPOGRAPHY) != char)
        kept = []
        removed = 0
        for char in normalized:
            if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs") and char not in "\n\t\r":
                removed += 1
                continue
            kept.append(char)
        stripped = "".join(kept)
        if self.keep_newlines:
            lines = [_WHITESPACE.sub(" ", line).strip() for line in stripped.splitlines()]
            collapsed = "\n".join(line for line in lines if line)
        else:
            collapsed = _WHITESPACE.sub(" ", stripped).strip()
        return collapsed, {
            "original_length": len(text),
            "cleaned_length": len(collapsed),
            "unicode_changes": unicode_changes,
            "control_chars_removed": removed,
            "whitespace_removed": len(stripped) - len(collapsed),
        }
