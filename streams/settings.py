"""Settings from ``IA_*`` environment variables or a ``.env`` file (pydantic-settings)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ia_modules.pipeline.imports import DEFAULT_STEP_PACKAGES, STEP_PACKAGES_SETTING
from ia_modules.pipeline.wire import DEFAULT_MAX_JSON_DEPTH
from streams.kafka.producer import DEFAULT_MAX_RECORD_BYTES
from streams.kafka.security import SASL_PROTOCOLS, TLS_PROTOCOLS, SaslMechanism, SecurityProtocol, check_ca_file
from streams.process.event_loop import EventLoopChoice

_PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _level_in_any_case(value: object) -> object:
    """``debug`` means DEBUG; anything else is left as given, for the error to name it."""
    if isinstance(value, str) and value.strip().upper() in get_args(LogLevel):
        return value.strip().upper()
    return value


def _upper_case(value: object) -> object:
    """``sasl_ssl`` means SASL_SSL (and ``scram-sha-256`` SCRAM-SHA-256), empty means unset; anything else is left
    for the error."""
    return (value.strip().upper() or None) if isinstance(value, str) else value


def _empty_is_unset(value: object) -> object:
    """``IA_BROKER_CA_FILE=`` means no CA file, as if it were not set."""
    return None if isinstance(value, str) and not value.strip() else value


def _package_list(value: str) -> str:
    """Each comma-separated item a dotted package name; at least one."""
    packages = [item.strip() for item in value.split(",") if item.strip()]
    for package in packages:
        if not _PACKAGE.fullmatch(package):
            raise ValueError(f"{package!r} is not a package name (letters, digits, _ and dots)")
    if not packages:
        raise ValueError("name at least one package")
    return ",".join(packages)


SYNC_DB_CALLS_SETTING = "IA_SYNC_DB_CALLS"
"""Where ``ia_modules.database`` reads the choice (it knows nothing of these settings)."""


class Settings(BaseSettings):
    """The service's settings; unset broker and database mean the embedded ones."""

    model_config = SettingsConfigDict(env_prefix="IA_", env_file=".env", extra="ignore")

    broker: str | None = Field(None, description="kafka://host:port[,host:port]; unset: the embedded broker")
    database_url: SecretStr | None = Field(None, description="postgresql://... or sqlite:///...; unset: embedded")
    pipelines_dir: Path = Field(Path("pipelines"), description="where pipeline files are looked up by id")
    app_id: str = Field("ia-modules", description="consumer group and internal topic names")
    topic_prefix: str = Field("ia", description="prefix of every topic: <prefix>.<pipeline>.<stage>")
    replication_factor: int = Field(1, ge=1)
    web_port: int = Field(6066, ge=1, le=65535, description="the worker's /health and /metrics pages")
    metrics: bool = Field(True, description="Prometheus metrics at /metrics; 0 records none (docs/metrics.md)")
    log_level: Annotated[LogLevel, BeforeValidator(_level_in_any_case)] = "INFO"
    fuse: bool = Field(True, description="fuse chains of steps into one stage; 0 gives every step its own")
    services: str | None = Field(
        None, description="module:factory, a sync or async factory returning a ServiceRegistry"
    )
    session_timeout_ms: int | None = Field(
        None, ge=1000, description="consumer group session timeout; unset: 10000, or 2000 on the embedded broker"
    )
    batch_max_records: int = Field(2000, ge=1, description="records a worker takes from the broker at once")
    max_record_bytes: int = Field(
        DEFAULT_MAX_RECORD_BYTES,
        ge=10_000,
        description="the largest record a worker produces; a run that would need a larger one fails (RecordTooLarge)",
    )
    max_json_depth: int = Field(
        DEFAULT_MAX_JSON_DEPTH,
        ge=1,
        description="how deeply an event may nest objects and arrays; a deeper one is refused by publish and becomes "
        "a bad_input dead letter in the worker",
    )
    """Checked where an event comes in (``publish``, the worker's input records), so that nothing the worker makes
    of it is deeper than orjson writes: 254 levels, past which it raises ``Recursion limit reached``. Measured
    (a pipeline whose steps copy their whole input, with a join in the store and a step failing for good): what
    the worker wraps around an event (envelope header, step outputs, result record, the dead letter embedding the
    envelope, join state) adds 4 levels, so an event 100 deep makes records at most 104 deep, and events up to
    250 deep still went through: the default leaves steps 150 levels to nest the event further."""
    processes: int = Field(
        1, ge=1, le=256, description="worker processes on this machine, one consumer group; one uses one core"
    )
    event_loop: EventLoopChoice = Field(
        "auto", description="auto: uvloop where it is installed (it is a dependency off Windows), else asyncio's"
    )
    database_timeout_s: float = Field(
        30.0, gt=0, description="a results-sink query or connection taking longer counts as a database outage"
    )
    step_packages: Annotated[str, AfterValidator(_package_list)] = Field(
        ",".join(DEFAULT_STEP_PACKAGES),
        description="comma-separated packages whose modules pipeline files may name (steps, condition functions)",
    )
    sync_db_calls: Annotated[
        Literal["warn", "error"], BeforeValidator(lambda v: (v.strip().lower() or "warn") if isinstance(v, str) else v)
    ] = Field(
        "warn",
        description="a database call made without await on a running event loop (the guide's way) blocks the loop "
        "until done: warn logs that once per call site, error refuses it (a step failure); the database package "
        "reads IA_SYNC_DB_CALLS from the environment (docs/database.md)",
    )

    broker_security_protocol: Annotated[SecurityProtocol, BeforeValidator(_upper_case)] = Field(
        "PLAINTEXT", description="how the Kafka clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    broker_sasl_mechanism: Annotated[SaslMechanism | None, BeforeValidator(_upper_case)] = Field(
        None, validate_default=True, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; SASL protocols only"
    )
    broker_username: Annotated[str | None, BeforeValidator(_empty_is_unset)] = Field(
        None, validate_default=True, description="the SASL user"
    )
    broker_password: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = Field(
        None, validate_default=True, description="the SASL user's password"
    )
    broker_ca_file: Annotated[Path | None, BeforeValidator(_empty_is_unset)] = Field(
        None, validate_default=True, description="PEM CA bundle the broker's certificate is checked against (TLS)"
    )

    @field_validator("broker_security_protocol")
    @classmethod
    def _protocol_needs_a_broker(cls, protocol: str, info: ValidationInfo) -> str:
        if protocol != "PLAINTEXT" and "broker" in info.data and not info.data["broker"]:
            raise PydanticCustomError(
                "broker_security", f"{protocol} needs IA_BROKER: the embedded broker takes PLAINTEXT only"
            )
        if protocol in TLS_PROTOCOLS and info.data.get("event_loop") == "uvloop":
            raise PydanticCustomError(
                "broker_security",
                f"{protocol} does not work with IA_EVENT_LOOP=uvloop, which can take 30 s to close a TLS connection "
                "that data is arriving on (MagicStack/uvloop#471): set IA_EVENT_LOOP to auto or asyncio",
            )
        return protocol

    @field_validator("broker_sasl_mechanism", "broker_username", "broker_password")
    @classmethod
    def _sasl_settings(cls, value: str | SecretStr | None, info: ValidationInfo) -> str | SecretStr | None:
        protocol = info.data.get("broker_security_protocol")
        if protocol is None:  # invalid itself, and said so
            return value
        given = value.get_secret_value() if isinstance(value, SecretStr) else value
        if protocol in SASL_PROTOCOLS and not given:
            needed = {"broker_sasl_mechanism": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                      "broker_username": "a user name", "broker_password": "the user's password"}  # fmt: skip
            raise PydanticCustomError(
                "broker_security",
                f"missing: IA_BROKER_SECURITY_PROTOCOL {protocol} needs {needed[str(info.field_name)]}",
            )
        if protocol not in SASL_PROTOCOLS and value is not None:
            raise PydanticCustomError(
                "broker_security",
                f"only SASL_PLAINTEXT and SASL_SSL use it, and IA_BROKER_SECURITY_PROTOCOL is {protocol}",
            )
        return value

    @field_validator("broker_ca_file")
    @classmethod
    def _ca_file(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("broker_security_protocol")
        if path is None or protocol is None:
            return path
        if protocol not in TLS_PROTOCOLS:
            raise PydanticCustomError(
                "broker_security", f"only SSL and SASL_SSL use it, and IA_BROKER_SECURITY_PROTOCOL is {protocol}"
            )
        problem = check_ca_file(path)
        if problem is not None:
            raise PydanticCustomError("broker_security", "{problem}", {"problem": problem})
        return path

    def model_post_init(self, context: Any, /) -> None:
        """The step packages and IA_SYNC_DB_CALLS hold for everything this process loads (the core's loader and
        the database package read them from the environment) and for the worker processes it starts: a value from
        .env is put in the environment. With TLS to the broker, ``auto`` is asyncio's loop: uvloop can take 30 s to
        close a TLS connection (a worker's join-state restore consumer took that long to stop, past its session
        timeout)."""
        os.environ[STEP_PACKAGES_SETTING] = self.step_packages
        os.environ[SYNC_DB_CALLS_SETTING] = self.sync_db_calls  # the database package reads it there too
        if self.event_loop == "auto" and self.broker_security_protocol in TLS_PROTOCOLS:
            self.event_loop = "asyncio"


SECRET_SETTINGS = frozenset({"database_url", "broker_password"})
"""Settings whose values an error message must not repeat."""


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid setting, named as the user set it (``IA_PROCESSES``), with what is wrong; the value
    given is repeated unless it may be a secret (or none was given)."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        shown = "" if field in SECRET_SETTINGS or problem["input"] in (None, "") else f" (got {problem['input']!r})"
        lines.append(f"IA_{field.upper()}: {problem['msg']}{shown}")
    return lines
