"""How the Kafka clients authenticate and encrypt: the IA_BROKER_* security settings turned into the keyword
arguments every aiokafka client takes, and a broker's refusal of them turned into one line naming the setting.

Every client the product makes (the worker's producer and consumer, topic admin, the cluster id, the join-state
restore, ``publish``, ``consume``, ``dlq replay``, the demo) gets ``KafkaSecurity.client_kwargs()``. The Faust App
beside the worker starts no Kafka client (``streams/app.py``), so it needs none.
"""

from __future__ import annotations

import functools
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

if TYPE_CHECKING:
    from streams.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

SASL_PROTOCOLS: frozenset[str] = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS: frozenset[str] = frozenset({"SSL", "SASL_SSL"})


@dataclass(frozen=True)
class KafkaSecurity:
    """The security protocol, SASL login and CA bundle the clients use; the password stays a ``SecretStr`` (its
    repr is masked) until it is handed to a client."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The settings' IA_BROKER_SECURITY_PROTOCOL, IA_BROKER_SASL_MECHANISM, IA_BROKER_USERNAME,
        IA_BROKER_PASSWORD and IA_BROKER_CA_FILE (checked for consistency when the settings were read)."""
        return cls(
            protocol=settings.broker_security_protocol,
            sasl_mechanism=settings.broker_sasl_mechanism,
            username=settings.broker_username,
            password=settings.broker_password,
            ca_file=settings.broker_ca_file,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``: the
        protocol; with TLS an SSL context trusting IA_BROKER_CA_FILE (else the system's CAs) and checking the
        broker's host name; with SASL the mechanism, user and password."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = _ssl_context(self.ca_file)
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password.get_secret_value() if self.password is not None else None
        return kwargs


PLAINTEXT = KafkaSecurity()
"""No TLS, no SASL: the embedded broker, and what a client gets when it is given nothing else."""


@functools.cache
def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """One context per CA bundle for all of a process's clients (loading it once)."""
    context: ssl.SSLContext = create_ssl_context(cafile=ca_file)
    return context


def check_ca_file(path: Path) -> str | None:
    """Why ``path`` cannot serve as the CA bundle (missing, unreadable, no PEM certificate in it); None if it can."""
    if not path.is_file():
        return "no such file"
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        return f"not a PEM CA bundle ({getattr(exc, 'reason', None) or exc})"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


# -- a broker's refusal, as one line --------------------------------------------------------------------------

_BOOTSTRAP_FAILED = 'Unable connect to "%s:%s": %s'
"""What aiokafka's client logs (logger ``aiokafka``) for each bootstrap server it could not connect to, before it
raises ``KafkaConnectionError`` without the cause."""

_REFUSALS = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    IllegalSaslStateError,
    UnsupportedSaslMechanismError,
    ssl.SSLError,
)


_NAME_MISMATCH = (62, 64)
"""OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the CA vouches for the certificate,
but it names another host than IA_BROKER does."""


class BrokerRefusals(logging.Filter):
    """On the ``aiokafka`` logger: remembers why a bootstrap connection was refused (credentials, SASL mechanism,
    TLS) and keeps that record out of the log, as the command reports it in one line (``unreachable_broker``).
    Other records go through."""

    def __init__(self) -> None:
        super().__init__()
        self.last: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == _BOOTSTRAP_FAILED and isinstance(args, tuple) and len(args) == 3:
            if isinstance(args[2], _REFUSALS):
                self.last = args[2]
                return False
        return True


refusals = BrokerRefusals()
"""The process's one filter (``streams.cli.main`` puts it on the ``aiokafka`` logger)."""


def unreachable_broker(where: str, security: KafkaSecurity, refused: BaseException | None) -> str:
    """The error line for a broker the clients could not bootstrap from: ``where`` (the address, safe to print),
    and what it refused, when it refused something. Names the settings to look at; never the password."""
    broker = f"the Kafka broker at {where} (IA_BROKER)"
    if isinstance(refused, SaslAuthenticationFailed | AuthenticationFailedError | IllegalSaslStateError):
        return (
            f"{broker} refused the credentials of user {security.username!r} "
            f"(IA_BROKER_USERNAME/IA_BROKER_PASSWORD): SASL authentication failed"
        )
    if isinstance(refused, UnsupportedSaslMechanismError):
        return f"{broker} does not accept the SASL mechanism {security.sasl_mechanism} (IA_BROKER_SASL_MECHANISM)"
    if isinstance(refused, ssl.SSLCertVerificationError) and getattr(refused, "verify_code", None) in _NAME_MISMATCH:
        return f"{broker} has a TLS certificate for another host: {refused.verify_message}"
    if isinstance(refused, ssl.SSLCertVerificationError):
        trusted = f"the CA bundle {security.ca_file}" if security.ca_file else "the system's CAs"
        return (
            f"{broker} has a TLS certificate that {trusted} (IA_BROKER_CA_FILE) does not vouch for: "
            f"{getattr(refused, 'verify_message', None) or refused}"
        )
    if isinstance(refused, ssl.SSLError):
        return (
            f"no TLS connection to {broker} (IA_BROKER_SECURITY_PROTOCOL {security.protocol}): "
            f"{getattr(refused, 'reason', None) or refused}"
        )
    if security.protocol == "PLAINTEXT":
        return f"cannot reach {broker}: is it running?"
    return (
        f"cannot reach {broker} over {security.protocol} (IA_BROKER_SECURITY_PROTOCOL): is it running, and does it "
        f"take {security.protocol} connections there?"
    )
