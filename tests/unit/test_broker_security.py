"""The broker security settings (IA_BROKER_SECURITY_PROTOCOL, IA_BROKER_SASL_MECHANISM, IA_BROKER_USERNAME,
IA_BROKER_PASSWORD, IA_BROKER_CA_FILE): checked together when read, each problem one line naming its setting and
never the password; turned into the aiokafka clients' keyword arguments; a broker's refusal turned into one line."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import certifi
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from pydantic import SecretStr, ValidationError

from streams.kafka.security import PLAINTEXT, BrokerRefusals, KafkaSecurity, unreachable_broker
from streams.settings import Settings, settings_problems
from streams.worker import WorkerOptions

PASSWORD = "S3cret/pass:word@#"
CA_BUNDLE = certifi.where()  # a real PEM bundle
SASL_SSL = {
    "IA_BROKER": "kafka://kafka.example:9093",
    "IA_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
    "IA_BROKER_SASL_MECHANISM": "SCRAM-SHA-256",
    "IA_BROKER_USERNAME": "ia",
    "IA_BROKER_PASSWORD": PASSWORD,
    "IA_BROKER_CA_FILE": CA_BUNDLE,
}


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> Settings:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return Settings()


def problems_with(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        settings_with(monkeypatch, **env)
    lines = settings_problems(raised.value)
    assert not any(PASSWORD in line for line in lines)
    return lines


# -- settings ----------------------------------------------------------------------------------------------------


def test_unset_means_plaintext_and_the_clients_get_only_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(monkeypatch)
    security = KafkaSecurity.from_settings(settings)
    assert security == PLAINTEXT == WorkerOptions().security
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_scram_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**SASL_SSL, "IA_BROKER_SECURITY_PROTOCOL": "sasl_ssl", "IA_BROKER_SASL_MECHANISM": "scram-sha-256"}
    settings = settings_with(monkeypatch, **env)
    assert settings.broker_security_protocol == "SASL_SSL"
    assert settings.broker_sasl_mechanism == "SCRAM-SHA-256"
    assert settings.broker_password is not None and settings.broker_password.get_secret_value() == PASSWORD
    assert settings.broker_ca_file == Path(CA_BUNDLE)
    assert PASSWORD not in repr(settings) and PASSWORD not in repr(KafkaSecurity.from_settings(settings))


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        ("IA_BROKER_SASL_MECHANISM", "IA_BROKER_SASL_MECHANISM: missing: IA_BROKER_SECURITY_PROTOCOL SASL_SSL needs "
                                     "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        ("IA_BROKER_USERNAME", "IA_BROKER_USERNAME: missing: IA_BROKER_SECURITY_PROTOCOL SASL_SSL needs a user name"),
        ("IA_BROKER_PASSWORD", "IA_BROKER_PASSWORD: missing: IA_BROKER_SECURITY_PROTOCOL SASL_SSL needs the user's "
                               "password"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("unset", [None, ""], ids=["unset", "empty"])
def test_a_sasl_protocol_without_its_login_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, missing: str, line: str, unset: str | None
) -> None:
    assert problems_with(monkeypatch, **{**SASL_SSL, missing: unset}) == [line]


def test_a_security_protocol_needs_a_broker_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER": None}) == [
        "IA_BROKER_SECURITY_PROTOCOL: SASL_SSL needs IA_BROKER: the embedded broker takes PLAINTEXT only "
        "(got 'SASL_SSL')"
    ]


def test_an_unknown_protocol_or_mechanism_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_SASL_MECHANISM": "GSSAPI"}) == [
        "IA_BROKER_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512' (got 'GSSAPI')"
    ]
    lines = problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_SECURITY_PROTOCOL": "TLS"})
    assert lines == [
        "IA_BROKER_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL' (got 'TLS')"
    ]


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_a_login_without_a_sasl_protocol_is_refused_rather_than_ignored(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    lines = problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_SECURITY_PROTOCOL": protocol})
    reason = f"only SASL_PLAINTEXT and SASL_SSL use it, and IA_BROKER_SECURITY_PROTOCOL is {protocol}"
    expected = [
        f"IA_BROKER_SASL_MECHANISM: {reason} (got 'SCRAM-SHA-256')",
        f"IA_BROKER_USERNAME: {reason} (got 'ia')",
        f"IA_BROKER_PASSWORD: {reason}",  # the password is not repeated
    ]
    if protocol == "PLAINTEXT":
        expected.append(
            f"IA_BROKER_CA_FILE: only SSL and SASL_SSL use it, and IA_BROKER_SECURITY_PROTOCOL is PLAINTEXT "
            f"(got '{CA_BUNDLE}')"
        )
    assert lines == expected


def test_a_ca_file_must_exist_and_hold_pem_certificates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    assert problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_CA_FILE": str(missing)}) == [
        f"IA_BROKER_CA_FILE: no such file (got '{missing}')"
    ]
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    (line,) = problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_CA_FILE": str(garbage)})
    assert line.startswith("IA_BROKER_CA_FILE: not a PEM CA bundle (") and line.endswith(f"(got '{garbage}')")
    assert problems_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_CA_FILE": str(tmp_path)}) == [
        f"IA_BROKER_CA_FILE: no such file (got '{tmp_path}')"
    ]


def test_an_empty_ca_file_setting_means_the_systems_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(monkeypatch, **{**SASL_SSL, "IA_BROKER_CA_FILE": ""})
    assert settings.broker_ca_file is None


def test_tls_runs_on_asyncios_loop_and_refuses_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_with(monkeypatch, **{**SASL_SSL, "IA_EVENT_LOOP": "auto"}).event_loop == "asyncio"
    assert settings_with(monkeypatch, **{**SASL_SSL, "IA_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    (line,) = problems_with(monkeypatch, **{**SASL_SSL, "IA_EVENT_LOOP": "uvloop"})
    assert line.startswith("IA_BROKER_SECURITY_PROTOCOL: SASL_SSL does not work with IA_EVENT_LOOP=uvloop")
    plain = {**SASL_SSL, "IA_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "IA_BROKER_CA_FILE": None}
    assert settings_with(monkeypatch, **{**plain, "IA_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"


# -- the clients' keyword arguments --------------------------------------------------------------------------------


def test_sasl_ssl_gives_a_verifying_tls_context_and_the_login() -> None:
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "ia", SecretStr(PASSWORD), Path(CA_BUNDLE))
    kwargs = security.client_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ia",
        "sasl_plain_password": PASSWORD,
    }
    assert security.client_kwargs()["ssl_context"] is context  # one context per CA file, loaded once
    assert PASSWORD not in repr(security) and PASSWORD not in str(security)


def test_ssl_alone_has_no_login_and_sasl_plaintext_no_tls() -> None:
    tls = KafkaSecurity("SSL").client_kwargs()
    assert set(tls) == {"security_protocol", "ssl_context"} and tls["security_protocol"] == "SSL"
    assert KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "ia", SecretStr(PASSWORD)).client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "ia",
        "sasl_plain_password": PASSWORD,
    }


async def test_every_aiokafka_client_takes_the_keyword_arguments() -> None:
    kwargs = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "ia", SecretStr(PASSWORD), Path(CA_BUNDLE)).client_kwargs()
    producer = AIOKafkaProducer(bootstrap_servers="kafka.example:9093", **kwargs)
    consumer = AIOKafkaConsumer(bootstrap_servers="kafka.example:9093", group_id=None, **kwargs)
    admin = AIOKafkaAdminClient(bootstrap_servers="kafka.example:9093", **kwargs)
    for client in (producer.client, consumer._client, admin._client):  # nothing started: no connection made
        assert client._security_protocol == "SASL_SSL" and client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._ssl_context is kwargs["ssl_context"]


# -- a refusal, as one line ------------------------------------------------------------------------------------------

SECURE = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "ia", SecretStr(PASSWORD), Path("/etc/ia/ca.pem"))
WHERE = "kafka://kafka.example:9093"


def test_refused_credentials_name_the_user_and_the_settings_not_the_password() -> None:
    line = unreachable_broker(WHERE, SECURE, SaslAuthenticationFailed("invalid credentials"))
    assert line == (
        "the Kafka broker at kafka://kafka.example:9093 (IA_BROKER) refused the credentials of user 'ia' "
        "(IA_BROKER_USERNAME/IA_BROKER_PASSWORD): SASL authentication failed"
    )


def test_other_refusals_name_their_setting() -> None:
    mechanism = unreachable_broker(WHERE, SECURE, UnsupportedSaslMechanismError("no"))
    assert mechanism.endswith("does not accept the SASL mechanism SCRAM-SHA-256 (IA_BROKER_SASL_MECHANISM)")
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate in certificate chain"
    assert unreachable_broker(WHERE, SECURE, untrusted) == (
        "the Kafka broker at kafka://kafka.example:9093 (IA_BROKER) has a TLS certificate that the CA bundle "
        "/etc/ia/ca.pem (IA_BROKER_CA_FILE) does not vouch for: self-signed certificate in certificate chain"
    )
    assert "no TLS connection to the Kafka broker" in unreachable_broker(WHERE, SECURE, ssl.SSLError(1, "bad"))
    elsewhere = ssl.SSLCertVerificationError(1, "certificate verify failed")
    elsewhere.verify_code, elsewhere.verify_message = 62, "Hostname mismatch, certificate is not valid for 'kafka'."
    assert unreachable_broker(WHERE, SECURE, elsewhere) == (
        "the Kafka broker at kafka://kafka.example:9093 (IA_BROKER) has a TLS certificate for another host: "
        "Hostname mismatch, certificate is not valid for 'kafka'."
    )


def test_a_broker_that_does_not_answer_is_said_as_before_and_with_the_protocol() -> None:
    assert unreachable_broker(WHERE, PLAINTEXT, None) == (
        "cannot reach the Kafka broker at kafka://kafka.example:9093 (IA_BROKER): is it running?"
    )
    assert unreachable_broker(WHERE, SECURE, None) == (
        "cannot reach the Kafka broker at kafka://kafka.example:9093 (IA_BROKER) over SASL_SSL "
        "(IA_BROKER_SECURITY_PROTOCOL): is it running, and does it take SASL_SSL connections there?"
    )


def test_a_refused_bootstrap_is_remembered_and_kept_from_the_log() -> None:
    refusals = BrokerRefusals()

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, "client.py", 216, 'Unable connect to "%s:%s": %s',
                                 ("127.0.0.1", 9093, error), None)  # fmt: skip

    refused = SaslAuthenticationFailed("invalid credentials")
    assert refusals.filter(record(refused)) is False
    assert refusals.last is refused
    assert refusals.filter(record(ConnectionRefusedError(111, "Connection refused"))) is True
    assert refusals.last is refused  # a refused TCP connection is not a refusal of the login
