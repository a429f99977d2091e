"""Broker addresses with a user and password: the password never prints, the clients get host:port only, and an
address that cannot be parsed is one error naming no part of it."""

from __future__ import annotations

import logging

import pytest

from streams.kafka.cluster import BrokerAddressError, bootstrap_servers, parse_broker, redacted_broker
from streams.process.serve import check_broker
from streams.settings import Settings

CHARACTERS = ["/", "#", "?", "@", "[", "]", ":", "%", " ", ",", ";", "%2F"]


@pytest.mark.parametrize("character", CHARACTERS)
@pytest.mark.parametrize(
    ("template", "servers", "shown"),
    [
        ("kafka://user:{pw}@kafka:9092", ["kafka:9092"], "kafka://user:***@kafka:9092"),
        ("kafka://user:{pw}@a:9092,b:9093/", ["a:9092", "b:9093"], "kafka://user:***@a:9092,b:9093/"),
        ("user:{pw}@[::1]:9092", ["[::1]:9092"], "user:***@[::1]:9092"),
        (
            "kafka://user:{pw}@a:1;kafka://other:{pw}@b:2",
            ["a:1", "b:2"],
            "kafka://user:***@a:1;kafka://other:***@b:2",
        ),
    ],
)
def test_a_password_in_a_broker_url_is_masked_and_kept_from_the_clients(
    template: str, servers: list[str], shown: str, character: str
) -> None:
    password = f"Br0{character}ker-PW"
    broker = template.format(pw=password)
    assert bootstrap_servers(broker) == servers
    assert parse_broker(broker).redacted == shown
    assert redacted_broker(broker) == shown
    assert password not in repr(parse_broker(broker))


def test_addresses_without_a_password_print_as_written() -> None:
    for broker in ("kafka://127.0.0.1:9092", "kafka://a:1;kafka://b:2/", "h:9092", "kafka://user@h:9092"):
        assert redacted_broker(broker) == broker


def test_a_password_that_is_not_used_is_said_once_without_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.kafka.cluster"):
        bootstrap_servers("kafka://u:once-Secret/1@h:9092")
        bootstrap_servers("kafka://u:once-Secret/1@h:9092")
    said = [record.getMessage() for record in caplog.records]
    assert said == ["the broker address kafka://u:***@h:9092 holds a password; it is not used: the Kafka clients "
                    "log in with IA_BROKER_USERNAME and IA_BROKER_PASSWORD"]  # fmt: skip


@pytest.mark.parametrize(
    "broker",
    [
        "kafka://usr7:{pw}@h0st:p0rt",
        "kafka://usr7:{pw}@[::1",
        "usr7:{pw}@h0st://x",
        "kafka://usr7:{pw}@",
        "kafka://usr7:{pw}@h0st:9092/t0pic",
    ],
)
@pytest.mark.parametrize("character", ["/", "#", "?", "@", "[", "]", ":", "%", " "])
def test_an_address_that_cannot_be_parsed_names_none_of_it(broker: str, character: str) -> None:
    password = f"Br0{character}ker-PW"
    with pytest.raises(BrokerAddressError) as raised:
        parse_broker(broker.format(pw=password))
    message = str(raised.value)
    assert "\n" not in message
    for part in ("Br0", "ker-PW", "usr7", "h0st", "p0rt", "t0pic", "::1"):
        assert part not in message
    assert redacted_broker(broker.format(pw=password)) == "(a broker address that cannot be parsed)"


def test_the_setting_is_named() -> None:
    with pytest.raises(BrokerAddressError, match=r"^IA_BROKER: a broker address is not host:port") as raised:
        check_broker(Settings(_env_file=None, broker="kafka://u:Secret-1@h:x"))
    assert "Secret-1" not in str(raised.value)
