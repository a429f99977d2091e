"""Unit tests of steps/http_steps.py: APICallStep and EnhancedAPIStep.

A local pytest-httpserver and a real ``httpx.AsyncClient``.

Each step is called as the framework does: ``await step.work(data)``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from steps.http_steps import APICallStep, EnhancedAPIStep
from tests.unit.step_helpers import services


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
