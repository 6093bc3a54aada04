"""A user with a `databases:` list names no other logical database, in any statement form.

`users.<name>.databases` used to close only USE and the login's database: a qualified name
(`other.table`) read and wrote any logical database. Each statement below is refused with 1044
and writes nothing (checked on the backend directly); information_schema's logical view leaves
the other database out; the plan cache, the express lane and the shared prepared routes that
another user warmed for the same statement do not let it through; and the same statements
still work for a user without a list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymysql
import pytest

from router.rows.types import ColumnType
from tests.dal_process import DalProcess
from tests.own_dal import dal_with_a_foreign_database
from tests.psclient import PsClient, ServerError

OTHER = "test_user_dbs"  # a created logical database (server.create_database_prefix test_)


@pytest.fixture(scope="module")
def dal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DalProcess, dict]]:
    with dal_with_a_foreign_database(tmp_path_factory.mktemp("user-dbs"), "user-dbs", OTHER,
                                     "secrets") as started:
        yield started


def _connect(proc: DalProcess, user: str, database: str = "trade") -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=proc.port, user=user, password=user,
                           database=database, autocommit=True, connect_timeout=10,
                           read_timeout=20)


def _secrets(raw: dict) -> list[tuple]:
    """The rows of the other database's table, read on its backend directly."""
    inst = raw["instances"][raw["databases"]["trade"]["default_instance"]]
    conn = pymysql.connect(host=inst["host"], port=inst["port"], user=inst["user"],
                           password=inst["password"], connect_timeout=10)
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute(f"SELECT id, v FROM {OTHER}.secrets ORDER BY id")
        return list(cur.fetchall())


REFUSED = [
    f"SELECT v FROM {OTHER}.secrets WHERE id = 1",
    f"SELECT v FROM `{OTHER}` . `secrets`",
    f"SELECT o.id FROM orders o JOIN {OTHER}.secrets s ON s.id = o.id",
    f"INSERT INTO {OTHER}.secrets VALUES (2, 'written')",
    f"UPDATE {OTHER}.secrets SET v = 'changed' WHERE id = 1",
    f"DELETE FROM {OTHER}.secrets",
    f"SHOW TABLES FROM {OTHER}",
    f"SHOW COLUMNS FROM secrets IN {OTHER}",
    f"DESCRIBE {OTHER}.secrets",
    f"LOCK TABLES {OTHER}.secrets READ",
    f"SELECT /*!50000 v FROM {OTHER}.secrets */",
    f"PREPARE s FROM 'SELECT v FROM {OTHER}.secrets'",
    f'SHOW TABLES FROM "{OTHER}"',
    f"SHOW CREATE DATABASE IF NOT EXISTS {OTHER}",
    f"SET STATEMENT max_statement_time = 100 FOR SHOW TABLES FROM {OTHER}",
]


def test_every_form_is_refused_and_writes_nothing(dal: tuple[DalProcess, dict]) -> None:
    proc, raw = dal
    before = _secrets(raw)
    conn = _connect(proc, "limited")
    try:
        with conn.cursor() as cur:
            for sql in REFUSED:
                with pytest.raises(pymysql.MySQLError) as info:
                    cur.execute(sql)
                assert info.value.args[0] == 1044, sql
                assert f"'{OTHER}'" in info.value.args[1], sql
            with pytest.raises(pymysql.MySQLError) as info:
                cur.execute(f"USE {OTHER}")
            assert info.value.args[0] == 1044
            # EXPLAIN DAL runs nothing, but shows the plan the user would get: the refusal.
            cur.execute(f"EXPLAIN DAL SELECT v FROM {OTHER}.secrets")
            assert "1044" in str(cur.fetchall()), "EXPLAIN DAL"
            # Its own database works as before, aliases and strings that name the other
            # database included.
            cur.execute("SELECT COUNT(*), 'test_user_dbs.x' FROM trade.orders AS other")
            assert cur.fetchone()[1] == f"{OTHER}.x"
    finally:
        conn.close()
    assert _secrets(raw) == before


def test_information_schema_leaves_the_other_database_out(dal: tuple[DalProcess, dict]) -> None:
    proc, _ = dal
    query = ("SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES "
             f"WHERE TABLE_SCHEMA IN ('trade', '{OTHER}') ORDER BY 1")
    seen = {}
    for user in ("admin", "limited"):
        conn = _connect(proc, user)
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                seen[user] = [r[0] for r in cur.fetchall()]
                cur.execute("SHOW DATABASES")
                seen[user + " databases"] = {r[0] for r in cur.fetchall()}
        finally:
            conn.close()
    assert seen["admin"] == [OTHER, "trade"] or seen["admin"] == ["trade", OTHER]
    assert seen["limited"] == ["trade"]
    assert OTHER in seen["admin databases"] and OTHER not in seen["limited databases"]


def test_caches_warmed_by_another_user_do_not_let_it_through(
        dal: tuple[DalProcess, dict]) -> None:
    proc, _ = dal
    text = f"SELECT v FROM {OTHER}.secrets WHERE id = 1"
    prepared = f"SELECT v FROM {OTHER}.secrets WHERE id = ?"
    app = _connect(proc, "app")
    ps_app = PsClient(proc.port)
    ps_app.login()
    try:
        with app.cursor() as cur:
            for _ in range(5):  # plan cache and express lane learn it
                cur.execute(text)
                assert cur.fetchall() == (("only-admins",),)
        statement = ps_app.prepare(prepared)
        for _ in range(5):  # its fast route, shared by the sessions of the process
            ps_app.execute(statement.id, [((ColumnType.LONG, False), 1)])
            assert ps_app.read_result().rows == [[b"only-admins"]]
        limited = _connect(proc, "limited")
        try:
            with limited.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
                cur.execute(text)
            assert info.value.args[0] == 1044
        finally:
            limited.close()
        ps_limited = PsClient(proc.port)
        ps_limited.login("limited", "limited")
        try:
            with pytest.raises(ServerError) as refused:
                ps_limited.prepare(prepared)
            assert refused.value.code == 1044
        finally:
            ps_limited.close()
    finally:
        app.close()
        ps_app.close()


def _backend(raw: dict, instance: str) -> pymysql.Connection:
    """The test instance's root (functions need SUPER with the binary log on)."""
    inst = raw["instances"][instance]
    return pymysql.connect(host=inst["host"], port=inst["port"], user="root", password="",
                           connect_timeout=10, autocommit=True)


def test_routine_status_lists_the_users_databases_only(dal: tuple[DalProcess, dict]) -> None:
    """SHOW PROCEDURE|FUNCTION STATUS went to the backend, which lists the routines of every
    database DAL's account sees: shard databases and other logical databases included."""
    proc, raw = dal
    default = raw["databases"]["trade"]["default_instance"]
    places = {"trade": default, OTHER: default, "user_000": "a", "user_119": "b"}
    made = []
    try:
        for db, instance in places.items():
            with contextlib.closing(_backend(raw, instance)) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE PROCEDURE `{db}`.dal_rs_p() SELECT 1")
                made.append((instance, f"PROCEDURE `{db}`.dal_rs_p"))
                cur.execute(f"CREATE FUNCTION `{db}`.dal_rs_f() RETURNS INT DETERMINISTIC RETURN 1")
                made.append((instance, f"FUNCTION `{db}`.dal_rs_f"))
        seen = {}
        for user in ("app", "limited"):
            with contextlib.closing(_connect(proc, user)) as conn, conn.cursor() as cur:
                for kind, name in (("PROCEDURE", "dal_rs_p"), ("FUNCTION", "dal_rs_f")):
                    cur.execute(f"SHOW {kind} STATUS LIKE 'dal\\_rs\\_%'")
                    rows = cur.fetchall()
                    assert {row[1] for row in rows} == {name}, rows
                    seen[user, kind] = [row[0] for row in rows]
                cur.execute("SHOW PROCEDURE STATUS WHERE Db <> 'trade'")
                seen[user, "where"] = {row[0] for row in cur.fetchall()}
    finally:
        for instance, routine in made:
            with contextlib.closing(_backend(raw, instance)) as conn, conn.cursor() as cur:
                cur.execute(f"DROP {routine}")
    for kind in ("PROCEDURE", "FUNCTION"):
        assert seen["app", kind] == sorted(["trade", OTHER]), kind
        assert seen["limited", kind] == ["trade"], kind
    assert seen["app", "where"] == {OTHER} and seen["limited", "where"] == set()
