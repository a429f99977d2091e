"""Unit tests of the steps' own logic, each called as the framework does: ``await step.work(data)``.

No network beyond a local pytest-httpserver for the HTTP steps (with a real ``httpx.AsyncClient``), and the
database steps use an in-memory SQLite connection behind the DatabaseManager's call shape (sync and async).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from unittest.mock import Mock

import httpx
import pytest
from pytest_httpserver import HTTPServer

from ia_modules.pipeline.services import ServiceRegistry, current_execution_id
from steps import text_analysis as ta
from steps.analysis_steps import AdvancedProcessorStep, QualityCheckerStep, StandardProcessorStep
from steps.batch import BatchProcessingStep, ParallelProcessingStep
from steps.data_steps import DataCleanerStep, DataLoaderStep
from steps.database_steps import DatabaseWriterStep, PersistentAnalysisStep
from steps.http_steps import APICallStep, EnhancedAPIStep
from steps.ingest_steps import (
    ApplyCalibrationStep,
    CalibrationLookupStep,
    InvalidRecordError,
    MarkForReviewStep,
    ReadingValidatorStep,
    SummariseReadingsStep,
    TransientUpstreamError,
)
from steps.order_steps import (
    FulfilmentPlannerStep,
    OrderDecisionStep,
    OrderIntakeStep,
    PricingStep,
    ReviewQueueStep,
    RiskScoringStep,
)
from steps.output_steps import OutputFormatterStep
from steps.robust import RobustProcessingStep
from steps.transform import ConditionalProcessingStep, DataTransformStep

GOOD_TEXT = (
    "The hiking boots are comfortable from the first day. After a twelve mile trail with wet sections my feet "
    "stayed dry, and the ankle support is noticeably better than my previous pair. Sizing runs slightly large, "
    "so consider ordering half a size down."
)


def services(**named: Any) -> ServiceRegistry:
    registry = ServiceRegistry()
    for name, service in named.items():
        registry.register(name, service)
    return registry


@pytest.fixture
def run_id() -> Any:
    """Set the run in progress, as the runner does. Each async test runs in its own task, in a copy of the
    context, so the id never leaks into other tests."""

    def start(value: str) -> None:
        current_execution_id.set(value)

    return start


# --- text analysis -----------------------------------------------------------------------------------------


def test_words_and_sentences() -> None:
    text = "It's late. Are you there?  Yes! trailing fragment"
    assert ta.words(text) == ["It's", "late", "Are", "you", "there", "Yes", "trailing", "fragment"]
    assert ta.sentences(text) == ["It's late.", "Are you there?", "Yes!", "trailing fragment"]


def test_keywords_rank_by_count_then_first_appearance() -> None:
    text = "Cache misses slow the cache. Slow disks make cache misses worse, disks too."
    assert ta.keywords(text, 3) == [
        {"term": "cache", "count": 3},
        {"term": "misses", "count": 2},
        {"term": "slow", "count": 2},
    ]


def test_syllable_estimate() -> None:
    assert [ta.syllables(word) for word in ("cat", "table", "make", "reading", "a")] == [1, 2, 1, 2, 1]


def test_quality_components_penalise_each_problem() -> None:
    good = ta.quality_components(GOOD_TEXT)
    assert ta.quality_score(good) == 1.0
    assert ta.quality_components(GOOD_TEXT.upper())["shouting"] == 0.0
    assert ta.quality_components("buy now buy now cheap cheap cheap best price buy now")["repetition"] < 0.5
    assert ta.quality_components("1234 5678 #### ab")["alphabetic"] == 0.0
    assert ta.quality_components("")["length"] == 0.0
    assert ta.quality_score(ta.quality_components("")) == 0.0


# --- data steps --------------------------------------------------------------------------------------------


async def test_loader_takes_first_known_text_field() -> None:
    step = DataLoaderStep("loader", {"source_type": "kafka", "validation_enabled": True})
    result = await step.work({"customer_id": "c1", "body": "Hello there.", "message": "ignored"})
    assert result["loaded_data"] == {
        "text": "Hello there.",
        "source_field": "body",
        "source_type": "kafka",
        "characters": 12,
    }


async def test_loader_prefers_raw_text_input_then_configured_field() -> None:
    step = DataLoaderStep("loader", {"text_field": "comment"})
    assert (await step.work({"comment": "from config", "text": "x"}))["loaded_data"]["text"] == "from config"
    result = await step.work({"comment": "from config", "raw_text": "from inputs"})
    assert result["loaded_data"]["source_field"] == "raw_text"
    assert result["loaded_data"]["text"] == "from inputs"


async def test_loader_rejects_missing_blank_and_non_text() -> None:
    step = DataLoaderStep("loader", {})
    with pytest.raises(ValueError, match="no text: expected one of the fields text, body, content, message"):
        await step.work({"customer_id": "c1"})
    with pytest.raises(ValueError, match="'text' is blank"):
        await step.work({"text": "   "})
    with pytest.raises(ValueError, match="'text' must be text, got int"):
        await step.work({"text": 42})
    with pytest.raises(ValueError, match="more than max_chars 5"):
        await DataLoaderStep("loader", {"max_chars": 5}).work({"text": "too long"})


async def test_loader_without_validation_accepts_anything() -> None:
    step = DataLoaderStep("loader", {"validation_enabled": "false"})
    assert (await step.work({}))["loaded_data"]["text"] == ""
    assert (await step.work({"text": 42}))["loaded_data"]["text"] == "42"


def test_loader_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="validation_enabled"):
        DataLoaderStep("loader", {"validation_enabled": "maybe"})


async def test_cleaner_normalises_unicode_controls_and_whitespace() -> None:
    text = "\ufeffThe  \u201c\uff46\uff55\uff4c\uff4c\u201d\u00a0width\u200b text\t\r\nends\u2014here\x07 "
    raw = {"text": text, "source_field": "text"}
    result = await DataCleanerStep("cleaner").work({"raw_data": raw})
    cleaned = result["cleaned_data"]
    assert cleaned["text"] == 'The "full" width text ends-here'
    assert cleaned["source_field"] == "text"
    assert cleaned["characters"] == len(cleaned["text"])
    report = result["cleaning_report"]
    assert report["control_chars_removed"] == 3  # BOM, zero-width space, bell
    assert report["original_length"] == len(raw["text"])
    assert report["cleaned_length"] == len(cleaned["text"])
    assert report["unicode_changes"] == 8  # 4 full-width letters, 2 curly quotes, a no-break space, a dash


async def test_cleaner_keeps_newlines_when_asked_and_accepts_plain_text() -> None:
    step = DataCleanerStep("cleaner", {"keep_newlines": True})
    result = await step.work({"raw_data": "first   line \n\n\n  second\tline  "})
    assert result["cleaned_data"]["text"] == "first line\nsecond line"


async def test_cleaner_rejects_missing_or_wrong_input() -> None:
    with pytest.raises(ValueError, match="'raw_data' is missing"):
        await DataCleanerStep("cleaner").work({"text": "not mapped"})
    with pytest.raises(ValueError, match="got list"):
        await DataCleanerStep("cleaner").work({"raw_data": ["a"]})


# --- analysis steps ----------------------------------------------------------------------------------------


async def test_quality_checker_scores_good_text_above_threshold() -> None:
    result = await QualityCheckerStep("qc", {"threshold": 0.8}).work({"cleaned_data": {"text": GOOD_TEXT}})
    assert result["quality_score"] == 1.0
    assert result["passes_threshold"] is True
    assert result["issues"] == []
    assert result["validated_data"] == {"text": GOOD_TEXT, "quality_score": 1.0}
    assert set(result["quality_details"]) == set(ta.QUALITY_WEIGHTS)


async def test_quality_checker_scores_shouting_spam_low_and_says_why() -> None:
    step = QualityCheckerStep("qc", {"threshold": 0.8})
    result = await step.work({"cleaned_data": "BUY NOW!!! BUY NOW!!! CHEAP CHEAP CHEAP!!!"})
    assert 0.0 <= result["quality_score"] < 0.5
    assert result["passes_threshold"] is False
    assert any(issue.startswith("shouting:") for issue in result["issues"])
    assert any(issue.startswith("repetition:") for issue in result["issues"])


async def test_quality_checker_is_monotonic_in_obvious_cases_and_deterministic() -> None:
    step = QualityCheckerStep("qc")
    score = (await step.work({"cleaned_data": GOOD_TEXT}))["quality_score"]
    shouted = (await step.work({"cleaned_data": GOOD_TEXT.upper()}))["quality_score"]
    short = (await step.work({"cleaned_data": "Comfortable boots."}))["quality_score"]
    assert score > shouted and score > short
    assert await step.work({"cleaned_data": GOOD_TEXT}) == await step.work({"cleaned_data": GOOD_TEXT})


async def test_quality_checker_threshold_is_exclusive() -> None:
    result = await QualityCheckerStep("qc", {"threshold": 1.0}).work({"cleaned_data": GOOD_TEXT})
    assert result["quality_score"] == 1.0
    assert result["passes_threshold"] is False


async def test_quality_checker_rejects_missing_input_and_bad_threshold() -> None:
    with pytest.raises(ValueError, match="'cleaned_data' is missing"):
        await QualityCheckerStep("qc").work({"text": GOOD_TEXT})
    with pytest.raises(ValueError, match="'threshold' must be a number"):
        QualityCheckerStep("qc", {"threshold": "high"})


async def test_advanced_processor_computes_keywords_summary_readability_and_tone() -> None:
    text = (
        "The cache layer was rewritten. Cache hits now avoid the database entirely. "
        "Latency improved and the team is happy. Cache invalidation remains the hard part."
    )
    result = await AdvancedProcessorStep("adv").work({"data": {"text": text, "quality_score": 0.93}})
    assert result["processing_type"] == "advanced"
    body = result["result"]
    assert body["keywords"][0] == {"term": "cache", "count": 3}
    assert body["statistics"]["words"] == 25
    assert body["statistics"]["sentences"] == 4
    assert body["summary"] == "Cache hits now avoid the database entirely. Cache invalidation remains the hard part."
    assert body["readability"]["band"] in {"easy", "standard", "difficult", "very_difficult"}
    assert body["tone"]["label"] == "positive"
    assert body["quality_score"] == 0.93


async def test_standard_processor_previews_and_counts() -> None:
    text = "word " * 60
    result = await StandardProcessorStep("std", {"preview_chars": 20}).work({"data": text.strip()})
    assert result["processing_type"] == "standard"
    assert result["result"]["preview"] == "word word word word\u2026"
    assert result["result"]["statistics"] == {"characters": 299, "words": 60, "sentences": 1}
    assert result["result"]["keywords"] == [{"term": "word", "count": 60}]


async def test_processors_reject_missing_data() -> None:
    with pytest.raises(ValueError, match="input 'data' is missing"):
        await AdvancedProcessorStep("adv").work({})
    with pytest.raises(ValueError, match="got int"):
        await StandardProcessorStep("std").work({"data": 3})


# --- output formatter --------------------------------------------------------------------------------------

RECORD = {"name": "boots", "scores": [1, 2], "meta": {"ok": True, "note": None}}


async def test_formatter_json_is_canonical() -> None:
    result = await OutputFormatterStep("fmt", {"format": "json"}).work({"processed_data": RECORD})
    assert result["formatted_output"] == json.dumps(RECORD, sort_keys=True)
    assert json.loads(result["formatted_output"]) == RECORD
    assert result["record_count"] == 1


async def test_formatter_text_flattens_fields() -> None:
    result = await OutputFormatterStep("fmt", {"format": "text"}).work({"processed_data": RECORD})
    assert result["formatted_output"] == "name: boots\nscores.0: 1\nscores.1: 2\nmeta.ok: true\nmeta.note: "


async def test_formatter_csv_has_union_header_and_a_row_per_record() -> None:
    records = [{"a": 1, "b": "x,y"}, {"a": 2, "c": {"d": 3}}]
    result = await OutputFormatterStep("fmt", {"format": "CSV"}).work({"processed_data": records})
    rows = list(csv.reader(io.StringIO(result["formatted_output"])))
    assert rows == [["a", "b", "c.d"], ["1", "x,y", ""], ["2", "", "3"]]
    assert result["record_count"] == 2
    assert result["format"] == "csv"


async def test_formatter_rejects_unknown_format_and_missing_data() -> None:
    with pytest.raises(ValueError, match="step 'fmt': config 'format' must be one of json, text, csv, got 'xml'"):
        OutputFormatterStep("fmt", {"format": "xml"})
    with pytest.raises(ValueError, match="'processed_data' is missing"):
        await OutputFormatterStep("fmt").work({})


# --- DataTransformStep and ConditionalProcessingStep -------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        ("uppercase", "HELLO WORLD"),
        ("lowercase", "hello world"),
        ("reverse", "dlroW olleH"),
        ("title", "Hello World"),
        ("none", "Hello World"),
    ],
)
async def test_transform_types(transform: str, expected: str) -> None:
    step = DataTransformStep("t", {"transform_type": transform, "field_name": "msg"})
    result = await step.work({"msg": "Hello World"})
    assert result == {
        "transformed_text": expected,
        "original_text": "Hello World",
        "transform_type": transform,
        "status": "success",
    }


async def test_transform_rejects_unknown_type_missing_and_non_text_fields() -> None:
    with pytest.raises(ValueError, match="step 't': unknown transform_type 'rot13'"):
        DataTransformStep("t", {"transform_type": "rot13"})
    with pytest.raises(ValueError, match="input field 'text' is missing"):
        await DataTransformStep("t").work({"message": "x"})
    with pytest.raises(ValueError, match="must be text, got list"):
        await DataTransformStep("t").work({"text": ["x"]})


async def test_conditional_processing_chooses_by_threshold() -> None:
    step = ConditionalProcessingStep("cond", {"threshold": 0.6})
    high = await step.work({"quality_score": 0.9, "text": GOOD_TEXT})
    assert high["processing_type"] == "high_quality"
    assert high["processed_result"]["algorithm"] == "advanced"
    assert high["processed_result"]["confidence"] == 0.8
    assert high["processed_result"]["keywords"][0] == "hiking"
    low = await step.work({"quality_score": 0.6, "text": "Two sentences here. And another one."})
    assert low["processing_type"] == "standard"
    assert low["processed_result"]["confidence"] == 0.5
    assert (low["processed_result"]["words"], low["processed_result"]["sentences"]) == (6, 2)
    assert low["threshold_used"] == 0.6


async def test_conditional_processing_rejects_non_numeric_score() -> None:
    with pytest.raises(ValueError, match="quality_score must be a number"):
        await ConditionalProcessingStep("cond").work({"quality_score": "high"})


# --- database steps ----------------------------------------------------------------------------------------


class SqliteDatabase:
    """An in-memory SQLite database with the DatabaseManager's call shape (``?`` placeholders, rows as dicts)."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:")
        self.connection.row_factory = sqlite3.Row

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.connection.execute(sql, params)
        self.connection.commit()

    def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(sql, params)]


class AsyncSqliteDatabase(SqliteDatabase):
    """The same with coroutine methods, as the async DatabaseManager has; records that calls were awaited."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = 0

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:  # type: ignore[override]
        self.awaited += 1
        super().execute(sql, params)

    async def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:  # type: ignore[override]
        self.awaited += 1
        return super().fetch_all(sql, params)


PROCESSED_DDL = 'CREATE TABLE "processed" (content TEXT, metadata TEXT, processed_at TEXT)'
ANALYSIS_DDL = (
    "CREATE TABLE analysis_results (execution_id TEXT, step_name TEXT, input_summary TEXT, analysis_data TEXT, "
    "confidence_score REAL, created_at TEXT)"
)


async def test_database_writer_sends_quoted_sql_and_parameters() -> None:
    db = Mock()
    step = DatabaseWriterStep("writer", {"table_name": "analytics.processed"})
    step.set_services(services(database=db))
    result = await step.work({"transformed_text": "HELLO", "id": 7})

    assert result == {
        "database_write": "success",
        "table": "analytics.processed",
        "record_count": 1,
        "status": "success",
    }
    sql, params = db.execute.call_args.args
    assert sql == 'INSERT INTO "analytics"."processed" (content, metadata, processed_at) VALUES (?, ?, ?)'
    assert params[0] == "HELLO"
    assert json.loads(params[1]) == {"id": 7, "transformed_text": "HELLO"}
    assert datetime.fromisoformat(params[2]).utcoffset() is not None  # an ISO UTC timestamp, for the DB only


async def test_database_writer_inserts_into_a_real_table_awaiting_async_db() -> None:
    db = AsyncSqliteDatabase()
    await db.execute(PROCESSED_DDL)
    step = DatabaseWriterStep("writer", {"table_name": "processed"})
    step.set_services(services(database=db))
    await step.work({"transformed_text": "one"})
    await step.work({"transformed_text": "two"})
    rows = await db.fetch_all("SELECT content, metadata FROM processed ORDER BY rowid")
    assert [row["content"] for row in rows] == ["one", "two"]
    assert json.loads(rows[0]["metadata"]) == {"transformed_text": "one"}


@pytest.mark.parametrize(
    "table", ["x; DROP TABLE y", "1table", "a.b.c", 'qu"ote', "", "t" * 64, "spaced name", ["list"]]
)
def test_database_steps_reject_bad_table_names(table: Any) -> None:
    with pytest.raises(ValueError, match=r"step 'writer': invalid table_name") as info:
        DatabaseWriterStep("writer", {"table_name": table})
    assert repr(table) in str(info.value)
    with pytest.raises(ValueError, match=r"step 'writer': invalid table_name"):
        PersistentAnalysisStep("writer", {"table_name": table})


async def test_database_writer_reports_or_raises_db_errors() -> None:
    db = SqliteDatabase()  # no table: the insert fails
    step = DatabaseWriterStep("writer", {"table_name": "missing_table"})
    step.set_services(services(database=db))
    result = await step.work({"transformed_text": "x"})
    assert result["status"] == "failed"
    assert "no such table: missing_table" in result["error"]

    strict = DatabaseWriterStep("writer", {"table_name": "missing_table", "raise_on_error": True})
    strict.set_services(services(database=db))
    with pytest.raises(sqlite3.OperationalError):
        await strict.work({"transformed_text": "x"})


async def test_database_writer_without_db_or_text() -> None:
    step = DatabaseWriterStep("writer")
    assert await step.work({"transformed_text": "x"}) == {"error": "Database service not available", "status": "failed"}
    step.set_services(services(database=Mock()))
    with pytest.raises(ValueError, match="'transformed_text' is missing"):
        await step.work({"text": "x"})


async def test_persistent_analysis_stores_and_compares_with_other_runs(run_id: Any) -> None:
    db = AsyncSqliteDatabase()
    await db.execute(ANALYSIS_DDL)
    step = PersistentAnalysisStep("analysis")
    step.set_services(services(database=db))

    run_id("run-1")
    first = await step.work({"text": GOOD_TEXT})
    assert first["status"] == "success" and first["database_stored"] is True
    assert first["historical_comparison"] == {"comparison": "no_history"}
    analysis = first["analysis_result"]
    assert analysis["kind"] == "text"
    assert analysis["score"] == ta.quality_score(ta.quality_components(GOOD_TEXT))
    assert analysis["confidence"] == round(43 / 53, 4)  # 43 words

    run_id("run-2")
    second = await step.work({"text": "WORST. SERVICE. EVER!!!"})
    comparison = second["historical_comparison"]
    assert comparison["historical_average"] == analysis["score"]
    assert comparison["history_size"] == 1
    assert comparison["performance"] == "below_average"
    assert comparison["improvement"] == round(second["analysis_result"]["score"] - analysis["score"], 4)

    rows = await db.fetch_all("SELECT execution_id, step_name, confidence_score FROM analysis_results")
    assert [(row["execution_id"], row["step_name"]) for row in rows] == [("run-1", "analysis"), ("run-2", "analysis")]
    assert db.awaited >= 4


async def test_persistent_analysis_of_numbers() -> None:
    db = SqliteDatabase()
    db.execute(ANALYSIS_DDL)
    step = PersistentAnalysisStep("analysis")
    step.set_services(services(database=db))
    result = await step.work({"values": [2, 4, 4, 4, 5, 5, 7, 9]})
    analysis = result["analysis_result"]
    assert analysis["metrics"] == {"count": 8, "mean": 5.0, "stdev": 2.0, "min": 2.0, "max": 9.0, "median": 4.5}
    assert analysis["score"] == 0.6  # 1 - 2/5
    assert analysis["confidence"] == round(8 / 18, 4)


async def test_persistent_analysis_errors() -> None:
    step = PersistentAnalysisStep("analysis")
    with pytest.raises(RuntimeError, match="database service is required"):
        await step.work({"text": GOOD_TEXT})
    step.set_services(services(database=SqliteDatabase()))  # no table
    result = await step.work({"text": GOOD_TEXT})
    assert result["status"] == "partial_success" and result["database_stored"] is False
    assert "no such table" in result["database_error"]
    with pytest.raises(ValueError, match="nothing to analyse"):
        await step.work({"other": 1})
    with pytest.raises(ValueError, match="only finite numbers"):
        await step.work({"values": [1, "two"]})


# --- HTTP steps (a real local server, a real httpx client) -------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


async def test_api_call_get_returns_json(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/v1/status", method="GET").respond_with_json({"healthy": True, "version": 3})
    step = APICallStep("api", {"api_url": httpserver.url_for("/v1/status"), "timeout": 5})
    step.set_services(services(http=http))
    result = await step.work({})
    assert result == {
        "api_response": {"healthy": True, "version": 3},
        "status_code": 200,
        "success": True,
        "status": "success",
    }


async def test_api_call_post_sends_payload(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/v1/orders", method="POST", json={"sku": "A1", "qty": 2}).respond_with_json(
        {"id": "ord-1"}, status=201
    )
    step = APICallStep("api", {"api_url": httpserver.url_for("/v1/orders"), "method": "post"})
    step.set_services(services(http=http))
    result = await step.work({"api_payload": {"sku": "A1", "qty": 2}})
    assert result["status_code"] == 201
    assert result["success"] is True
    assert result["api_response"] == {"id": "ord-1"}
    httpserver.check_assertions()


async def test_api_call_reports_http_errors_and_non_json(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/missing").respond_with_data("not here", status=404, content_type="text/plain")
    step = APICallStep("api", {"api_url": httpserver.url_for("/missing")})
    step.set_services(services(http=http))
    result = await step.work({})
    assert result == {"api_response": "not here", "status_code": 404, "success": False, "status": "failed"}

    strict = APICallStep("api", {"api_url": httpserver.url_for("/missing"), "raise_on_error": True})
    strict.set_services(services(http=http))
    with pytest.raises(RuntimeError, match="answered 404"):
        await strict.work({})


async def test_api_call_connection_failure(http: httpx.AsyncClient) -> None:
    step = APICallStep("api", {"api_url": closed_port_url(), "timeout": 2})
    step.set_services(services(http=http))
    result = await step.work({})
    assert result["status"] == "failed"
    assert result["error"].startswith("API call failed: ConnectError")


async def test_api_call_config_and_service_errors() -> None:
    with pytest.raises(ValueError, match="config 'api_url' is required"):
        APICallStep("api", {})
    with pytest.raises(ValueError, match="unsupported HTTP method 'TRACE'"):
        APICallStep("api", {"api_url": "http://x", "method": "trace"})
    result = await APICallStep("api", {"api_url": "http://x"}).work({})
    assert result == {"error": "HTTP service not available", "status": "failed"}


class DictCache:
    """The guide's cache service shape: get(key) / set(key, value)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


class Notifications:
    """The guide's notification service shape, keeping what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_notification(self, message: str, level: str = "info") -> None:
        self.sent.append((level, message))


async def test_enhanced_api_calls_then_serves_from_cache(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/data", query_string={"id": "42", "kind": "sensor"}).respond_with_json({"reading": 21.5})
    cache, notes = DictCache(), Notifications()
    step = EnhancedAPIStep("enh", {"endpoint": httpserver.url_for("/data")})
    step.set_services(services(http=http, cache=cache, notifications=notes))

    first = await step.work({"id": 42, "kind": "sensor", "nested": {"skipped": True}})
    second = await step.work({"id": 42, "kind": "sensor", "nested": {"skipped": True}})

    assert first == {"result": {"reading": 21.5}, "source": "api", "status": "success"}
    assert second == {"result": {"reading": 21.5}, "source": "cache", "status": "success"}
    assert len(httpserver.log) == 1
    assert cache.values == {f"api_data_{httpserver.url_for('/data')}_42": {"reading": 21.5}}
    assert [level for level, _ in notes.sent] == ["info", "info"]
    assert notes.sent[1][1].startswith("Using cached data for api_data_")


async def test_enhanced_api_param_fields_and_records_without_id(
    httpserver: HTTPServer, http: httpx.AsyncClient
) -> None:
    httpserver.expect_request("/lookup").respond_with_json({"ok": True})
    cache = DictCache()
    step = EnhancedAPIStep("enh", {"endpoint": httpserver.url_for("/lookup"), "param_fields": ["sku"]})
    step.set_services(services(http=http, cache=cache))
    await step.work({"sku": "A1", "secret": "not sent"})
    await step.work({"sku": "B2", "secret": "not sent"})
    assert [request.args.to_dict() for request, _ in httpserver.log] == [{"sku": "A1"}, {"sku": "B2"}]
    assert len(cache.values) == 2  # records without an id do not share a cache entry


async def test_enhanced_api_failure_is_reported_and_notified(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/data").respond_with_data("boom", status=503)
    notes = Notifications()
    step = EnhancedAPIStep("enh", {"endpoint": httpserver.url_for("/data")})
    step.set_services(services(http=http, notifications=notes))
    result = await step.work({"id": 1})
    assert result == {"error": "API call failed with status 503", "status_code": 503, "status": "failed"}
    assert notes.sent == [("error", "API call failed with status 503")]


async def test_enhanced_api_survives_a_failing_notifier(httpserver: HTTPServer, http: httpx.AsyncClient) -> None:
    httpserver.expect_request("/data").respond_with_json([1, 2])

    class Broken:
        def send_notification(self, message: str, level: str = "info") -> None:
            raise ConnectionError("webhook down")

    step = EnhancedAPIStep("enh", {"endpoint": httpserver.url_for("/data")})
    step.set_services(services(http=http, notifications=Broken()))
    assert (await step.work({"id": 1}))["result"] == [1, 2]


async def test_enhanced_api_connection_error_and_missing_http(http: httpx.AsyncClient) -> None:
    step = EnhancedAPIStep("enh", {"endpoint": closed_port_url(), "timeout": 2})
    assert await step.work({"id": 1}) == {"error": "HTTP service not available", "status": "failed"}
    step.set_services(services(http=http))
    result = await step.work({"id": 1})
    assert result["status"] == "failed"
    assert result["error"].startswith("API call exception: ConnectError")
    with pytest.raises(ValueError, match="param_fields"):
        EnhancedAPIStep("enh", {"param_fields": "id"})


# --- batch steps -------------------------------------------------------------------------------------------


def sha256_of(item: Any) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def test_batch_processing_fingerprints_and_flags_duplicates() -> None:
    items = [{"id": 1}, {"id": 2}, {"id": 1}, "x", "x"]
    result = await BatchProcessingStep("batch", {"batch_size": 2}).work({"items": items})
    assert result["status"] == "success"
    assert result["total_processed"] == 5
    assert [item["duplicate_of"] for item in result["processed_items"]] == [None, None, 0, None, 3]
    assert result["duplicates"] == 2
    assert result["processed_items"][0]["fingerprint"] == sha256_of({"id": 1})[:16]
    assert [item["index"] for item in result["processed_items"]] == [0, 1, 2, 3, 4]


async def test_batch_processing_skips_invalid_batches() -> None:
    step = BatchProcessingStep("batch", {"batch_size": 2, "required_fields": ["id"]})
    result = await step.work({"items": [{"id": 1}, {"id": 2}, {"name": "no id"}, {"id": 4}, {"id": 5}]})
    assert result["status"] == "partial_success"
    assert [item["processed"]["id"] for item in result["processed_items"]] == [1, 2, 5]
    assert result["errors"] == [{"batch_start": 2, "batch_size": 2, "error": "item 2 lacks required field(s) id"}]


async def test_batch_processing_requires_a_list() -> None:
    with pytest.raises(ValueError, match="'items' must be a list, got nothing"):
        await BatchProcessingStep("batch").work({})
    assert (await BatchProcessingStep("batch").work({"items": []}))["total_processed"] == 0


async def test_parallel_processing_hashes_items_in_order() -> None:
    items = [{"n": n} for n in range(7)]
    result = await ParallelProcessingStep("par", {"batch_size": 3, "max_workers": 2}).work({"items": items})
    assert result["batch_count"] == 3
    assert result["total_items"] == 7
    assert [entry["item"] for entry in result["processed_items"]] == items
    assert result["processed_items"][4]["sha256"] == sha256_of({"n": 4})
    assert result["processed_items"][4]["size_bytes"] == len('{"n":4}')


async def test_parallel_processing_bounds_threads_and_keeps_the_loop_free() -> None:
    lock = threading.Lock()
    active = peak = 0

    class Observed(ParallelProcessingStep):
        @staticmethod
        def _process_batch(batch: list[Any]) -> list[dict[str, Any]]:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1
            return ParallelProcessingStep._process_batch(batch)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    background = asyncio.create_task(ticker())
    try:
        result = await Observed("par", {"batch_size": 1, "max_workers": 3}).work({"items": list(range(9))})
    finally:
        background.cancel()
    assert result["total_items"] == 9
    assert 1 < peak <= 3
    assert ticks > 5  # the event loop kept running while the threads worked


async def test_parallel_processing_requires_items() -> None:
    with pytest.raises(ValueError, match="must contain a non-empty 'items' list"):
        await ParallelProcessingStep("par").work({"records": [1]})
    with pytest.raises(ValueError, match="must contain a non-empty 'items' list"):
        await ParallelProcessingStep("par").work({"items": []})
    with pytest.raises(ValueError, match="'max_workers' must be >= 1"):
        ParallelProcessingStep("par", {"max_workers": 0})


# --- RobustProcessingStep ----------------------------------------------------------------------------------


async def test_robust_processing_extracts_validated_fields() -> None:
    step = RobustProcessingStep("robust", {"required_fields": ["id", "amount"], "field_types": {"note": "string"}})
    result = await step.work({"id": 3, "amount": 12.5, "note": "paid", "extra": True})
    assert result["status"] == "success" and result["errors"] == []
    body = result["result"]
    assert body["record"] == {"id": 3, "amount": 12.5, "note": "paid"}
    assert body["numeric_total"] == 15.5
    assert body["numeric_fields"] == ["amount", "id"]
    assert body["text_lengths"] == {"note": 4}


async def test_robust_processing_reports_validation_and_processing_errors() -> None:
    step = RobustProcessingStep("robust", {"required_fields": ["id"], "field_types": {"amount": "number"}})
    assert await step.work({"amount": 1}) == {
        "error": "Required field 'id' missing from input data",
        "error_type": "validation",
        "status": "failed",
    }
    result = await step.work({"id": 1, "amount": "12"})
    assert result["error"] == "Field 'amount' must be of type number, got str"

    class Exploding(RobustProcessingStep):
        def _safe_processing(self, data: Any) -> dict[str, Any]:
            raise KeyError("boom")

    result = await Exploding("robust").work({"id": 1})
    assert result == {"error": "KeyError: 'boom'", "error_type": "processing", "status": "failed"}
    with pytest.raises(ValueError, match="field_types"):
        RobustProcessingStep("robust", {"field_types": {"a": "date"}})


# --- order enrichment --------------------------------------------------------------------------------------

ORDER_EVENT = {
    "order_id": "ORD-1",
    "customer_id": "C1",
    "customer": {"account_age_days": 800, "previous_orders": 14, "email": "ann@web.de"},
    "items": [
        {"sku": "BK-1", "category": "Books", "quantity": 3, "unit_price": 19.99, "weight_kg": 0.5},
        {"sku": "KT-7", "category": "kitchen", "quantity": 1, "unit_price": 0.1, "weight_kg": 1.25},
    ],
    "shipping": {"country": "de", "method": "standard"},
    "billing_country": "DE",
    "payment": {"method": "card", "card_country": "DE"},
    "ip_country": "DE",
}


async def normalised(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = (await OrderIntakeStep("intake").work({**ORDER_EVENT, **changes}))["order"]
    return order


async def test_order_intake_normalises() -> None:
    result = await OrderIntakeStep("intake").work(dict(ORDER_EVENT))
    order = result["order"]
    assert order["subtotal"] == 60.07 and result["subtotal"] == 60.07
    assert [line["line_total"] for line in order["lines"]] == [59.97, 0.1]
    assert order["item_count"] == 4 and order["line_count"] == 2
    assert order["total_weight_kg"] == 2.75
    assert order["shipping_country"] == "DE"
    assert order["lines"][0]["category"] == "books"
    assert order["customer"] == {"account_age_days": 800, "previous_orders": 14, "email_domain": "web.de"}
    assert order["currency"] == "EUR" and order["coupon"] is None


async def test_order_intake_lists_every_problem() -> None:
    bad = {
        **ORDER_EVENT,
        "order_id": "",
        "items": [{"sku": "A", "quantity": 0, "unit_price": -1}, "x"],
        "billing_country": "Germany",
    }
    with pytest.raises(ValueError) as info:
        await OrderIntakeStep("intake").work(bad)
    message = str(info.value)
    for expected in (
        "order_id must be a non-empty string",
        "items[0].quantity must be a positive integer",
        "items[0].unit_price must be a non-negative number",
        "items[1] must be an object",
        "billing_country must be an ISO 3166 alpha-2 country code",
    ):
        assert expected in message


async def test_pricing_applies_coupon_shipping_and_tax() -> None:
    step = PricingStep(
        "pricing",
        {
            "coupons": {"TEN": {"type": "percent", "value": 10, "min_subtotal": 50}},
            "free_shipping_over": 150,
            "tax_rates": {"DE": 0.19},
        },
    )
    quote = (await step.work({"order": await normalised(coupon="ten")}))["quote"]
    # goods 60.07 - 6.01 = 54.06; shipping 4.90 + 0.40 * 2.75 = 6.00; tax 19% of 60.06 = 11.41
    assert quote == {
        "currency": "EUR",
        "subtotal": 60.07,
        "discount": 6.01,
        "coupon": {"code": "TEN", "applied": True, "amount": 6.01},
        "shipping": 6.0,
        "tax_rate": 0.19,
        "tax": 11.41,
        "total": 71.47,
    }


async def test_pricing_rejects_coupons_below_minimum_and_ships_free_above_threshold() -> None:
    step = PricingStep(
        "pricing",
        {
            "coupons": {"BIG": {"type": "fixed", "value": 20, "min_subtotal": 100}},
            "free_shipping_over": 50,
            "tax_rates": {"DE": 0.19},
        },
    )
    result = await step.work({"order": await normalised(coupon="BIG")})
    assert result["quote"]["coupon"] == {"code": "BIG", "applied": False, "reason": "subtotal below 100.0"}
    assert result["quote"]["shipping"] == 0.0
    assert result["total"] == round(60.07 * 1.19, 2)
    unknown = await step.work({"order": await normalised(coupon="NOPE")})
    assert unknown["quote"]["coupon"]["reason"] == "unknown coupon"


async def test_pricing_errors() -> None:
    with pytest.raises(ValueError, match="unknown shipping method 'drone'"):
        await PricingStep("pricing").work({"order": await normalised(shipping={"country": "DE", "method": "drone"})})
    with pytest.raises(ValueError, match="input 'order'"):
        await PricingStep("pricing").work({})
    with pytest.raises(ValueError, match="coupon 'X' needs a type"):
        PricingStep("pricing", {"coupons": {"x": {"value": 3}}})


async def test_risk_scoring_loyal_customer_is_low_risk() -> None:
    result = await RiskScoringStep("risk").work({"order": await normalised()})
    assert result["risk_score"] == 0
    assert result["assessment"]["level"] == "low"
    assert [s["signal"] for s in result["assessment"]["signals"]] == ["loyal_customer"]


async def test_risk_scoring_fraud_pattern_is_high_risk() -> None:
    order = await normalised(
        customer={"account_age_days": 2, "previous_orders": 0, "email": "x@mailinator.com"},
        items=[{"sku": "GC-100", "category": "gift_cards", "quantity": 5, "unit_price": 100}],
        shipping={"country": "FR", "method": "express"},
        ip_country="NG",
        payment={"method": "card", "card_country": "US"},
    )
    result = await RiskScoringStep("risk").work({"order": order})
    signals = {s["signal"] for s in result["assessment"]["signals"]}
    assert signals == {
        "new_account",
        "first_order",
        "shipping_country_mismatch",
        "ip_country_mismatch",
        "card_country_mismatch",
        "high_risk_goods",
        "gift_cards",
        "disposable_email",
        "express_on_new_account",
    }
    assert result["risk_score"] == 100  # 170 points, capped
    assert result["assessment"]["level"] == "high"


@pytest.mark.parametrize(
    ("score", "total", "decision"),
    [
        (0, 100.0, "approve"),
        (39, 100.0, "approve"),
        (40, 100.0, "review"),
        (10, 2600.0, "review"),
        (75, 100.0, "decline"),
        (100, 5000.0, "decline"),
    ],
)
async def test_order_decision(score: int, total: float, decision: str) -> None:
    step = OrderDecisionStep("decide", {"review_threshold": 40, "decline_threshold": 75, "auto_approve_limit": 2500})
    result = await step.work(
        {
            "order": await normalised(),
            "quote": {"total": total, "currency": "EUR"},
            "assessment": {"score": score, "level": "x", "signals": [{"detail": "why", "points": score}]},
        }
    )
    assert result["decision"] == decision
    assert result["order_summary"]["total"] == total
    assert result["order_summary"]["risk_score"] == score
    if decision == "approve":
        assert result["reasons"] == []
    elif score < 40:
        assert result["reasons"][-1] == "total 2600.00 above the auto-approve limit 2500.00"


async def test_order_decision_needs_both_branches() -> None:
    with pytest.raises(ValueError, match="input\\(s\\) assessment missing: both branches must join"):
        await OrderDecisionStep("decide").work({"order": await normalised(), "quote": {"total": 1}})
    with pytest.raises(ValueError, match="review_threshold must not exceed decline_threshold"):
        OrderDecisionStep("decide", {"review_threshold": 80, "decline_threshold": 70})


async def test_fulfilment_plan() -> None:
    order = await normalised(
        items=[{"sku": "GR-1", "category": "garden", "quantity": 2, "unit_price": 10, "weight_kg": 22.5}]
    )
    plan = (await FulfilmentPlannerStep("plan").work({"order": order}))["plan"]
    assert plan["warehouse"] == "WH-DE-LEJ" and plan["in_region"] is True
    assert plan["parcels"] == 3  # 45 kg in parcels of at most 20 kg
    assert plan["estimated_transit_days"] == 3
    far = await normalised(shipping={"country": "US", "method": "express"}, billing_country="US")
    plan = (await FulfilmentPlannerStep("plan").work({"order": far}))["plan"]
    assert plan["in_region"] is False and plan["warehouse"] == "WH-DE-LEJ"
    assert plan["estimated_transit_days"] == 2


async def test_review_ticket() -> None:
    data = {
        "decision": "decline",
        "reasons": ["card issued in US"],
        "order_summary": {"order_id": "ORD-9", "customer_id": "C9", "total": 120.0, "risk_score": 80},
    }
    ticket = (await ReviewQueueStep("review").work(data))["ticket"]
    assert ticket == {
        "ticket_id": "REV-ORD-9",
        "queue": "declined_orders",
        "priority": "high",
        "action": "void_authorisation",
        "order_id": "ORD-9",
        "customer_id": "C9",
        "risk_score": 80,
        "total": 120.0,
        "reasons": ["card issued in US"],
    }
    with pytest.raises(ValueError, match="got decision 'approve'"):
        await ReviewQueueStep("review").work({**data, "decision": "approve"})


# --- resilient ingest --------------------------------------------------------------------------------------

READING = {
    "record_id": "rd-1",
    "sensor_id": "temp-a1",
    "site": "plant-a",
    "unit": "C",
    "readings": [20, 21.5, 150],
    "recorded_at": "2024-09-03T12:00:00+02:00",
}


async def validated(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = (await ReadingValidatorStep("validate").work({**READING, **changes}))["record"]
    return record


async def test_validator_normalises_record() -> None:
    record = await validated()
    assert record == {
        "record_id": "rd-1",
        "sensor_id": "temp-a1",
        "site": "plant-a",
        "unit": "C",
        "readings": [20.0, 21.5, 150.0],
        "recorded_at": "2024-09-03T10:00:00Z",
    }


async def test_validator_raises_on_malformed_records() -> None:
    bad = {
        "record_id": "",
        "sensor_id": "s",
        "site": "",
        "unit": "F",
        "readings": [1, "n/a", True],
        "recorded_at": "2024-09-03T10:00:00",
        "transient_failures": -1,
    }
    with pytest.raises(InvalidRecordError) as info:
        await ReadingValidatorStep("validate").work(bad)
    message = str(info.value)
    for expected in (
        "record_id '' is not a valid id",
        "site must be a non-empty string",
        "unit 'F' is not one of C, %RH, kPa, ppm, lux",
        "[1]='n/a', [2]=True",
        "has no time zone",
        "transient_failures must be a non-negative integer",
    ):
        assert expected in message
    with pytest.raises(InvalidRecordError, match="readings must be a non-empty list"):
        await ReadingValidatorStep("validate").work({**READING, "readings": []})


LOOKUP_CONFIG = {"calibrations": {"temp-a1": {"offset": -0.5, "scale": 1.0}}}


async def test_calibration_lookup_fails_the_first_n_attempts_of_a_run(run_id: Any) -> None:
    step = CalibrationLookupStep("lookup", LOOKUP_CONFIG)
    step.set_services(ServiceRegistry())
    data = {"record": await validated(), "transient_failures": 2}
    run_id("run-a")
    for attempt in (1, 2):
        with pytest.raises(TransientUpstreamError, match=f"attempt {attempt}; .* lasts 2 attempt"):
            await step.work(data)
    result = await step.work(data)
    assert result == {
        "calibration": {"sensor_id": "temp-a1", "offset": -0.5, "scale": 1.0},
        "calibration_known": True,
        "attempts": 3,
        "status": "ok",
    }
    assert step._attempts == {}  # dropped on success
    # a new run of the same record starts again from the first attempt
    run_id("run-b")
    with pytest.raises(TransientUpstreamError, match="attempt 1;"):
        await step.work(data)


async def test_calibration_lookup_counts_runs_separately_and_bounded(run_id: Any) -> None:
    step = CalibrationLookupStep("lookup", {**LOOKUP_CONFIG, "max_tracked_runs": 2})
    step.set_services(ServiceRegistry())
    data = {"record": await validated(), "transient_failures": 5}
    for name in ("r1", "r2", "r1", "r3"):
        run_id(name)
        with pytest.raises(TransientUpstreamError):
            await step.work(data)
    assert list(step._attempts) == ["r1", "r3"]  # r2 was the oldest entry and was dropped
    assert step._attempts["r1"][0] == 2


async def test_calibration_lookup_forgets_stale_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("steps.ingest_steps.time.monotonic", lambda: clock[0])
    step = CalibrationLookupStep("lookup", {**LOOKUP_CONFIG, "reset_after_s": 60})
    data = {"record": await validated(), "transient_failures": 1}
    with pytest.raises(TransientUpstreamError):
        await step.work(data)  # no services: keyed by the input
    clock[0] += 61
    with pytest.raises(TransientUpstreamError, match="attempt 1;"):
        await step.work(data)
    clock[0] += 0.05
    assert (await step.work(data))["attempts"] == 2


async def test_calibration_lookup_unknown_sensor_and_bad_input() -> None:
    step = CalibrationLookupStep("lookup", LOOKUP_CONFIG)
    result = await step.work({"record": await validated(sensor_id="hum-x")})
    assert result["calibration"] == {"sensor_id": "hum-x", "offset": 0.0, "scale": 1.0}
    assert result["calibration_known"] is False and result["attempts"] == 1
    with pytest.raises(ValueError, match="'transient_failures' must be a non-negative integer"):
        await step.work({"record": await validated(), "transient_failures": "2"})
    with pytest.raises(ValueError, match="input 'record'"):
        await step.work({})
    with pytest.raises(ValueError, match=r"calibrations\.s\.scale"):
        CalibrationLookupStep("lookup", {"calibrations": {"s": {"scale": "big"}}})


async def test_apply_calibration() -> None:
    result = await ApplyCalibrationStep("apply", {"decimals": 2}).work(
        {"record": await validated(), "calibration": {"offset": -0.5, "scale": 1.01}}
    )
    assert result["calibrated"] == {"readings": [19.7, 21.21, 151.0], "unit": "C", "scale": 1.01, "offset": -0.5}
    assert result["review_required"] is False
    with pytest.raises(ValueError, match="'calibration' is missing"):
        await ApplyCalibrationStep("apply").work({"record": await validated()})


async def test_mark_for_review() -> None:
    error = {"type": "TransientUpstreamError", "message": "calibration service unavailable"}
    result = await MarkForReviewStep("review").work({"record": await validated(), "status": "failed", "error": error})
    assert result["review_required"] is True
    assert result["review"] == {
        "queue": "calibration_review",
        "record_id": "rd-1",
        "sensor_id": "temp-a1",
        "reason": "calibration lookup failed (TransientUpstreamError): calibration service unavailable",
        "error_type": "TransientUpstreamError",
        "raw_readings_kept": 3,
    }
    with pytest.raises(ValueError, match="'error' is missing"):
        await MarkForReviewStep("review").work({"record": await validated()})


async def test_summarise_calibrated_and_raw_readings() -> None:
    record = await validated()
    calibrated = await SummariseReadingsStep("sum").work(
        {"record": record, "calibrated": {"readings": [19.5, 21.0, 149.5]}, "review": None}
    )
    summary = calibrated["summary"]
    assert (summary["count"], summary["min"], summary["max"], summary["median"]) == (3, 19.5, 149.5, 21.0)
    assert summary["mean"] == round((19.5 + 21.0 + 149.5) / 3, 4)
    assert summary["out_of_range"] == [2]  # 149.5 C is above the plausible 85 C
    assert summary["calibrated"] is True and calibrated["review_required"] is False

    raw = await SummariseReadingsStep("sum").work(
        {"record": record, "calibrated": None, "review": {"reason": "lookup failed"}}
    )
    assert raw["summary"]["calibrated"] is False and raw["summary"]["max"] == 150.0
    assert raw["summary"]["review_reason"] == "lookup failed" and raw["review_required"] is True
    with pytest.raises(ValueError, match="needs either 'calibrated' readings or a 'review' item"):
        await SummariseReadingsStep("sum").work({"record": record})


def test_run_ids_set_by_tests_do_not_leak() -> None:
    assert current_execution_id.get() is None


# --- every step's output survives JSON ---------------------------------------------------------------------


async def test_outputs_are_json_serialisable() -> None:
    outputs = [
        await QualityCheckerStep("qc").work({"cleaned_data": GOOD_TEXT}),
        await AdvancedProcessorStep("adv").work({"data": GOOD_TEXT}),
        await RiskScoringStep("risk").work({"order": await normalised()}),
        await SummariseReadingsStep("sum").work({"record": await validated(), "review": {"reason": "x"}}),
    ]
    for output in outputs:
        assert json.loads(json.dumps(output)) == output
