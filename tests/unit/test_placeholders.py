"""`?` to `$n` translation for asyncpg: only placeholders in SQL code are numbered; literals, quoted identifiers,
dollar-quoted bodies and comments pass through byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ia_modules.database.errors import Secrets, first_line
from ia_modules.database.placeholders import to_numbered
from ia_modules.database.url import DatabaseURL


@pytest.mark.parametrize(
    ("sql", "expected", "count"),
    [
        ("SELECT 1", "SELECT 1", 0),
        ("INSERT INTO t (a, b) VALUES (?, ?)", "INSERT INTO t (a, b) VALUES ($1, $2)", 2),
        ("SELECT '?' AS q, ? AS p", "SELECT '?' AS q, $1 AS p", 1),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1),
        ("SELECT E'it\\'s ?', ?", "SELECT E'it\\'s ?', $1", 1),
        ("SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1),
        ("SELECT 'a\\', ?", "SELECT 'a\\', $1", 1),  # standard strings: a backslash escapes nothing
        ('SELECT "col?" FROM "t""?" WHERE x = ?', 'SELECT "col?" FROM "t""?" WHERE x = $1', 1),
        ("SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2", 2),
        ("SELECT /* a? /* nested? */ still? */ ?", "SELECT /* a? /* nested? */ still? */ $1", 1),
        ("SELECT $$ a ? b $$, ?", "SELECT $$ a ? b $$, $1", 1),
        ("SELECT $fn$ a ? $$ ? $fn$, ?", "SELECT $fn$ a ? $$ ? $fn$, $1", 1),
        ("SELECT data ?? 'key' FROM t WHERE id = ?", "SELECT data ? 'key' FROM t WHERE id = $1", 1),
        ("SELECT data ??| array['a'] WHERE x = ?", "SELECT data ?| array['a'] WHERE x = $1", 1),
        ("SELECT ?::int, ?::jsonb", "SELECT $1::int, $2::jsonb", 2),
        ("SELECT a$b, ? FROM t", "SELECT a$b, $1 FROM t", 1),  # $ inside an identifier opens nothing
        ("SELECT $1, data ? 'k'", "SELECT $1, data ? 'k'", 0),  # native placeholders: untouched
        ("SELECT '$1', ?", "SELECT '$1', $1", 1),  # a $1 inside a literal is not native style
        ("SELECT 'unterminated ?", "SELECT 'unterminated ?", 0),
    ],
)
def test_translation(sql: str, expected: str, count: int) -> None:
    translated = to_numbered(sql)
    assert (translated.sql, translated.count) == (expected, count)


def test_plpgsql_body_with_placeholders_and_quotes_is_left_alone() -> None:
    sql = """CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    -- a comment with ? and '
    NEW.note := 'what?';
    RETURN NEW;
END;
$body$;
INSERT INTO t VALUES (?)"""
    translated = to_numbered(sql)
    assert translated.count == 1
    assert translated.sql == sql[: sql.rindex("?")] + "$1)"


# Segments that are not code: each may hold ? and must come out unchanged.
_FREE_TEXT = st.text(alphabet="ab ?;$'\"-/*\\\n", max_size=12)
_literal = _FREE_TEXT.map(lambda s: "'" + s.replace("'", "''") + "'")
_identifier = _FREE_TEXT.map(lambda s: '"' + s.replace('"', '""') + '"')
_line_comment = st.text(alphabet="ab ?'\"$", max_size=12).map(lambda s: "--" + s + "\n")
_block_comment = st.text(alphabet="ab ?'\"$\n", max_size=12).map(lambda s: "/*" + s + "*/")
_dollar = st.text(alphabet="ab ?;'\"\n", max_size=12).map(lambda s: "$q$" + s + "$q$")
_code = st.sampled_from(["SELECT ", ", ", " = ", "x", "(", ")", " + 1 "])


@given(st.lists(st.one_of(_literal, _identifier, _line_comment, _block_comment, _dollar, _code, st.just("?"))))
def test_only_code_placeholders_are_numbered(segments: list[str]) -> None:
    sql = " ".join(segments)
    expected_parts = []
    count = 0
    for segment in segments:
        if segment == "?":
            count += 1
            expected_parts.append(f"${count}")
        else:
            expected_parts.append(segment)
    translated = to_numbered(sql)
    assert translated.count == count
    assert translated.sql == " ".join(expected_parts)


def test_first_line_names_the_query() -> None:
    assert first_line("\n  -- insert a row\n  INSERT INTO t\n VALUES (?)") == "INSERT INTO t"
    assert first_line("-- only a comment") == "-- only a comment"
    assert len(first_line("SELECT " + "x, " * 100)) == 120


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr%40t@db.example:5432/app",
        "postgres://app:s3cr%40t@/app?host=/run/postgresql",
        "postgresql://app@db.example/app?password=s3cr%40t&sslmode=require",
    ],
)
def test_url_password_is_redacted_and_scrubbed(url: str) -> None:
    parsed = DatabaseURL.parse(url)
    assert parsed.dialect == "postgresql"
    assert "s3cr" not in parsed.redacted and "***" in parsed.redacted
    assert "s3cr" not in repr(parsed)
    assert parsed.secrets.scrub("failed for s3cr@t and s3cr%40t") == "failed for *** and ***"


def test_embedded_style_url_without_password() -> None:
    parsed = DatabaseURL.parse("postgresql://postgres:@/postgres?host=/tmp/pg")
    assert parsed.redacted == "postgresql://postgres@/postgres?host=/tmp/pg"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///./dev_data.db", "./dev_data.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    parsed = DatabaseURL.parse(url)
    assert (parsed.dialect, parsed.sqlite_path) == ("sqlite", path)


def test_unsupported_url_does_not_echo_the_password() -> None:
    with pytest.raises(Exception, match="unsupported database URL scheme 'mysql'") as info:
        DatabaseURL.parse("mysql://root:hunter2@localhost/db")
    assert "hunter2" not in str(info.value)


def test_secrets_ignore_empty_passwords() -> None:
    assert Secrets(["", None]).scrub("text") == "text"
