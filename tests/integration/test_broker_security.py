"""A Kafka that takes clients over SASL_SSL only (SCRAM-SHA-256, a certificate of a CA made for the session):
``ia-modules worker``, ``publish`` and ``consume`` as a user runs them, configured with IA_BROKER_SECURITY_PROTOCOL,
IA_BROKER_SASL_MECHANISM, IA_BROKER_USERNAME, IA_BROKER_PASSWORD and IA_BROKER_CA_FILE; a wrong password is one
error line, and no password is ever printed."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from ia_modules.pipeline.core import Pipeline
from ia_modules.pipeline.loader import load_plan
from tests.integration.streaming_support import CLI, ROOT, Namespace, WorkerProcess, canonical, pipelines_dir_with
from tests.kafka_broker import KafkaBroker, free_port

pytestmark = pytest.mark.integration

PIPELINES = ("custom_processing", "order_enrichment")  # order_enrichment's joins wait in the store: changelog
# writes, and its restore on assignment, go over SASL_SSL too


def security_env(broker: KafkaBroker, password: str | None = None) -> dict[str, str]:
    """The IA_BROKER_* security settings for the secure broker's SASL_SSL listener (its user's password unless
    ``password`` is given)."""
    assert broker.login is not None
    return {
        "IA_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "IA_BROKER_SASL_MECHANISM": broker.login.mechanism,
        "IA_BROKER_USERNAME": broker.login.username,
        "IA_BROKER_PASSWORD": broker.login.password if password is None else password,
        "IA_BROKER_CA_FILE": str(broker.login.ca_file),
    }


async def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``ia-modules ARGS`` as a user runs it, off the test's event loop."""
    return await asyncio.to_thread(
        subprocess.run, [CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


async def test_worker_publish_and_consume_run_shipped_pipelines_over_sasl_ssl(
    secure_kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    broker = secure_kafka_broker
    assert broker.login is not None
    folder = pipelines_dir_with(tmp_path, *PIPELINES)
    namespace = Namespace.fresh(broker.bootstrap)
    secure = security_env(broker)
    env = namespace.env(folder, **secure)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(namespace, folder, log, **secure)
    consumed: dict[str, list[dict[str, object]]] = {}
    outputs: list[str] = []
    try:
        await worker.wait_consuming()
        for pipeline_id in PIPELINES:
            events_file = folder / f"{pipeline_id}.events.jsonl"
            published = await run_cli(["publish", pipeline_id, str(events_file)], env)
            assert published.returncode == 0, published.stderr
            outputs += [published.stdout, published.stderr]
        for pipeline_id in PIPELINES:
            count = sum(1 for line in (folder / f"{pipeline_id}.events.jsonl").read_text().splitlines() if line.strip())
            read = await run_cli(
                ["consume", pipeline_id, "--from-beginning", "--limit", str(count), "--timeout", "60"], env
            )
            assert read.returncode == 0, read.stderr
            consumed[pipeline_id] = [json.loads(line) for line in read.stdout.splitlines()]
            outputs += [read.stdout, read.stderr]
    finally:
        assert worker.stop() == 0, log.read_text()[-3000:]
    worker_log = log.read_text()
    assert "worker stopped" in worker_log and "Traceback" not in worker_log, worker_log[-3000:]
    assert " ERROR " not in worker_log, worker_log[-3000:]  # no client of the worker (nor Faust) was refused
    for pipeline_id in PIPELINES:
        events_file = folder / f"{pipeline_id}.events.jsonl"
        events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
        pipeline = Pipeline(load_plan(folder / f"{pipeline_id}.json"))
        expected = {}
        for event in events:
            result = await pipeline.run(event)
            expected[canonical(event)] = (result.status, result.outputs)
        records = consumed[pipeline_id]
        assert len(records) == len(events), f"{pipeline_id}: one result per event"
        assert {canonical(record["input"]) for record in records} == set(expected), f"{pipeline_id}: every event"
        for record in records:
            assert (record["status"], record["outputs"]) == expected[canonical(record["input"])], record["input"]
    assert all(broker.login.password not in text for text in [*outputs, worker_log])


@pytest.mark.parametrize("command", ["worker", "publish", "consume"])
async def test_a_wrong_password_is_one_error_line_and_never_printed(
    secure_kafka_broker: KafkaBroker, tmp_path: Path, command: str
) -> None:
    broker = secure_kafka_broker
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    wrong = "Wr0ng-pass/word#not-this-one"
    env = Namespace.fresh(broker.bootstrap).env(folder, IA_WEB_PORT=str(free_port()), **security_env(broker, wrong))
    args = {
        "worker": ["worker"],
        "publish": ["publish", "custom_processing", str(folder / "custom_processing.events.jsonl")],
        "consume": ["consume", "custom_processing", "--timeout", "5"],
    }[command]
    done = await run_cli(args, env, timeout_s=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: the Kafka broker at kafka://{broker.bootstrap} (IA_BROKER) refused the credentials of user 'ia' "
        "(IA_BROKER_USERNAME/IA_BROKER_PASSWORD): SASL authentication failed"
    ]
    assert done.stdout == ""
    assert wrong not in done.stderr + done.stdout


async def test_a_certificate_the_ca_file_does_not_vouch_for_is_one_error_line(
    secure_kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    import certifi  # a real CA bundle, and none of its CAs signed the test broker's certificate

    broker = secure_kafka_broker
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    env = Namespace.fresh(broker.bootstrap).env(
        folder, **{**security_env(broker), "IA_BROKER_CA_FILE": certifi.where()}
    )
    done = await run_cli(["consume", "custom_processing", "--timeout", "5"], env, timeout_s=60)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: the Kafka broker at kafka://{broker.bootstrap} (IA_BROKER) has a TLS certificate")
    assert "(IA_BROKER_CA_FILE) does not vouch for" in line


async def test_an_inconsistent_security_setting_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    folder = pipelines_dir_with(tmp_path, "custom_processing")
    env = Namespace.fresh("127.0.0.1:1").env(
        folder, IA_BROKER_SECURITY_PROTOCOL="SASL_SSL", IA_BROKER_SASL_MECHANISM="SCRAM-SHA-256",
        IA_BROKER_USERNAME="ia", IA_BROKER_PASSWORD="Pa55-word:secret", IA_BROKER_CA_FILE=str(tmp_path / "none.pem"),
    )  # fmt: skip
    done = await run_cli(["worker"], env, timeout_s=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: IA_BROKER_CA_FILE: no such file (got '{tmp_path / 'none.pem'}')"]
    assert "Pa55-word" not in done.stderr + done.stdout
