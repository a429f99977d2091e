"""The guide's RobustProcessingStep: validate a record, then extract it, reporting errors as data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import fingerprint, is_number

#: The type names config ``field_types`` may use, and the check of each.
TYPE_CHECKS: dict[str, Any] = {
    "string": lambda value: isinstance(value, str),
    "number": is_number,
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "list": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, Mapping),
}


class RobustProcessingStep(Step):
    """Validate a record against config ``required_fields`` and ``field_types`` (``{"amount": "number"}``;
    types string, number, integer, boolean, list, object), then extract it: the selected fields (config
    ``fields``, default the required and typed ones, else all), totals of the numeric ones, lengths of the texts
    and a fingerprint. As in the guide, errors are returned, not raised: ``error_type`` is ``validation`` for
    bad input and ``processing`` for anything unexpected.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        required = self.config.get("required_fields", [])
        if not isinstance(required, list) or not all(isinstance(field, str) for field in required):
            raise ValueError(f"step '{name}': config 'required_fields' must be a list of names, got {required!r}")
        types = self.config.get("field_types", {})
        if not isinstance(types, Mapping) or any(kind not in TYPE_CHECKS for kind in types.values()):
            raise ValueError(
                f"step '{name}': config 'field_types' must map field names to one of {', '.join(TYPE_CHECKS)}, "
                f"got {types!r}"
            )
        self.required_fields: list[str] = required
        self.field_types: dict[str, str] = dict(types)
        fields = self.config.get("fields")
        self.fields: list[str] | None = list(fields) if isinstance(fields, list) else None

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            self._validate(data)
            result = self._safe_processing(data)
            return {"result": result, "status": "success", "errors": []}
        except ValueError as exc:
            return {"error": str(exc), "error_type": "validation", "status": "failed"}
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}", "error_type": "processing", "status": "failed"}

    def _validate(self, data: Mapping[str, Any]) -> None:
        for field in self.required_fields:
            if field not in data:
                raise ValueError(f"Required field '{field}' missing from input data")
        for field, kind in self.field_types.items():
            if field in data and data[field] is not None and not TYPE_CHECKS[kind](data[field]):
                raise ValueError(f"Field '{field}' must be of type {kind}, got {type(data[field]).__name__}")

    def _safe_processing(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Extract the selected fields and describe them."""
        names = self.fields or list(dict.fromkeys([*self.required_fields, *self.field_types])) or sorted(data)
        record: dict[str, Any] = {name: data.get(name) for name in names}
        numbers = {name: value for name, value in record.items() if is_number(value)}
        return {
            "record": record,
            "field_count": len(record),
            "missing_optional": sorted(name for name, value in record.items() if value is None),
            "numeric_total": round(sum(float(value) for value in numbers.values()), 6),
            "numeric_fields": sorted(numbers),
            "text_lengths": {name: len(value) for name, value in record.items() if isinstance(value, str)},
            "fingerprint": fingerprint(record),
        }
