"""Steps that use the ``database`` service: the guide's DatabaseWriterStep and PersistentAnalysisStep.

Database calls may be sync (the guide's tests use a plain ``Mock``) or async (``DatabaseManager``): every call's
result is awaited when it is awaitable. SQL uses ``?`` placeholders, which the DatabaseManager translates for
asyncpg, and timestamps are passed as ISO UTC parameters so the same SQL runs on SQLite and PostgreSQL. Table
names come from config, are checked to be plain identifiers when the step is built, and are double-quoted.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ia_modules.pipeline.core import Step

from . import text_analysis as ta
from ._common import canonical_json, config_bool, is_number, maybe_await, quoted_table_name, utc_now_iso

logger = logging.getLogger(__name__)


class DatabaseWriterStep(Step):
    """Insert the transformed text of a record into config ``table_name`` (default ``processed_data``).

    The row is ``(content, metadata, processed_at)``: ``transformed_text``, the whole input as canonical JSON,
    and the current UTC time (which goes to the database only, never into the step's output). As in the guide,
    a database error is reported as ``{"status": "failed", "error": ...}``; with config ``raise_on_error`` true
    it raises instead, so the pipeline's retry policy applies.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.table_name = self.config.get("table_name", "processed_data")
        self.quoted_table = quoted_table_name(name, self.table_name)
        self.raise_on_error = config_bool(name, "raise_on_error", self.config.get("raise_on_error", False))
        self.sql = f"INSERT INTO {self.quoted_table} (content, metadata, processed_at) VALUES (?, ?, ?)"

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        db = self.get_db()
        if not db:
            return {"error": "Database service not available", "status": "failed"}
        content = data.get("transformed_text")
        if content is None:
            raise ValueError(f"step '{self.name}': input 'transformed_text' is missing")
        if not isinstance(content, str):
            raise ValueError(f"step '{self.name}': 'transformed_text' must be text, got {type(content).__name__}")
        params = (content, canonical_json(data), utc_now_iso())
        try:
            await maybe_await(db.execute(self.sql, params))
        except Exception as exc:
            if self.raise_on_error:
                raise
            logger.warning("step %s: insert into %s failed: %s", self.name, self.table_name, exc)
            return {"error": f"Database write failed: {exc}", "status": "failed"}
        return {"database_write": "success", "table": self.table_name, "record_count": 1, "status": "success"}


class PersistentAnalysisStep(Step):
    """Analyse a record, store the analysis in config ``table_name`` (default ``analysis_results``) and compare
    it with this step's last ten stored analyses from other runs.

    The analysis is real: for a text (config ``text_field``, default ``text``) the quality score and statistics
    of :mod:`steps.text_analysis`; for a list of numbers (config ``values_field``, default ``values``) their
    statistics and a stability score (1 minus the coefficient of variation, clamped). ``confidence`` grows with
    the sample size (n / (n + 10)). Needs the ``database`` service; if storing fails the analysis is still
    returned, with ``database_stored`` false, as in the guide.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.table_name = self.config.get("table_name", "analysis_results")
        table = quoted_table_name(name, self.table_name)
        self.text_field = str(self.config.get("text_field", "text"))
        self.values_field = str(self.config.get("values_field", "values"))
        self.insert_sql = (
            f"INSERT INTO {table} (execution_id, step_name, input_summary, analysis_data, confidence_score, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self.history_sql = (
            f"SELECT analysis_data, confidence_score, created_at FROM {table} "
            "WHERE step_name = ? AND execution_id <> ? ORDER BY created_at DESC LIMIT 10"
        )

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        db = self.get_db()
        if not db:
            raise RuntimeError(f"step '{self.name}': the database service is required for persistent analysis")
        analysis_result = self.analyse(data)
        execution_id = (self.services.get("execution_id") if self.services else None) or "unknown"
        try:
            await maybe_await(
                db.execute(
                    self.insert_sql,
                    (
                        str(execution_id),
                        self.name,
                        canonical_json(data)[:500],
                        canonical_json(analysis_result),
                        analysis_result["confidence"],
                        utc_now_iso(),
                    ),
                )
            )
            historical = await maybe_await(db.fetch_all(self.history_sql, (self.name, str(execution_id))))
        except Exception as exc:
            logger.warning("step %s: storing the analysis in %s failed: %s", self.name, self.table_name, exc)
            return {
                "analysis_result": analysis_result,
                "database_error": str(exc),
                "database_stored": False,
                "status": "partial_success",
            }
        return {
            "analysis_result": analysis_result,
            "historical_comparison": self.compare_with_history(analysis_result, historical or []),
            "database_stored": True,
            "status": "success",
        }

    def analyse(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The analysis of the record's text or values; ValueError when it has neither."""
        text = data.get(self.text_field)
        values = data.get(self.values_field)
        if isinstance(text, str) and text.strip():
            components = ta.quality_components(text)
            stats = ta.TextStatistics.of(text)
            return {
                "kind": "text",
                "score": ta.quality_score(components),
                "confidence": round(stats.words / (stats.words + 10), 4),
                "metrics": {**stats.as_dict(), "components": components},
                "details": f"text of {stats.words} words in {stats.sentences} sentences",
            }
        if isinstance(values, list) and values:
            if not all(is_number(value) for value in values):
                raise ValueError(f"step '{self.name}': '{self.values_field}' must hold only finite numbers")
            numbers = [float(value) for value in values]
            mean = statistics.fmean(numbers)
            spread = statistics.pstdev(numbers)
            variation = spread / abs(mean) if mean else (0.0 if spread == 0 else math.inf)
            return {
                "kind": "values",
                "score": round(max(0.0, 1.0 - variation), 4),
                "confidence": round(len(numbers) / (len(numbers) + 10), 4),
                "metrics": {
                    "count": len(numbers),
                    "mean": round(mean, 6),
                    "stdev": round(spread, 6),
                    "min": min(numbers),
                    "max": max(numbers),
                    "median": statistics.median(numbers),
                },
                "details": f"{len(numbers)} values, mean {mean:.4g}, stdev {spread:.4g}",
            }
        raise ValueError(
            f"step '{self.name}': nothing to analyse: expected a non-empty text in '{self.text_field}' "
            f"or a non-empty list of numbers in '{self.values_field}'"
        )

    @staticmethod
    def compare_with_history(current: Mapping[str, Any], historical: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The current score against the mean score of the stored analyses (rows with ``analysis_data``)."""
        scores = []
        for row in historical:
            raw = row.get("analysis_data")
            try:
                stored = json.loads(raw) if isinstance(raw, str | bytes) else raw
            except ValueError:
                continue
            if isinstance(stored, Mapping) and is_number(stored.get("score")):
                scores.append(float(stored["score"]))
        if not scores:
            return {"comparison": "no_history"}
        average = statistics.fmean(scores)
        current_score = float(current.get("score", 0.0))
        return {
            "current_score": current_score,
            "historical_average": round(average, 4),
            "history_size": len(scores),
            "performance": "above_average" if current_score > average else "below_average",
            "improvement": round(current_score - average, 4),
        }
