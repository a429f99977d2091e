"""Parsing of database URLs: which backend, where, and which password to keep out of messages.

A PostgreSQL URL is read as ``scheme://[user[:password]@]hosts[/database][?query][#fragment]``, where the user
information ends at the *last* ``@`` of the URL: a password may then hold any character (``/ # ? @ [ ] : %`` and
spaces), written as it is or percent-encoded. Everything before that ``@`` counts as user information, so nothing
that might be part of a password is ever printed; an ``@`` in the database name or the query must be written
``%40``. The password is percent-decoded (``%`` followed by two hex digits is an escape, as in any URL: write a
literal ``%41`` as ``%2541``) and handed to the driver percent-encoded again, which its own parser undoes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import parse_qs, quote, quote_plus, unquote, unquote_plus, urlsplit

from .errors import DatabaseURLError, Secrets

Dialect = Literal["postgresql", "sqlite"]

_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}
_SQLITE_PREFIX = "sqlite:///"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HOST = re.compile(r"(?:\[(?P<ip>[^\[\]/@]+)\]|[A-Za-z0-9._~%!$&'()*+;=-]+)(?::(?P<port>[0-9]{1,5}))?")
_EXPECTED = "expected postgresql://user:password@host:port/database"


class SecretLike(Protocol):
    """Anything holding a secret string, as pydantic's ``SecretStr`` does."""

    def get_secret_value(self) -> str: ...


def shown_scheme(raw: str) -> str:
    """The scheme of ``raw`` for a message (``'mysql'``), or what it is instead: only text that is a URL scheme
    is repeated, so that a malformed URL (``user:pw@host://...``) never has a part of its password printed."""
    scheme, found, _ = raw.partition("://")
    if not found:
        return "(none)"
    return repr(scheme.lower()) if _SCHEME.fullmatch(scheme) else "(not a URL scheme)"


def decoded(text: str) -> str:
    """``text`` percent-decoded; as written when its escapes do not decode to UTF-8 text (``50%C3``)."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def host_list_problem(hosts: str) -> str | None:
    """What is wrong with ``host[:port][,host[:port]...]`` (empty: a Unix socket given as ``?host=``), or None."""
    if not hosts:
        return None
    for entry in hosts.split(","):
        match = _HOST.fullmatch(entry)
        if match is None:
            return "is not host[:port][,host[:port]...] (a port is a number)"
        if match["port"] is not None and not 0 < int(match["port"]) < 65536:
            return "has a port that is not between 1 and 65535"
        if match["ip"] is not None:
            try:
                ipaddress.IPv6Address(unquote(match["ip"]))
            except ValueError:
                return "has a host in [brackets] that is not an IPv6 address"
    return None


@dataclass(frozen=True)
class PostgresURLParts:
    """A PostgreSQL URL split by the rule above; ``password`` is decoded, None when the URL gives none."""

    user: str | None
    password: str | None
    hosts: str
    path: str
    query: str
    password_as_written: str | None = field(default=None, repr=False)


def split_postgres_url(raw: str) -> PostgresURLParts:
    """``raw`` (its scheme already checked) split into its parts; DatabaseURLError, naming no part of it after
    the scheme, when it cannot be."""
    scheme, _, rest = raw.partition("://")
    userinfo, at, after = rest.rpartition("@")
    cut = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    hosts, tail = after[:cut], after[cut:]
    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    problem = host_list_problem(hosts)
    if problem is not None:
        where = "after the last '@'" if at else "after '://'"
        problem = f"the host part ({where}, up to the first '/', '?' or '#') {problem}"
    if problem is None and query:
        try:
            parse_qs(query, strict_parsing=True)
        except ValueError:
            problem = "the part after '?' is not name=value pairs joined by '&'"
    if problem is None and any(c.isspace() for c in hosts + path + query):
        problem = "it holds a space outside the password (percent-encode it as %20)"
    if problem is not None:
        raise DatabaseURLError(f"cannot parse this {scheme.lower()}:// URL: {problem} ({_EXPECTED})")
    if not at:
        return PostgresURLParts(None, None, hosts, path, query)
    user, colon, password = userinfo.partition(":")
    return PostgresURLParts(user, decoded(password) if colon else None, hosts, path, query, password if colon else None)


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    return [pair.partition("=") for pair in query.split("&")] if query else []


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed URL. ``dsn`` (with the password) goes only to the driver; ``redacted`` is safe to print."""

    dialect: Dialect
    dsn: str = field(repr=False)
    redacted: str
    secrets: Secrets = field(repr=False, compare=False)
    sqlite_path: str | None = None

    @classmethod
    def parse(cls, url: str | SecretLike) -> DatabaseURL:
        """Accepts ``postgresql://``, ``postgres://`` (also unix sockets: ``postgresql://user@/db?host=/dir``),
        ``sqlite:///relative/or//absolute/path`` and ``sqlite:///:memory:``. DatabaseURLError (holding no part of
        the URL after its scheme) when it cannot be parsed."""
        raw = url if isinstance(url, str) else url.get_secret_value()
        if raw.startswith(_SQLITE_PREFIX):
            path = raw[len(_SQLITE_PREFIX) :]
            if not path or "?" in path:
                raise DatabaseURLError(f"invalid SQLite URL {raw!r}: expected sqlite:///path or sqlite:///:memory:")
            return cls("sqlite", raw, raw, Secrets(), sqlite_path=path)
        scheme = raw.partition("://")[0].lower() if "://" in raw else ""
        if scheme not in _POSTGRES_SCHEMES:
            raise DatabaseURLError(
                f"unsupported database URL scheme {shown_scheme(raw)}: expected postgresql://, postgres://, "
                "sqlite:///path or sqlite:///:memory:"
            )
        parts = split_postgres_url(raw)
        pairs = _query_pairs(parts.query)
        query_passwords = [value for key, _, value in pairs if unquote(key) == "password"]
        secrets = Secrets(
            [
                parts.password_as_written,
                *(variant for p in filter(None, [parts.password]) for variant in (p, quote(p, safe=""), quote_plus(p))),
                *(variant for p in query_passwords for variant in (p, unquote(p), unquote_plus(p))),
            ]
        )
        safe_query = "&".join(
            f"{key}={'***' if unquote(key) == 'password' else value}" if eq else key for key, eq, value in pairs
        )
        login = shown_login = ""
        if parts.user is not None:
            user = quote(decoded(parts.user), safe="")
            if parts.password:
                login, shown_login = f"{user}:{quote(parts.password, safe='')}@", f"{parts.user}:***@"
            else:
                login, shown_login = f"{user}@", f"{parts.user}@"
        rest = f"{parts.hosts}{parts.path}"
        dsn = f"postgresql://{login}{rest}" + (f"?{parts.query}" if parts.query else "")
        try:
            urlsplit(dsn)  # as the driver's parser will; the checks above leave it nothing to refuse
        except ValueError:
            raise DatabaseURLError(f"cannot parse this {scheme}:// URL ({_EXPECTED})") from None
        redacted = f"postgresql://{shown_login}{rest}" + (f"?{safe_query}" if parts.query else "")
        return cls("postgresql", dsn, redacted, secrets)


class SecretURL:
    """A database URL that prints with its password masked (``postgresql://app:***@db/app``), as a setting's
    secret does; ``DatabaseManager(SecretURL(url))`` connects with the real one (``get_secret_value()``).
    DatabaseURLError, naming no part of the URL after its scheme, when it cannot be parsed."""

    def __init__(self, url: str) -> None:
        self._redacted = DatabaseURL.parse(url).redacted
        self._value = url

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self._redacted

    def __repr__(self) -> str:
        return f"SecretURL({self._redacted!r})"

    def __format__(self, spec: str) -> str:
        return format(self._redacted, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretURL) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
