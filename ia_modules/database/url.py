"""Parsing of database URLs: which backend, where, and which password to keep out of messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import DatabaseError, Secrets

Dialect = Literal["postgresql", "sqlite"]

_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}
_SQLITE_PREFIX = "sqlite:///"


class SecretLike(Protocol):
    """Anything holding a secret string, as pydantic's ``SecretStr`` does."""

    def get_secret_value(self) -> str: ...


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
        ``sqlite:///relative/or//absolute/path`` and ``sqlite:///:memory:``."""
        raw = url if isinstance(url, str) else url.get_secret_value()
        if raw.startswith(_SQLITE_PREFIX):
            path = raw[len(_SQLITE_PREFIX) :]
            if not path or "?" in path:
                raise DatabaseError(f"invalid SQLite URL {raw!r}: expected sqlite:///path or sqlite:///:memory:")
            return cls("sqlite", raw, raw, Secrets(), sqlite_path=path)
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        if scheme not in _POSTGRES_SCHEMES:
            # Never echo the URL itself: it may hold a password.
            raise DatabaseError(
                f"unsupported database URL scheme {scheme or '(none)'!r}: expected postgresql://, postgres://, "
                "sqlite:///path or sqlite:///:memory:"
            )
        parts = urlsplit(raw)
        pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
        query_passwords = [value for key, _, value in pairs if unquote(key) == "password"]
        passwords = [parts.password, *query_passwords]
        secrets = Secrets([*passwords, *(unquote(p) for p in passwords if p)])
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        elif parts.password == "":
            netloc = netloc.replace(":@", "@", 1)
        safe_query = "&".join(
            f"{key}={'***' if unquote(key) == 'password' else value}" if eq else key for key, eq, value in pairs
        )
        redacted = urlunsplit(("postgresql", netloc, parts.path, safe_query, ""))
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))
        return cls("postgresql", dsn, redacted, secrets)
