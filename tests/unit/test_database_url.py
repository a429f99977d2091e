"""Database URLs whose password holds URL characters: parsed by the last '@', masked everywhere, and handed to
asyncpg in a form its own DSN parser turns back into the same password."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from asyncpg import connect_utils  # type: ignore[import-untyped]
from pydantic import SecretStr

from ia_modules.database import DatabaseError, DatabaseManager
from ia_modules.database.errors import DatabaseURLError, Secrets, wrap_error
from ia_modules.database.url import DatabaseURL

CHARACTERS = ["/", "#", "?", "@", "[", "]", ":", "%", " ", "%zz", "&", "=", ";", ",", "'", '"', "\\"]
"""Each goes into a password, as written and percent-encoded ("%zz": a % that is not an escape)."""

TEMPLATES = [
    "postgresql://ia_user:{pw}@127.0.0.1:55432/x4",
    "postgres://ia_user:{pw}@db.example.com/x4?sslmode=disable&application_name=ia",
    "postgresql://ia_user:{pw}@h1:5432,h2:5433/x4",
    "postgresql://ia_user:{pw}@[::1]:5432/x4",
    "postgresql://ia_user:{pw}@/x4?host=/var/run/postgresql&port=5433",
    "postgresql+asyncpg://ia_user:{pw}@127.0.0.1/x4#fragment",
]


def asyncpg_reads(dsn: str) -> Any:
    """What asyncpg makes of ``dsn`` (its own parser, as ``asyncpg.connect`` and ``create_pool`` call it)."""
    _addresses, params = connect_utils._parse_connect_dsn_and_args(
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None, database=None, ssl=None,
        service=None, servicefile=None, direct_tls=None, server_settings=None, target_session_attrs=None,
        krbsrvname=None, gsslib=None,
    )  # fmt: skip
    return params


def password_for(character: str) -> str:
    return f"S3c{character}r3t-PW"


def variants(password: str) -> list[str]:
    """How a password may leak: as written and percent-encoded."""
    return [password, quote(password, safe="")]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("character", CHARACTERS)
@pytest.mark.parametrize("encoded", [False, True], ids=["as-written", "percent-encoded"])
def test_a_password_with_any_character_is_masked_and_reaches_the_driver_whole(
    template: str, character: str, encoded: bool
) -> None:
    password = password_for(character)
    url = template.format(pw=quote(password, safe="") if encoded else password)
    parsed = DatabaseURL.parse(url)
    assert parsed.dialect == "postgresql"
    assert ":***@" in parsed.redacted
    for leak in variants(password):
        assert leak not in parsed.redacted
        assert leak not in repr(parsed)
        assert parsed.secrets.scrub(f"failed: {leak}!") == "failed: ***!"
    params = asyncpg_reads(parsed.dsn)
    assert params.password == password
    assert params.user == "ia_user"
    assert params.database == "x4"


@pytest.mark.parametrize("character", CHARACTERS)
def test_the_redacted_url_keeps_everything_but_the_password(character: str) -> None:
    url = f"postgresql://ia_user:{password_for(character)}@db:5432/x4?sslmode=disable"
    assert DatabaseURL.parse(url).redacted == "postgresql://ia_user:***@db:5432/x4?sslmode=disable"


def test_the_userinfo_ends_at_the_last_at_sign() -> None:
    """``u:a@b@host``: the password is ``a@b`` and the host ``host`` (a first-'@' split would connect to 'b@host',
    a urlsplit of the whole URL would stop at the '/' or '?' inside the password)."""
    parsed = DatabaseURL.parse("postgresql://u:a@b/c?d#e@host:6000/db")
    assert parsed.redacted == "postgresql://u:***@host:6000/db"
    params = asyncpg_reads(parsed.dsn)
    assert params.password == "a@b/c?d#e"


def test_urls_without_a_password_are_unchanged() -> None:
    for url in ("postgresql://ia@db:5432/ia", "postgresql://ia@/ia?host=/tmp", "postgresql:///ia?host=/tmp"):
        parsed = DatabaseURL.parse(url)
        assert parsed.redacted == url
        assert parsed.dsn == url


def test_a_password_in_the_query_is_masked_too() -> None:
    parsed = DatabaseURL.parse("postgresql://ia@db/ia?password=pa%2Fss+word&sslmode=disable")
    assert parsed.redacted == "postgresql://ia@db/ia?password=***&sslmode=disable"
    assert asyncpg_reads(parsed.dsn).password == "pa/ss word"
    assert parsed.secrets.scrub("x pa/ss word x pa%2Fss+word") == "x *** x ***"


def test_a_secret_str_is_parsed_as_its_value() -> None:
    parsed = DatabaseURL.parse(SecretStr("postgresql://u:p/w#@db/x"))
    assert parsed.redacted == "postgresql://u:***@db/x"


@pytest.mark.parametrize("character", CHARACTERS)
def test_errors_from_the_driver_never_show_the_password(character: str) -> None:
    password = password_for(character)
    parsed = DatabaseURL.parse(f"postgresql://u:{password}@127.0.0.1:1/x")
    for shown in (password, quote(password, safe=""), repr(password)[1:-1]):
        error = wrap_error(ValueError(f"bad value {shown!r} in {shown}"), parsed.secrets, action="connecting")
        assert password not in str(error) and quote(password, safe="") not in str(error)
        assert "***" in str(error)


def test_a_manager_never_shows_the_password() -> None:
    manager = DatabaseManager("postgresql://u:p4ss/w#rd?@[x]@db:5432/x")
    assert manager.url == "postgresql://u:***@db:5432/x"
    assert "p4ss" not in repr(manager)


UNPARSEABLE = [
    "postgresql://u:{pw}@127.0.0.1:port/x",  # a port that is not a number
    "postgresql://u:{pw}",  # no '@' at all: the password would be read as a port
    "postgresql://u:{pw}@[::1/x",  # an unclosed IPv6 bracket
    "postgresql://u:{pw}@[not-ipv6]/x",
    "postgresql://u:{pw}@h:99999/x",
    "postgresql://u:{pw}@h/x?sslmode",  # a query field without '='
    "postgresql://u:{pw}@h/my db",  # a space outside the password
    "postgresql://u:{pw}@/x?host=/tmp&&port=1",
]
CHARACTERS = ["/", "#", "?", "@", "[", "]", ":", "%", " "]


def unparseable_cases() -> list[tuple[str, str]]:
    """Each unparseable URL shape with each character in the password; a URL with no '@' of its own and an '@'
    in the password is left out: ``u:S3c@r3t-PW`` is then a login ``u:S3c`` at host ``r3t-PW``, a valid URL
    (test_a_password_with_an_at_sign_and_no_host_reads_as_a_login_at_a_host)."""
    return [(u, c) for u in UNPARSEABLE for c in CHARACTERS if not (c == "@" and "@" not in u.format(pw=""))]


@pytest.mark.parametrize(("url", "character"), unparseable_cases())
def test_a_url_that_cannot_be_parsed_is_one_error_naming_nothing_after_the_scheme(url: str, character: str) -> None:
    password = password_for(character)
    with pytest.raises(DatabaseURLError) as raised:
        DatabaseURL.parse(url.format(pw=password))
    message = str(raised.value)
    assert message.startswith("cannot parse this postgresql:// URL: ")
    assert "\n" not in message
    for part in ("S3c", "r3t", "PW", "127.0.0.1", "99999", "sslmode", "my db", "not-ipv6", "/tmp"):
        assert part not in message
    assert isinstance(raised.value, DatabaseError)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("mysql://root:hunter2@localhost/db", "'mysql'"),
        ("hunter2@localhost/db", "(none)"),
        ("root:hunter2@localhost://db", "(not a URL scheme)"),
        ("root:hunter2@localhost/db?x=postgresql://", "(not a URL scheme)"),
    ],
)
def test_an_unsupported_scheme_is_named_only_when_it_is_a_scheme(url: str, scheme: str) -> None:
    with pytest.raises(DatabaseURLError) as raised:
        DatabaseURL.parse(url)
    assert str(raised.value).startswith(f"unsupported database URL scheme {scheme}: ")
    assert "hunter2" not in str(raised.value) and "localhost" not in str(raised.value)


@pytest.mark.parametrize("password", ["it's\\a\"pw", "it's\\apw", "tab\tpw"])
def test_secrets_scrub_the_password_also_as_a_repr_shows_it(password: str) -> None:
    secrets = Secrets([password])
    for shown in (password, repr(f"x {password} y"), repr(f'x {password} " y'), repr([password])):
        assert "pw" not in secrets.scrub(shown), shown


def test_a_password_with_an_at_sign_and_no_host_reads_as_a_login_at_a_host() -> None:
    parsed = DatabaseURL.parse("postgresql://u:S3c@r3t-PW")
    assert parsed.redacted == "postgresql://u:***@r3t-PW", "the part before the '@' is masked as a password"
