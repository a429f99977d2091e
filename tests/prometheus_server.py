"""A real Prometheus for the integration tests: the Debian package ``prometheus`` (installed by
``make system-packages``), started on a free loopback port with a generated configuration and stopped at the end.

The tests query it as Grafana and the rule engine do, over its HTTP API (``/api/v1/query``, ``/api/v1/rules``).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = "/usr/bin/prometheus"
"""Where the Debian package puts the server."""


def prometheus_binary() -> str:
    """The server's path; fails the test (never skips it) when the package is not installed."""
    found = PROMETHEUS if Path(PROMETHEUS).is_file() else shutil.which("prometheus")
    if found is None:
        pytest.fail(
            f"Prometheus is not installed ({PROMETHEUS} is missing): run `make system-packages`, which installs "
            "the Debian package `prometheus` (the metrics tests scrape a real worker with it)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape_config(job: str, target: str, rule_files: Sequence[Path], interval_s: float) -> str:
    """A configuration scraping ``target`` (``host:port``, path ``/metrics``) as ``job`` and evaluating
    ``rule_files`` every ``interval_s``. Written as JSON, which is YAML."""
    interval = f"{int(interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path.resolve()) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class PrometheusServer:
    """A running server: ``url`` is its HTTP API's base (``http://127.0.0.1:PORT``)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at the current time: the whole answer (``status``, ``data`` or ``error``)."""
        body: dict[str, Any] = self.http.get("/api/v1/query", params={"query": expr}).json()
        return body

    def vector(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` gives (each ``{"metric": labels, "value": [time, "value"]}``); an error
        answer fails the test, naming the query."""
        body = self.query(expr)
        assert body.get("status") == "success", f"{expr}: {body.get('errorType')}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """``/api/v1/rules``: every rule of every group."""
        body = self.http.get("/api/v1/rules").json()
        assert body.get("status") == "success", body
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


@contextmanager
def prometheus_server(
    folder: Path, *, job: str, target: str, rule_files: Sequence[Path] = (), interval_s: float = 1.0
) -> Iterator[PrometheusServer]:
    """Prometheus scraping ``target`` as ``job`` every ``interval_s`` with ``rule_files``, its configuration, data
    and log under ``folder``, for as long as the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(scrape_config(job, target, rule_files, interval_s))
    with prometheus_running(config, folder) as server:
        yield server


@contextmanager
def prometheus_running(config: Path, folder: Path) -> Iterator[PrometheusServer]:
    """Prometheus with the configuration file ``config`` (its rule files relative to it), data and log under
    ``folder``, ready, for as long as the block runs; terminated (then killed, if it must be) at the end."""
    binary = prometheus_binary()
    port = _free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    server = PrometheusServer(url, process, log, httpx.Client(base_url=url, timeout=10, trust_env=False))
    try:
        _wait_ready(server, timeout_s=30)
        yield server
    finally:
        server.http.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if server.http.get("/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready after {timeout_s}s:\n{server.log_tail()}")
