"""A real single-node Apache Kafka (KRaft) broker for the integration tests, run from the jars of tests/kafka/pom.xml.

The embedded Tansu broker has faults that would hide or fake ours (docs/brokers.md lists them), so integration
tests run on real Kafka: one broker+controller JVM per test session on free loopback ports, its data in a
temporary folder.
`python -m tests.kafka_broker` starts one by hand and prints its address (Ctrl-C stops it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LIB_DIR = KAFKA_DIR / "lib"
LOG_CONFIG = KAFKA_DIR / "log4j2.properties"

# The Maven command that fills tests/kafka/lib/ (run in tests/kafka/; `make test` runs it once up front).
MAVEN_FETCH = ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=lib"]

# A small heap and a serial collector: one broker on a 2-core machine, started once per session.
JVM_FLAGS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class KafkaBroker:
    """A running test broker: address, cluster id, process, folder (logs in `workdir/logs`) and timings in seconds."""

    bootstrap: str
    cluster_id: str
    process: subprocess.Popen[bytes]
    workdir: Path
    format_seconds: float
    start_seconds: float


class KafkaBrokerError(RuntimeError):
    """The test broker could not be fetched, formatted or started; the message carries the log tail."""


def kafka_version() -> str:
    """The Kafka version that tests/kafka/pom.xml pins (its `kafka.version` property)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise KafkaBrokerError(f"{POM}: no <kafka.version> property")
    return node.text.strip()


def jars_present() -> bool:
    """True when tests/kafka/lib/ holds the broker jar of the pinned version."""
    return (LIB_DIR / f"kafka_2.13-{kafka_version()}.jar").is_file()


def fetch_jars() -> None:
    """Fetch the broker jars with Maven unless they are there; stale jars of another version are removed first."""
    if jars_present():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaBrokerError("Maven (mvn) is not installed: it is needed once to fetch the Kafka jars")
    shutil.rmtree(LIB_DIR, ignore_errors=True)
    done = subprocess.run([mvn, *MAVEN_FETCH[1:]], cwd=KAFKA_DIR, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not jars_present():
        raise KafkaBrokerError(f"Maven fetch failed in {KAFKA_DIR}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


def java_executable() -> str:
    """`$JAVA_HOME/bin/java` when set, else `java` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("java is not installed (Kafka needs Java 17 or newer)")
    return java


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding, not starting with '-' (as Kafka's)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def server_properties(workdir: Path, broker_port: int, controller_port: int) -> str:
    """The broker+controller config: one KRaft node, replication 1 everywhere, fast group joins, 4 partitions."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",  # lets tests use short sessions, e.g. to fail over fast after a kill
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _java_command(workdir: Path, *args: str) -> list[str]:
    """`java ... -cp 'lib/*' ARGS` with the file-only log config and the logs in `workdir/logs`."""
    return [
        java_executable(),
        *JVM_FLAGS,
        f"-Dlog4j2.configurationFile={LOG_CONFIG}",
        f"-Dkafka.logs.dir={workdir / 'logs'}",
        "-cp",
        str(LIB_DIR / "*"),
        *args,
    ]


def _log_tail(workdir: Path, limit: int = 4000) -> str:
    """The end of the broker's console output and server.log, for error messages."""
    parts = []
    for name in ("console.log", "logs/server.log"):
        path = workdir / name
        if path.is_file():
            parts.append(f"--- {name}\n{path.read_text(errors='replace')[-limit:]}")
    return "\n".join(parts)


async def _answers(bootstrap: str) -> str | None:
    """The cluster id if the broker at `bootstrap` answers a DescribeCluster request, else None."""
    from aiokafka.admin import AIOKafkaAdminClient  # the helper stays importable without aiokafka

    host, port = bootstrap.rsplit(":", 1)
    try:  # a plain connect first: aiokafka logs an error for every refused connection
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return None
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        described = await admin.describe_cluster()
        return str(described["cluster_id"])
    except Exception:
        return None
    finally:
        try:
            await admin.close()
        except Exception:
            pass


def _wait_until_ready(bootstrap: str, process: subprocess.Popen[bytes], workdir: Path) -> str:
    """Poll the broker until it answers; fail fast if the JVM exits. Returns the cluster id it reports."""
    result: list[str | None] = [None]

    async def poll() -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            cluster = await _answers(bootstrap)
            if cluster is not None:
                result[0] = cluster
                return
            await asyncio.sleep(0.1)

    # Own thread and loop: the caller may be a pytest fixture while another event loop exists in this thread.
    thread = threading.Thread(target=lambda: asyncio.run(poll()), name="kafka-ready", daemon=True)
    thread.start()
    thread.join()
    if result[0] is None:
        state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer in time"
        raise KafkaBrokerError(f"Kafka broker at {bootstrap} {state}\n{_log_tail(workdir)}")
    return result[0]


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (a clean controlled shutdown), then SIGKILL if it has not exited after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _start_once(workdir: Path) -> KafkaBroker:
    """Format a fresh KRaft storage dir, start the JVM and wait until it answers."""
    broker_port, controller_port = free_port(), free_port()
    while controller_port == broker_port:
        controller_port = free_port()
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    props = workdir / "server.properties"
    props.write_text(server_properties(workdir, broker_port, controller_port))
    cluster_id = random_cluster_id()
    formatting = time.monotonic()
    formatted = subprocess.run(
        _java_command(workdir, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if formatted.returncode != 0:
        raise KafkaBrokerError(f"kafka-storage format failed:\n{formatted.stdout}\n{formatted.stderr}")
    format_seconds = time.monotonic() - formatting
    return _launch(workdir, f"127.0.0.1:{broker_port}", cluster_id, format_seconds)


def _launch(workdir: Path, bootstrap: str, cluster_id: str, format_seconds: float) -> KafkaBroker:
    """Start the JVM on the formatted `workdir` and wait until it answers as `cluster_id`."""
    started = time.monotonic()
    with (workdir / "console.log").open("ab") as console:
        process = subprocess.Popen(
            _java_command(workdir, "kafka.Kafka", str(workdir / "server.properties")),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the test run must not kill the broker before the tests stop
        )
    try:
        reported = _wait_until_ready(bootstrap, process, workdir)
    except BaseException:
        stop_process(process, timeout=5)
        raise
    if reported != cluster_id:
        stop_process(process, timeout=5)
        raise KafkaBrokerError(f"{bootstrap} reports cluster {reported}, expected {cluster_id}: a foreign broker?")
    return KafkaBroker(bootstrap, cluster_id, process, workdir, format_seconds, time.monotonic() - started)


def restart(broker: KafkaBroker, down_s: float = 0.0) -> KafkaBroker:
    """Stop `broker` cleanly, wait `down_s` seconds, and start it again on its folder and ports: topics, records
    and committed offsets are kept, as on a real broker's restart."""
    stop_process(broker.process)
    time.sleep(down_s)
    return _launch(broker.workdir, broker.bootstrap, broker.cluster_id, 0.0)


@contextmanager
def kafka_broker_process(workdir: Path, attempts: int = 3) -> Iterator[KafkaBroker]:
    """Run one Kafka broker+controller with its state in `workdir` (fetching the jars if needed); stop it on exit.

    A start is retried on fresh ports, because a port picked as free may be taken before the JVM binds it.
    """
    fetch_jars()
    error: KafkaBrokerError | None = None
    for _ in range(attempts):
        try:
            broker = _start_once(workdir)
        except KafkaBrokerError as exc:
            error = exc
            continue
        try:
            yield broker
        finally:
            stop_process(broker.process)
        return
    assert error is not None
    raise error


def main() -> None:
    """Start a broker by hand for debugging: prints its address and runs until interrupted (Ctrl-C or SIGTERM;
    either stops the JVM too, which would otherwise outlive this process)."""
    import tempfile

    signal.signal(signal.SIGTERM, signal.default_int_handler)

    with tempfile.TemporaryDirectory(prefix="ia-kafka-") as tmp, kafka_broker_process(Path(tmp)) as broker:
        print(
            f"Kafka {kafka_version()} at {broker.bootstrap} (cluster {broker.cluster_id}), "
            f"formatted in {broker.format_seconds:.2f} s, ready in {broker.start_seconds:.2f} s; "
            f"logs in {broker.workdir / 'logs'}",
            flush=True,
        )
        try:
            broker.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
