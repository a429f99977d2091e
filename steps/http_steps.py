"""Steps that call HTTP APIs through the ``http`` service (an ``httpx.AsyncClient``): the guide's APICallStep and
EnhancedAPIStep, the latter also using the ``cache`` and ``notifications`` services.

As in the guide, a failed call is reported in the output (``{"status": "failed", "error": ...}``) rather than
raised; config ``raise_on_error: true`` raises instead, so the pipeline's retry policy and dead letters apply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ia_modules.pipeline.core import Step

from ._common import config_bool, config_float, fingerprint, maybe_await

logger = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PARAM_TYPES = (str, int, float, bool)


def _body(response: Any) -> Any:
    """The response's JSON body, or its text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class APICallStep(Step):
    """Call config ``api_url`` with config ``method`` (GET, POST, PUT, PATCH, DELETE; default GET) and return
    the response's JSON (or text) as ``api_response`` with its ``status_code``. Bodies of POST/PUT/PATCH are
    the input's ``api_payload``. Config ``timeout`` is in seconds (default 30). ``success`` means a 2xx answer.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        api_url = self.config.get("api_url")
        if not isinstance(api_url, str) or not api_url:
            raise ValueError(f"step '{name}': config 'api_url' is required (got {api_url!r})")
        self.api_url = api_url
        self.method = str(self.config.get("method", "GET")).upper()
        if self.method not in METHODS:
            raise ValueError(f"step '{name}': unsupported HTTP method {self.method!r}; expected one of {METHODS}")
        self.timeout = config_float(name, "timeout", self.config.get("timeout", 30))
        self.raise_on_error = config_bool(name, "raise_on_error", self.config.get("raise_on_error", False))

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        http = self.get_http()
        if not http:
            return {"error": "HTTP service not available", "status": "failed"}
        call = getattr(http, self.method.lower())
        try:
            if self.method in _BODY_METHODS:
                response = await call(self.api_url, json=data.get("api_payload", {}), timeout=self.timeout)
            else:
                response = await call(self.api_url, timeout=self.timeout)
        except Exception as exc:
            if self.raise_on_error:
                raise
            return {"error": f"API call failed: {_describe(exc)}", "status": "failed"}
        success = 200 <= response.status_code < 300
        if not success and self.raise_on_error:
            raise RuntimeError(f"step '{self.name}': {self.method} {self.api_url} answered {response.status_code}")
        return {
            "api_response": _body(response),
            "status_code": response.status_code,
            "success": success,
            "status": "success" if success else "failed",
        }


class EnhancedAPIStep(Step):
    """GET config ``endpoint`` (default ``/data``) with the record's fields as query parameters, through the
    ``cache`` service when there is one, and tell the ``notifications`` service (optional) what happened.

    Query parameters are the input fields named by config ``param_fields``, or by default every top-level
    field holding a scalar. The cache key is ``api_data_<endpoint>_<id>`` when the record has an ``id``, else
    a digest of the parameters, so different records never share an entry. Returns ``result`` and ``source``
    (``api`` or ``cache``), or ``error`` with ``status: failed``.
    """

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(name, config)
        self.endpoint = str(self.config.get("endpoint", "/data"))
        fields = self.config.get("param_fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise ValueError(f"step '{name}': config 'param_fields' must be a list of field names, got {fields!r}")
        self.param_fields: list[str] | None = fields
        self.timeout = config_float(name, "timeout", self.config.get("timeout", 30))
        self.raise_on_error = config_bool(name, "raise_on_error", self.config.get("raise_on_error", False))

    def params(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The query parameters for ``data``."""
        if self.param_fields is not None:
            return {key: data[key] for key in self.param_fields if data.get(key) is not None}
        return {key: value for key, value in sorted(data.items()) if isinstance(value, _PARAM_TYPES)}

    def cache_key(self, data: Mapping[str, Any], params: Mapping[str, Any]) -> str:
        record_id = data.get("id")
        suffix = str(record_id) if isinstance(record_id, str | int) else fingerprint(params)
        return f"api_data_{self.endpoint}_{suffix}"

    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        http = self.get_http()
        cache = self.get_service("cache")
        params = self.params(data)
        cache_key = self.cache_key(data, params)

        cached = await maybe_await(cache.get(cache_key)) if cache is not None else None
        if cached is not None:
            await self._notify(f"Using cached data for {cache_key}", "info")
            return {"result": cached, "source": "cache", "status": "success"}
        if not http:
            return {"error": "HTTP service not available", "status": "failed"}

        try:
            response = await http.get(self.endpoint, params=params, timeout=self.timeout)
        except Exception as exc:
            if self.raise_on_error:
                raise
            error = f"API call exception: {_describe(exc)}"
            await self._notify(error, "error")
            return {"error": error, "status": "failed"}

        if 200 <= response.status_code < 300:
            result = _body(response)
            if cache is not None:
                await maybe_await(cache.set(cache_key, result))
            await self._notify(f"API call successful for {self.endpoint}", "info")
            return {"result": result, "source": "api", "status": "success"}

        error = f"API call failed with status {response.status_code}"
        if self.raise_on_error:
            raise RuntimeError(f"step '{self.name}': {error} ({self.endpoint})")
        await self._notify(error, "error")
        return {"error": error, "status_code": response.status_code, "status": "failed"}

    async def _notify(self, message: str, level: str) -> None:
        """Send a notification if the service exists; a failing notifier never fails the step."""
        notifier = self.get_service("notifications")
        if notifier is None:
            return
        try:
            await maybe_await(notifier.send_notification(message, level=level))
        except Exception:
            logger.exception("step %s: sending a notification failed", self.name)
