"""DatabaseManager against real SQLite files and a real PostgreSQL: CRUD, rows as dicts, placeholders,
transactions, errors that name the query, and passwords that never reach a message or a log."""

from __future__ import annotations

import asyncio
import logging
import traceback
from datetime import UTC, date, datetime

import pytest

from ia_modules.database import DatabaseConnectionError, DatabaseError, DatabaseManager
from tests.integration.postgres_proxy import PostgresProxy
from tests.postgres_server import PostgresForTests, with_login

pytestmark = pytest.mark.integration


async def test_crud_with_rows_as_dicts(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
    assert (
        await db.execute("INSERT INTO items (id, name, score) VALUES (?, ?, ?), (?, ?, ?)", (1, "a", 0.5, 2, "b", 1.5))
        == 2
    )
    assert await db.fetch_one("SELECT id, name, score FROM items WHERE id = ?", (1,)) == {
        "id": 1,
        "name": "a",
        "score": 0.5,
    }
    assert await db.fetch_one("SELECT * FROM items WHERE id = ?", (99,)) is None
    assert await db.execute("UPDATE items SET score = score + ? WHERE score > ?", (1, 0)) == 2
    assert await db.fetch_all("SELECT name, score FROM items ORDER BY id") == [
        {"name": "a", "score": 1.5},
        {"name": "b", "score": 2.5},
    ]
    assert await db.execute("DELETE FROM items WHERE name = ?", ("a",)) == 1
    assert await db.fetch_all("SELECT id FROM items") == [{"id": 2}]


async def test_question_marks_in_literals_and_comments_are_not_placeholders(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE notes (body TEXT, tag TEXT)")
    await db.execute("INSERT INTO notes (body, tag) VALUES ('why? -- not a comment', ?) -- really? \n", ("t1",))
    row = await db.fetch_one("SELECT body, tag, '?' AS q /* ? */ FROM notes WHERE tag = ?", ("t1",))
    assert row == {"body": "why? -- not a comment", "tag": "t1", "q": "?"}


async def test_postgres_dollar_quotes_and_jsonb_operator(postgres_url: str) -> None:
    async with DatabaseManager(postgres_url, project_migrations_dir=False) as db:
        row = await db.fetch_one("SELECT $$is this ?$$ AS body, ?::jsonb ?? 'k' AS has_k", ('{"k": 1}',))
        assert row == {"body": "is this ?", "has_k": True}
        native = await db.fetch_one("SELECT $1::int + 1 AS n", (41,))
        assert native == {"n": 42}


async def test_executemany_is_all_or_nothing(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE uniq (id INTEGER PRIMARY KEY, v TEXT)")
    await db.executemany("INSERT INTO uniq (id, v) VALUES (?, ?)", [(1, "a"), (2, "b")])
    with pytest.raises(DatabaseError, match=r"\[query: INSERT INTO uniq"):
        await db.executemany("INSERT INTO uniq (id, v) VALUES (?, ?)", [(3, "c"), (1, "duplicate")])
    assert await db.fetch_all("SELECT id FROM uniq ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_transaction_commits_or_rolls_back(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO ledger (id, amount) VALUES (?, ?)", (1, 10))
        await tx.execute("INSERT INTO ledger (id, amount) VALUES (?, ?)", (2, -10))
    with pytest.raises(RuntimeError, match="abort"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO ledger (id, amount) VALUES (?, ?)", (3, 5))
            raise RuntimeError("abort")
    assert await db.fetch_all("SELECT id FROM ledger ORDER BY id") == [{"id": 1}, {"id": 2}]


async def test_execute_script_runs_several_statements_in_one_transaction(db: DatabaseManager) -> None:
    await db.execute_script("CREATE TABLE s (x INTEGER); INSERT INTO s VALUES (1); INSERT INTO s VALUES (2);")
    with pytest.raises(DatabaseError):
        await db.execute_script("INSERT INTO s VALUES (3); INSERT INTO missing_table VALUES (4);")
    assert await db.fetch_all("SELECT x FROM s ORDER BY x") == [{"x": 1}, {"x": 2}]


async def test_concurrent_statements_and_transactions_do_not_interleave(db: DatabaseManager) -> None:
    await db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
    await db.execute("INSERT INTO counter (id, n) VALUES (1, 0)")

    async def bump() -> None:
        async with db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT n FROM counter WHERE id = 1 FOR UPDATE"
                if db.dialect == "postgresql"
                else "SELECT n FROM counter WHERE id = 1"
            )
            assert row is not None
            await asyncio.sleep(0)
            await tx.execute("UPDATE counter SET n = ? WHERE id = 1", (row["n"] + 1,))

    async def insert(i: int) -> None:
        await db.execute("INSERT INTO counter (id, n) VALUES (?, ?)", (100 + i, i))

    await asyncio.gather(*(bump() for _ in range(20)), *(insert(i) for i in range(20)))
    assert await db.fetch_one("SELECT n FROM counter WHERE id = 1") == {"n": 20}
    assert await db.fetch_one("SELECT count(*) AS c FROM counter") == {"c": 21}


async def test_sqlite_statement_on_the_manager_inside_its_transaction_is_refused(tmp_path: object) -> None:
    async with DatabaseManager("sqlite:///:memory:", project_migrations_dir=False) as db:
        await db.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(DatabaseError, match="on the transaction's session"):
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (1)")
        assert await db.fetch_all("SELECT x FROM t") == []


async def test_errors_name_the_first_line_of_the_query(db: DatabaseManager) -> None:
    with pytest.raises(DatabaseError) as info:
        await db.fetch_all("\n  SELECT no_such_column\n  FROM no_such_table\n")
    assert "[query: SELECT no_such_column]" in str(info.value)
    assert info.value.query == "SELECT no_such_column"
    assert not isinstance(info.value, DatabaseConnectionError)


async def test_postgres_errors_carry_the_sqlstate(postgres_url: str) -> None:
    async with DatabaseManager(postgres_url, project_migrations_dir=False) as db:
        await db.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
        await db.execute("INSERT INTO u VALUES (?)", (1,))
        with pytest.raises(DatabaseError) as info:
            await db.execute("INSERT INTO u VALUES (?)", (1,))
        assert info.value.sqlstate == "23505"


async def test_guide_troubleshooting_flow_on_sqlite_memory() -> None:
    db = DatabaseManager("sqlite:///:memory:")
    assert await db.connect() is True
    assert await db.fetch_one("SELECT 1 as test") == {"test": 1}
    await db.close()


async def test_unix_socket_and_postgres_scheme_urls(postgres_url: str) -> None:
    assert "?host=/" in postgres_url  # the embedded server (or a socket URL given in IA_TEST_DATABASE_URL)
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        async with DatabaseManager(url, project_migrations_dir=False) as db:
            assert db.dialect == "postgresql"
            assert await db.fetch_one("SELECT current_database() AS name") is not None
            assert db.asyncpg_pool is not None


async def test_sqlite_has_no_asyncpg_pool() -> None:
    async with DatabaseManager("sqlite:///:memory:") as db:
        with pytest.raises(DatabaseConnectionError):
            _ = db.asyncpg_pool


async def test_unreachable_database_is_a_connection_error(tmp_path: object) -> None:
    db = DatabaseManager("postgresql://nobody:topsecret-123@/none?host=/nonexistent-dir&port=5999", connect_timeout=2)
    with pytest.raises(DatabaseConnectionError) as info:
        await db.connect()
    assert "topsecret-123" not in str(info.value)
    assert "***" in str(info.value)


def _everything_printed(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_wrong_password_never_reaches_errors_or_logs(
    postgres_server: PostgresForTests, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if postgres_server.password_login is None:
        user, wrong = "postgres", "wrong-pass-7f3a"
    else:
        user, wrong = postgres_server.password_login[0], "wrong-pass-7f3a"
    url = with_login(postgres_url, user, wrong)
    db = DatabaseManager(url, project_migrations_dir=False)
    assert wrong not in repr(db) and wrong not in db.url
    try:
        await db.connect()
    except DatabaseConnectionError as exc:
        printed = _everything_printed(exc)
        assert "password authentication failed" in printed
        assert wrong not in printed
    else:
        await db.close()
        pytest.skip("this server does not check passwords on this connection")
    with pytest.raises(DatabaseConnectionError) as again:
        await db.fetch_one("SELECT 1")  # a query connects first, and fails the same way
    assert wrong not in _everything_printed(again.value)
    assert wrong not in caplog.text


async def test_correct_password_stays_out_of_query_errors_and_logs(
    postgres_server: PostgresForTests, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if postgres_server.password_login is None:
        pytest.skip("no password-checked role on this server")
    caplog.set_level(logging.DEBUG)
    user, password = postgres_server.password_login
    url = with_login(postgres_url, user, password)
    async with DatabaseManager(url, project_migrations_dir=False) as db:
        assert await db.fetch_one("SELECT current_user AS who") == {"who": user}
        with pytest.raises(DatabaseError) as info:
            await db.fetch_one("SELECT ? AS echoed, 1/0 AS boom", (f"I typed {password}",))
        assert password not in _everything_printed(info.value)
        assert password not in repr(db)
    assert password not in caplog.text


async def test_datetimes_and_iso_strings_work_as_parameters_on_both(db: DatabaseManager) -> None:
    """One datetime parameter works on both backends; an ISO 8601 string for a PostgreSQL timestamp or date
    parameter is converted (asyncpg alone would refuse it), also inside a transaction and in executemany."""
    stamp = "TIMESTAMPTZ" if db.dialect == "postgresql" else "TEXT"
    await db.execute(f"CREATE TABLE events (id INTEGER PRIMARY KEY, at {stamp}, day DATE, note TEXT)")
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    await db.execute("INSERT INTO events (id, at, day, note) VALUES (?, ?, ?, ?)", (1, when, date(2024, 5, 6), "dt"))
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO events (id, at, day, note) VALUES (?, ?, ?, ?)",
            (2, "2024-05-06T07:08:09+00:00", "2024-05-06", "iso"),
        )
    await db.executemany(
        "INSERT INTO events (id, at, day, note) VALUES (?, ?, ?, ?)",
        [(3, "2024-05-06 07:08:09+00:00", date(2024, 5, 6), "many"), (4, when, "2024-05-06", "mixed")],
    )
    rows = await db.fetch_all("SELECT id, at, day FROM events WHERE at >= ? ORDER BY id", (when,))
    assert [row["id"] for row in rows] == [1, 2, 3, 4]
    if db.dialect == "postgresql":
        assert {row["at"] for row in rows} == {when} and {row["day"] for row in rows} == {date(2024, 5, 6)}
    if db.dialect == "postgresql":  # text that is no time is still refused, naming the argument
        with pytest.raises(DatabaseError, match=r"invalid input for query argument \$2"):
            await db.execute("INSERT INTO events (id, at) VALUES (?, ?)", (5, "not a time"))


async def test_a_connection_lost_while_going_back_to_the_pool_fails_nothing(postgres_url: str) -> None:
    async with (
        PostgresProxy(postgres_url, cut_on=b"RESET ALL") as proxy,
        DatabaseManager(proxy.url, project_migrations_dir=False) as db,
    ):
        await db.execute("CREATE TABLE kept (n int)")
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO kept VALUES (1)")
        assert await db.fetch_all("SELECT n FROM kept") == [{"n": 1}]
        assert proxy.cuts == 3  # every release above lost its connection, and the pool opened a new one
