"""Broker URLs as settings and the CLI write them become aiokafka's bootstrap list."""

from __future__ import annotations

import pytest

from streams.kafka.cluster import bootstrap_servers


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("kafka://kafka:9092", ["kafka:9092"]),
        ("kafka://a:9092,b:9093", ["a:9092", "b:9093"]),
        ("kafka://a:9092;kafka://b:9093/", ["a:9092", "b:9093"]),
        (" a:1 , b:2 ", ["a:1", "b:2"]),
    ],
)
def test_bootstrap_servers(url: str, servers: list[str]) -> None:
    """Schemes, separators, spaces and trailing slashes are dropped; order is kept."""
    assert bootstrap_servers(url) == servers


def test_bootstrap_servers_rejects_empty() -> None:
    """An empty broker setting is an error, not an empty list that would hang a client."""
    with pytest.raises(ValueError, match="no broker address"):
        bootstrap_servers("kafka://")
