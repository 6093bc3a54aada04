"""Multi-statements through DAL (pymysql with CLIENT.MULTI_STATEMENTS, or COM_SET_OPTION),
compared result by result with the same batch on a direct connection to an unsharded
reference database holding the same table."""

from __future__ import annotations

import uuid

import pymysql
import pytest
from pymysql.constants import CLIENT, COMMAND

REF = "dal_multi_ref"
USERS = (906_007, 906_067)  # user shards 7 (instance a) and 67 (instance b)


def gene_id(seq: int, user: int, merchant: int) -> int:
    return (seq * 120 + merchant % 120) * 120 + user % 120


@pytest.fixture
def ref(direct):
    conn = direct("a", account="dba")  # a scratch database: DAL's backend account may not create it
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {REF}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {REF}.orders LIKE user_000.orders")
        cur.execute(f"DELETE FROM {REF}.orders")
    yield direct("a", REF, account="dba")


@pytest.fixture
def clean(connect):
    def wipe() -> None:
        with connect(ssl_disabled=True).cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id IN %s", (USERS,))
    wipe()
    yield
    wipe()


def run_batch(conn, sql: str) -> list:
    """Every result of a batch as (columns, rows, rowcount), then the error if one ended it."""
    results: list = []
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
            while True:
                columns = [d[0] for d in cur.description] if cur.description else None
                results.append((columns, cur.fetchall(), cur.rowcount))
                if not cur.nextset():
                    break
        except pymysql.err.MySQLError as exc:
            results.append(("error", exc.args[0]))
    return results


def batch(note: str) -> str:
    u1, u2 = USERS
    a, b = gene_id(1001, u1, 31), gene_id(1002, u2, 32)
    values = f"1, 10.50, '{note}', '2026-01-01 00:00:00', '2026-01-01 00:00:00'"
    return (
        f"INSERT INTO orders (id, user_id, merchant_id, status, total, note, created_at, "
        f"updated_at) VALUES ({a}, {u1}, 31, {values});"
        f"INSERT INTO orders (id, user_id, merchant_id, status, total, note, created_at, "
        f"updated_at) VALUES ({b}, {u2}, 32, {values}) ;\n"
        f"UPDATE orders SET status = 2, note = '{note};x' WHERE user_id = {u1} AND id = {a};"
        f"SELECT id, status, note FROM orders WHERE user_id = {u1} /* ; */;"
        # a scatter read (no shard key) with a global sort
        f"SELECT user_id, status FROM orders WHERE note LIKE '{note}%' ORDER BY user_id;"
        f"SELECT COUNT(*), SUM(total) FROM orders WHERE user_id IN ({u1}, {u2})"
    )


def test_batch_matches_an_unsharded_reference(connect, direct, ref, clean):
    note = uuid.uuid4().hex[:12]
    dal = connect(client_flag=CLIENT.MULTI_STATEMENTS, ssl_disabled=True)
    ref.autocommit(True)
    ref_conn = pymysql.connect(host=ref.host, port=ref.port, user=ref.user,
                               password=ref.password, database=REF, autocommit=True,
                               client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        got = run_batch(dal, batch(note))
        want = run_batch(ref_conn, batch(note))
    finally:
        ref_conn.close()
    assert len(got) == 6
    assert got == want
    # The rows are in their owning shards.
    for user in USERS:
        shard = user % 120
        with direct("a" if shard < 60 else "b").cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM user_{shard:03d}.orders WHERE user_id = %s",
                        (user,))
            assert cur.fetchone() == (1,)
    # The connection is usable after the batch.
    with dal.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_an_error_stops_the_batch(connect, ref, clean):
    u1 = USERS[0]
    sql = (f"SELECT COUNT(*) FROM orders WHERE user_id = {u1};"
           f"SELECT nope FROM orders WHERE user_id = {u1};"
           f"INSERT INTO orders (id, user_id, merchant_id, status, total, created_at, "
           f"updated_at) VALUES ({gene_id(7, u1, 1)}, {u1}, 1, 1, 1, NOW(), NOW())")
    dal = connect(client_flag=CLIENT.MULTI_STATEMENTS, ssl_disabled=True)
    ref_conn = pymysql.connect(host=ref.host, port=ref.port, user=ref.user,
                               password=ref.password, database=REF, autocommit=True,
                               client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        got = run_batch(dal, sql)
        want = run_batch(ref_conn, sql)
    finally:
        ref_conn.close()
    assert got == want == [(["COUNT(*)"], ((0,),), 1), ("error", 1054)]
    with dal.cursor() as cur:  # the INSERT after the error never ran
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (u1,))
        assert cur.fetchone() == (0,)


def test_dal_refusal_in_the_middle_stops_the_batch(connect, clean):
    dal = connect(client_flag=CLIENT.MULTI_STATEMENTS, ssl_disabled=True)
    got = run_batch(dal, "SELECT 1; UPDATE orders SET status = 1 WHERE status = 0; SELECT 2")
    assert got == [(["1"], ((1,),), 1), ("error", 1235)]


def test_without_the_flag_a_batch_is_refused_until_set_option(connect):
    conn = connect(ssl_disabled=True)
    with conn.cursor() as cur, pytest.raises(pymysql.err.MySQLError):
        cur.execute("SELECT 1; SELECT 2")
    conn._execute_command(COMMAND.COM_SET_OPTION, b"\x00\x00")  # MULTI_STATEMENTS_ON
    conn._read_packet()
    assert run_batch(conn, "SELECT 1; SELECT 2") == [(["1"], ((1,),), 1), (["2"], ((2,),), 1)]
    conn._execute_command(COMMAND.COM_SET_OPTION, b"\x01\x00")  # OFF
    conn._read_packet()
    with conn.cursor() as cur, pytest.raises(pymysql.err.MySQLError):
        cur.execute("SELECT 1; SELECT 2")


def test_admin_and_explain_statements_in_a_batch(connect):
    dal = connect(user="admin", password="admin", client_flag=CLIENT.MULTI_STATEMENTS,
                  ssl_disabled=True)
    got = run_batch(dal, "SHOW DAL POOLS; EXPLAIN DAL SELECT * FROM orders WHERE user_id = 5;"
                         " SELECT 7")
    assert len(got) == 3
    assert got[0][0] is not None and "instance" in got[0][0]
    assert any("user_005" in str(row) for row in got[1][1])
    assert got[2] == (["7"], ((7,),), 1)
