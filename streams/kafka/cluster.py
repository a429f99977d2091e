"""The broker's cluster id; run ids are uuid5 over "<cluster id>:<topic>:<partition>:<offset>", unique per broker.

Real Kafka reports the id it was formatted with; the embedded Tansu broker the `--cluster-id` it was started with
(a fresh one at every start, so a new in-memory broker never reuses an old run id).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.security import PLAINTEXT, KafkaSecurity

logger = logging.getLogger(__name__)

_URL_BOUNDARY = re.compile(r"(\s*[,;]\s*)(?=[A-Za-z][A-Za-z0-9+.-]*://)")
"""Between two URLs of one setting: a ``,`` or ``;`` followed by the next URL's scheme."""
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SERVER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")
_EXPECTED = "expected kafka://host:port[,host:port...]"


class BrokerAddressError(ValueError):
    """A broker setting that cannot be parsed. The message repeats no part of it after a scheme: a password may be
    anywhere in a malformed address."""


@dataclass(frozen=True)
class BrokerAddress:
    """A broker setting parsed: ``servers`` for the Kafka clients; ``redacted``, safe to print, is the setting with
    any password as ``***``. A user and password (``kafka://user:pass@host:9092``) are not handed to the clients."""

    servers: tuple[str, ...]
    redacted: str
    password: str | None = field(default=None, repr=False)


def _segment(text: str) -> tuple[list[str], str, str | None]:
    """One URL (``[scheme://][user[:password]@]host:port[,host:port...][/]``): its servers, its redacted form and
    its password. The user information ends at the segment's last ``@``, so a password may hold any character."""
    scheme = _SCHEME.match(text)
    if scheme is None and "://" in text:
        raise BrokerAddressError(f"a broker URL does not start with a scheme ({_EXPECTED})")
    prefix = scheme.group(0) if scheme else ""
    userinfo, at, hosts = text[len(prefix) :].rpartition("@")
    servers = [entry.strip() for entry in re.split(r"[,;]", hosts.strip().rstrip("/"))]
    servers = [entry for entry in servers if entry]
    for entry in servers:
        if not _SERVER.fullmatch(entry):
            raise BrokerAddressError(
                f"a broker address is not host:port ({_EXPECTED}; a user and password end at the last '@')"
            )
    user, colon, password = userinfo.partition(":")
    shown_login = (user + (":***" if colon and password else "") + "@") if at else ""
    return servers, f"{prefix}{shown_login}{hosts.strip()}", password if colon and password else None


def parse_broker(broker: str) -> BrokerAddress:
    """``broker`` as settings and the CLI write it: "kafka://h1:9092,h2:9092", "kafka://h1:9092;kafka://h2:9092",
    "h:9092", each URL optionally with ``user:password@``. BrokerAddressError when it cannot be parsed."""
    pieces = _URL_BOUNDARY.split(broker.strip())
    servers: list[str] = []
    shown: list[str] = []
    passwords: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2:  # a separator, kept as written
            shown.append(piece)
            continue
        found, redacted, password = _segment(piece.strip())
        servers += found
        shown.append(redacted)
        passwords += [password] if password else []
    if not servers:
        raise BrokerAddressError(f"no broker address ({_EXPECTED})")
    return BrokerAddress(tuple(servers), "".join(shown), passwords[0] if passwords else None)


def bootstrap_servers(broker: str) -> list[str]:
    """`host:port` entries of a broker URL: "kafka://h1:9092,h2:9092", "kafka://h1:9092;kafka://h2:9092" or "h:9092"
    (a ``user:password@`` is dropped: the clients' credentials are IA_BROKER_USERNAME and IA_BROKER_PASSWORD, and a
    warning says so once)."""
    address = parse_broker(broker)
    if address.password is not None:
        _warn_credentials_unused(address.redacted)
    return list(address.servers)


@functools.cache
def _warn_credentials_unused(redacted: str) -> None:
    logger.warning(
        "the broker address %s holds a password; it is not used: the Kafka clients log in with IA_BROKER_USERNAME "
        "and IA_BROKER_PASSWORD",
        redacted,
    )


def redacted_broker(broker: str) -> str:
    """``broker`` safe to print: any password as ``***``; a description when it cannot be parsed."""
    try:
        return parse_broker(broker).redacted
    except BrokerAddressError:
        return "(a broker address that cannot be parsed)"


async def cluster_id(bootstrap: str, *, timeout_s: float = 10.0, security: KafkaSecurity = PLAINTEXT) -> str:
    """The cluster id the broker at `bootstrap` reports in a DescribeCluster request (Kafka 2.8+ and Tansu)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap),
        request_timeout_ms=int(timeout_s * 1000),
        **security.client_kwargs(),
    )
    await admin.start()
    try:
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    found = described.get("cluster_id")
    if not found:
        raise RuntimeError(f"the broker at {redacted_broker(bootstrap)} reports no cluster id")
    return str(found)
