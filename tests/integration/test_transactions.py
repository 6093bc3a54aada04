"""Transactions through DAL: one backend connection per transaction, one shard per transaction
(mode `single`), MariaDB's own isolation between clients, and a clean connection after a
client vanishes mid-transaction."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pymysql
import pytest

from tests.conftest import HOST, assert_pools_idle, pool_rows
from tests.dal_process import dal_with_pool

U_A = 910_021  # shard 61 on instance b
U_A2 = 910_022  # shard 62, also on instance b
U_B = 910_040  # shard 80, instance b
U_DEFAULT = 909_965  # shard 5, on instance a with the default database
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, created_at, updated_at) "
          "VALUES (%s, 7, 0, %s, NOW(), NOW())")
USERS = (U_A, U_A2, U_B, U_DEFAULT)


def shard_totals(direct, user: int) -> list:
    with direct("a" if user % 120 < 60 else "b").cursor() as cur:
        cur.execute(f"SELECT total FROM user_{user % 120:03d}.orders WHERE user_id = %s "
                    "ORDER BY id", (user,))
        return [str(r[0]) for r in cur.fetchall()]


def in_use(port: int, instance: str) -> int:
    return next(r["in_use"] for r in pool_rows(port) if r["instance"] == instance)


@pytest.fixture
def clean(connect):
    def wipe() -> None:
        with connect().cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id IN %s", (USERS,))
    wipe()
    yield
    wipe()


@pytest.mark.parametrize("opening, end", [("BEGIN", "COMMIT"), ("START TRANSACTION", "ROLLBACK"),
                                         ("SET autocommit = 0", "COMMIT")])
def test_a_transaction_pins_one_connection_until_it_ends(dal, connect, direct, clean,
                                                         opening: str, end: str) -> None:
    conn, other = connect(), connect()
    with conn.cursor() as cur, other.cursor() as busy:
        cur.execute(opening)
        cur.execute(INSERT, (U_A, "1.00"))
        for _ in range(20):  # other sessions borrow and return pooled connections meanwhile
            busy.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (U_B,))
        assert in_use(dal.port, "b") == 1, "the transaction's connection went back to the pool"
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (U_A,))
        assert cur.fetchone() == (1,), "the transaction's next statement ran elsewhere"
        assert shard_totals(direct, U_A) == [], "uncommitted write visible outside"
        cur.execute(end)
        assert in_use(dal.port, "b") == 0
        if opening.startswith("SET"):
            cur.execute("SET autocommit = 1")
    assert shard_totals(direct, U_A) == (["1.00"] if end == "COMMIT" else [])


def test_a_second_shard_is_refused_and_the_transaction_stays_usable(connect, direct,
                                                                     clean) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        for statement, args in [(INSERT, (U_A2, "2.00")),  # same instance, another shard
                                ("UPDATE orders SET total = 9 WHERE user_id = %s", (U_B,)),
                                ("SELECT * FROM orders WHERE user_id IN (%s, %s)", (U_A, U_B))]:
            with pytest.raises(pymysql.err.NotSupportedError) as info:
                cur.execute(statement, args)
            assert info.value.args[0] == 1235
            assert "transaction" in info.value.args[1]
        cur.execute("UPDATE orders SET total = total + 1 WHERE user_id = %s", (U_A,))
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["2.00"]
    assert shard_totals(direct, U_A2) == []
    assert shard_totals(direct, U_B) == []


def test_a_row_locked_for_update_blocks_another_client(connect, clean) -> None:
    first, second = connect(), connect(read_timeout=20)
    with first.cursor() as cur:
        cur.execute(INSERT, (U_A, "5.00"))
        cur.execute("BEGIN")
        cur.execute("SELECT total FROM orders WHERE user_id = %s FOR UPDATE", (U_A,))
        cur.execute("UPDATE orders SET total = 6 WHERE user_id = %s", (U_A,))
    with second.cursor() as cur:
        cur.execute("SELECT total FROM orders WHERE user_id = %s", (U_A,))
        assert cur.fetchone()[0] == pytest.approx(5), "an uncommitted write is visible"
    got: list = []

    def locker() -> None:
        with second.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT total FROM orders WHERE user_id = %s FOR UPDATE", (U_A,))
            got.append((time.monotonic(), cur.fetchone()[0]))
            cur.execute("COMMIT")

    thread = threading.Thread(target=locker)
    thread.start()
    time.sleep(0.7)
    assert not got, "FOR UPDATE did not wait for the other transaction's lock"
    released = time.monotonic()
    with first.cursor() as cur:
        cur.execute("COMMIT")
    thread.join(15)
    assert got and got[0][0] >= released and float(got[0][1]) == 6


@pytest.fixture
def single_connection_dal(tmp_path: Path):
    """A DAL whose pools hold one connection, so that the next client gets the very backend
    connection the previous one left."""
    proc, _ = dal_with_pool(tmp_path, {"max_size": 1, "acquire_timeout": 10.0})
    yield proc
    assert_pools_idle(proc.port)
    assert proc.stop() == 0


def test_a_vanished_clients_transaction_is_rolled_back_and_its_connection_cleaned(
        single_connection_dal, direct) -> None:
    def client() -> pymysql.connections.Connection:
        return pymysql.connect(host=HOST, port=single_connection_dal.port, user="app",
                               password="app", database="trade", autocommit=True)

    with client() as setup, setup.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE user_id = %s", (U_DEFAULT,))
    # A user variable pins the session to the default database's instance (a), so the
    # transaction uses a shard there.
    gone = client()
    with gone.cursor() as cur:
        cur.execute("SET @leftover = 42")
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_DEFAULT, "3.00"))
        cur.execute("SELECT @leftover, @@in_transaction")
        assert cur.fetchone() == (42, 1)
    gone._sock.shutdown(socket.SHUT_RDWR)  # vanish without COM_QUIT, mid-transaction
    gone._sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(r["in_use"] for r in
                                              pool_rows(single_connection_dal.port)):
        time.sleep(0.05)
    with client() as nxt, nxt.cursor() as cur:
        cur.execute("SELECT @leftover, @@in_transaction, COUNT(*) FROM orders "
                    "WHERE user_id = %s", (U_DEFAULT,))
        assert cur.fetchone() == (None, 0, 0)
    assert shard_totals(direct, U_DEFAULT) == []


def test_a_transaction_after_an_error_goes_where_its_first_statement_goes(connect, direct,
                                                                          clean) -> None:
    """An error keeps its connection (instance a) for SHOW WARNINGS; the BEGIN that follows
    must not tie the transaction to it."""
    with connect().cursor() as cur:
        with pytest.raises(pymysql.MySQLError):
            cur.execute("SELECT * FROM no_such_table_here")
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "4.00"))  # a shard on instance b
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["4.00"]
