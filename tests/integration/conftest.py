"""Shared fixtures of the integration tests: real services, started once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kafka_broker import kafka_broker_process


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
