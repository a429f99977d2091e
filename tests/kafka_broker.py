"""A real single-node Apache Kafka (KRaft) broker for the integration tests, run from the jars of tests/kafka/pom.xml.

The embedded Tansu broker has faults that would hide or fake ours (docs/brokers.md lists them), so integration
tests run on real Kafka: one broker+controller JVM per test session on free loopback ports, its data in a
temporary folder. A second one, started only for the tests that ask for it, takes clients on a SASL_SSL listener
(SCRAM-SHA-256, a certificate signed by a CA made for the session with the JDK's keytool).
`python -m tests.kafka_broker [--secure]` starts one by hand and prints its address (Ctrl-C stops it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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

SCRAM_MECHANISM = "SCRAM-SHA-256"
SCRAM_USER = "ia"

# keytool runs briefly: the client JIT and no GC threads start it sooner
KEYTOOL_FLAGS = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-XX:-UsePerfData"]


@dataclass(frozen=True)
class SaslSslLogin:
    """What a client needs for the secure broker's SASL_SSL listener: the CA (PEM) that signed its certificate, and
    the SCRAM user created when its storage was formatted."""

    ca_file: Path
    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka's keyword arguments for this login (made here, not by the product, to check the broker)."""
        from aiokafka.helpers import create_ssl_context

        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": create_ssl_context(cafile=self.ca_file),
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


@dataclass(frozen=True)
class KafkaBroker:
    """A running test broker: address, cluster id, process, folder (logs in `workdir/logs`) and timings in seconds.

    A secure broker's `bootstrap` is its SASL_SSL listener, for `login`; its `internal` listener is PLAINTEXT on
    loopback (between broker and controller, and for the readiness probe)."""

    bootstrap: str
    cluster_id: str
    process: subprocess.Popen[bytes]
    workdir: Path
    format_seconds: float
    start_seconds: float
    login: SaslSslLogin | None = None
    internal: str | None = None
    tls_seconds: float = 0.0


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


def server_properties(
    workdir: Path, broker_port: int, controller_port: int, overrides: Mapping[str, str] | None = None
) -> str:
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
        **(overrides or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def secure_listeners(broker_port: int, internal_port: int, controller_port: int, keystore: Path, store_password: str
                     ) -> dict[str, str]:  # fmt: skip
    """Clients on SASL_SSL (SCRAM-SHA-256, the keystore's certificate); broker and controller talk PLAINTEXT on
    loopback."""
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{broker_port},INTERNAL://127.0.0.1:{internal_port},"
        f"CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{broker_port},INTERNAL://127.0.0.1:{internal_port}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": store_password,
        "ssl.key.password": store_password,
        "ssl.client.auth": "none",
    }  # fmt: skip


def keytool_executable() -> str:
    """The JDK's keytool, beside the java that runs the broker."""
    beside = Path(java_executable()).resolve().parent / "keytool"
    found = str(beside) if beside.is_file() else shutil.which("keytool")
    if found is None:
        raise KafkaBrokerError("keytool is not installed (it comes with the JDK)")
    return found


def _keytool(*args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run([keytool_executable(), *KEYTOOL_FLAGS, *args], input=stdin, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise KafkaBrokerError(f"keytool {args[0]} failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
    return done.stdout


def tls_files(folder: Path) -> tuple[Path, Path]:
    """Where `make_certificates` puts the broker's keystore and the CA certificate (PEM)."""
    return folder / "broker.p12", folder / "ca.pem"


def make_certificates(folder: Path, store_password: str) -> None:
    """A CA and a broker key pair whose certificate it signs (for 127.0.0.1 and localhost), with keytool alone:
    the broker's PKCS12 keystore (its certificate chain installed) and the CA certificate as PEM (`tls_files`)."""
    folder.mkdir(parents=True)
    keystore, ca_pem = tls_files(folder)
    ca_store = folder / "ca.p12"
    store = ["-storetype", "PKCS12", "-storepass", store_password]
    key = ["-keyalg", "EC", "-groupname", "secp256r1", "-validity", "30", "-keypass", store_password]
    san = "SAN=ip:127.0.0.1,dns:localhost"
    with ThreadPoolExecutor(2) as pool:  # the two key pairs at once
        made = [
            pool.submit(_keytool, "-genkeypair", "-alias", "ca", "-dname", "CN=ia-test-ca", "-ext", "bc:c",
                        "-ext", "ku:c=keyCertSign,cRLSign", *key, "-keystore", str(ca_store), *store),
            pool.submit(_keytool, "-genkeypair", "-alias", "broker", "-dname", "CN=localhost", "-ext", san, *key,
                        "-keystore", str(keystore), *store),
        ]  # fmt: skip
        for future in made:
            future.result()
        exported = pool.submit(_keytool, "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *store)
        request = _keytool("-certreq", "-alias", "broker", "-keystore", str(keystore), *store)
        usage = ["-ext", san, "-ext", "ku:c=digitalSignature", "-ext", "eku=serverAuth"]
        signed = _keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *store, "-validity", "30",
                          *usage, stdin=request)  # fmt: skip
        ca_pem.write_bytes(exported.result())
    chain = folder / "broker-chain.pem"  # the signed certificate and its CA: keytool installs it as the key's chain
    chain.write_bytes(signed + ca_pem.read_bytes())
    _keytool("-importcert", "-noprompt", "-alias", "broker", "-file", str(chain), "-keystore", str(keystore), *store)


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


async def _answers(bootstrap: str, **client_kwargs: Any) -> str | None:
    """The cluster id if the broker at `bootstrap` answers a DescribeCluster request, else None."""
    from aiokafka.admin import AIOKafkaAdminClient  # the helper stays importable without aiokafka

    host, port = bootstrap.rsplit(":", 1)
    try:  # a plain connect first: aiokafka logs an error for every refused connection
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return None
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **client_kwargs)
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


def _wait_until_ready(
    bootstrap: str, process: subprocess.Popen[bytes], workdir: Path, login: SaslSslLogin | None = None
) -> str:
    """Poll the broker until it answers (with `login`'s TLS and SCRAM when given); fail fast if the JVM exits.
    Returns the cluster id it reports."""
    result: list[str | None] = [None]

    async def poll() -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            cluster = await _answers(bootstrap, **(login.client_kwargs() if login else {}))
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


def _start_once(workdir: Path, secure: bool = False) -> KafkaBroker:
    """Format a fresh KRaft storage dir, start the JVM and wait until it answers. `secure`: clients on SASL_SSL
    with a SCRAM user created at format time, its certificates made with keytool while the storage is formatted."""
    ports: set[int] = set()
    while len(ports) < (3 if secure else 2):
        ports.add(free_port())
    broker_port, controller_port, *internal_port = ports
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    props = workdir / "server.properties"
    login, internal, overrides, scram = None, None, {}, []
    store_password = secrets.token_hex(12)
    if secure:
        keystore, ca_pem = tls_files(workdir / "tls")
        login = SaslSslLogin(ca_pem, SCRAM_USER, secrets.token_hex(12))
        internal = f"127.0.0.1:{internal_port[0]}"
        overrides = secure_listeners(broker_port, internal_port[0], controller_port, keystore, store_password)
        scram = ["--add-scram", f"{login.mechanism}=[name={login.username},password={login.password}]"]
    props.write_text(server_properties(workdir, broker_port, controller_port, overrides))
    cluster_id = random_cluster_id()

    def timed_certificates() -> float:
        making = time.monotonic()
        make_certificates(workdir / "tls", store_password)
        return time.monotonic() - making

    with ThreadPoolExecutor(1) as pool:  # the certificates are made while the storage is formatted (no TLS in it)
        formatting = time.monotonic()
        certificates = pool.submit(timed_certificates) if secure else None
        formatted = subprocess.run(
            _java_command(workdir, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *scram),
            capture_output=True,
            text=True,
            timeout=120,
        )
        format_seconds = time.monotonic() - formatting
        tls_seconds = certificates.result() if certificates is not None else 0.0
    if formatted.returncode != 0:
        raise KafkaBrokerError(f"kafka-storage format failed:\n{formatted.stdout}\n{formatted.stderr}")
    broker = _launch(workdir, f"127.0.0.1:{broker_port}", cluster_id, format_seconds, login=login, internal=internal)
    return replace(broker, tls_seconds=tls_seconds)


def _launch(
    workdir: Path,
    bootstrap: str,
    cluster_id: str,
    format_seconds: float,
    *,
    login: SaslSslLogin | None = None,
    internal: str | None = None,
) -> KafkaBroker:
    """Start the JVM on the formatted `workdir` and wait until it answers as `cluster_id` (a secure broker first
    on its internal listener, then on SASL_SSL with `login`)."""
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
        reported = _wait_until_ready(internal or bootstrap, process, workdir)
        if reported == cluster_id and login is not None:
            reported = _wait_until_ready(bootstrap, process, workdir, login)
    except BaseException:
        stop_process(process, timeout=5)
        raise
    if reported != cluster_id:
        stop_process(process, timeout=5)
        raise KafkaBrokerError(f"{bootstrap} reports cluster {reported}, expected {cluster_id}: a foreign broker?")
    seconds = time.monotonic() - started
    return KafkaBroker(bootstrap, cluster_id, process, workdir, format_seconds, seconds, login, internal)


def restart(broker: KafkaBroker, down_s: float = 0.0) -> KafkaBroker:
    """Stop `broker` cleanly, wait `down_s` seconds, and start it again on its folder and ports: topics, records
    and committed offsets are kept, as on a real broker's restart."""
    stop_process(broker.process)
    time.sleep(down_s)
    return _launch(
        broker.workdir, broker.bootstrap, broker.cluster_id, 0.0, login=broker.login, internal=broker.internal
    )


@contextmanager
def kafka_broker_process(workdir: Path, attempts: int = 3, *, secure: bool = False) -> Iterator[KafkaBroker]:
    """Run one Kafka broker+controller with its state in `workdir` (fetching the jars if needed); stop it on exit.
    `secure`: clients on a SASL_SSL listener (`KafkaBroker.login`).

    A start is retried on fresh ports, because a port picked as free may be taken before the JVM binds it.
    """
    fetch_jars()
    error: KafkaBrokerError | None = None
    for _ in range(attempts):
        try:
            broker = _start_once(workdir, secure)
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
    import sys
    import tempfile

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    secure = "--secure" in sys.argv[1:]

    with (
        tempfile.TemporaryDirectory(prefix="ia-kafka-") as tmp,
        kafka_broker_process(Path(tmp), secure=secure) as broker,
    ):
        print(
            f"Kafka {kafka_version()} at {broker.bootstrap} (cluster {broker.cluster_id}), "
            f"formatted in {broker.format_seconds:.2f} s, ready in {broker.start_seconds:.2f} s; "
            f"logs in {broker.workdir / 'logs'}",
            flush=True,
        )
        if broker.login is not None:
            login = broker.login
            print(f"SASL_SSL, {login.mechanism}: user {login.username}, password {login.password}, CA {login.ca_file} "
                  f"(certificates made in {broker.tls_seconds:.2f} s)", flush=True)  # fmt: skip
        try:
            broker.process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
