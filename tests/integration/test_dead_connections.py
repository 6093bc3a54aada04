"""Backend connections that die under DAL: killed from the backend side while idle, while
pinned, while DAL has not noticed yet, while a statement runs, and mid-result.

A dead pooled connection is replaced and the statement retried once when the backend cannot
have read it; otherwise the client gets 2013 naming the backend instance (or, mid-result, a
closed connection), never 1105 "DAL internal error". Each test uses a DAL of its own with a
pool of one connection per instance, so the connection to kill is the one DAL uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from dal.wire.framing import frame
from router.rows.columns import decode_text_row
from router.rows.types import ColumnType as T
from tests.conftest import assert_pools_idle
from tests.own_dal import own_dal
from tests.psclient import PsClient
from tests.rawclient import RawClient

USER_ON_A = 1  # user shard 1, instance a (database user_001)
USER_ON_B = 61  # user shard 61, instance b (database user_061)
INTERNAL = "DAL internal error"


@pytest.fixture
def one_conn_dal(tmp_path):
    with own_dal(tmp_path, pool={"max_size": 1, "min_idle": 0}) as dal:
        yield dal
        assert INTERNAL not in dal.proc.log()[-20000:]


def backend(dal, instance: str) -> pymysql.Connection:
    cfg = dal.raw["instances"][instance]
    return pymysql.connect(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                           password=cfg["password"], autocommit=True)


def kill(dal, instance: str, thread_id: int) -> None:
    killer = backend(dal, instance)
    try:
        with killer.cursor() as cur:
            cur.execute(f"KILL {thread_id}")
    finally:
        killer.close()


def one(conn, sql: str, args: tuple = ()) -> tuple:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


@contextlib.contextmanager
def dal_stopped(dal) -> Iterator[None]:
    """DAL is frozen (SIGSTOP) inside the block: what reaches its sockets meanwhile, it reads
    all at once when it resumes."""
    pid = dal.proc.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
        time.sleep(0.3)  # let everything sent meanwhile arrive
    finally:
        os.kill(pid, signal.SIGCONT)


def new_order(client, user: int = 0) -> int:
    with client.cursor() as cur:
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                    "updated_at) VALUES (%s, 7, 1, 1.00, 'dead-connections', NOW(6), NOW(6))",
                    (user or USER_ON_B,))
        return cur.lastrowid


def total_on(dal, instance: str, order_id: int) -> int:
    user = USER_ON_A if instance == "a" else USER_ON_B
    direct = backend(dal, instance)
    try:
        return one(direct, f"SELECT total FROM user_{user:03d}.orders WHERE id = %s",
                   (order_id,))[0]
    finally:
        direct.close()


def pool(dal, instance: str) -> dict:
    return next(r for r in dal.admin("SHOW DAL POOLS") if r["instance"] == instance)


def test_idle_pooled_connection_killed_is_replaced(one_conn_dal) -> None:
    dal = one_conn_dal
    client = dal.connect()
    thread_id = one(client, "SELECT @@pseudo_thread_id")[0]
    before = pool(dal, "a")
    kill(dal, "a", thread_id)
    assert one(client, "SELECT @@pseudo_thread_id")[0] != thread_id  # at once, no pause
    after = pool(dal, "a")
    assert after["closed"] == before["closed"] + 1 and after["opened"] == before["opened"] + 1
    client.close()
    assert_pools_idle(dal.port)


def test_pinned_connection_killed_is_replaced(one_conn_dal) -> None:
    """A statement with a warning keeps its connection for SHOW WARNINGS; killed meanwhile,
    the next statement runs on a fresh connection (the warning is gone with it)."""
    dal = one_conn_dal
    client = dal.connect()
    thread_id = one(client, "SELECT @@pseudo_thread_id, CAST('1x' AS SIGNED)")[0]
    kill(dal, "a", thread_id)
    time.sleep(0.2)
    assert one(client, "SELECT @@pseudo_thread_id")[0] != thread_id
    assert one(client, "SELECT 1") == (1,)
    client.close()
    assert_pools_idle(dal.port)


def bump(user: int, order_id: int) -> bytes:
    """COM_QUERY adding 1 to an order's total."""
    return frame(f"\x03UPDATE orders SET total = total + 1 WHERE user_id = {user} AND id = "
                 f"{order_id}".encode(), 0)


def bumped_once(dal, client: RawClient, instance: str, order_id: int) -> None:
    """The client got OK (1 row) for `bump`, and the backend shows it applied once."""
    answer = client.read_response()
    assert answer[0][:2] == b"\x00\x01", answer
    assert total_on(dal, instance, order_id) == 2
    client.close()
    assert_pools_idle(dal.port)


def thread_on_b(client: RawClient) -> int:
    """The backend thread id of the connection DAL uses for instance b (the only one)."""
    payloads = client.query(b"SELECT @@pseudo_thread_id, COUNT(*) FROM orders WHERE user_id = "
                            + str(USER_ON_B).encode())
    return int(decode_text_row(payloads[4], 2)[0])


def test_transaction_connection_killed_gets_2013_and_is_not_retried(one_conn_dal) -> None:
    """Inside a transaction nothing is run again: the client gets 2013 saying the transaction
    is gone, the row it wrote is not there, and the session goes on in autocommit."""
    dal = one_conn_dal
    order_id = new_order(dal.connect(), USER_ON_A)
    client = dal.connect(autocommit=False)
    with client.cursor() as cur:
        cur.execute("UPDATE orders SET total = total + 1 WHERE user_id = %s AND id = %s",
                    (USER_ON_A, order_id))
    thread_id = one(client, "SELECT @@pseudo_thread_id")[0]
    kill(dal, "a", thread_id)
    with pytest.raises(pymysql.OperationalError) as info:
        one(client, "SELECT total FROM orders WHERE user_id = %s AND id = %s",
            (USER_ON_A, order_id))
    assert info.value.args == (2013, "Lost connection to backend instance 'a' during query; "
                               "the open transaction was rolled back by the backend")
    assert total_on(dal, "a", order_id) == 1
    client.rollback()
    client.autocommit(True)
    assert one(client, "SELECT total FROM orders WHERE user_id = %s AND id = %s",
               (USER_ON_A, order_id)) == (1,)
    client.close()
    assert_pools_idle(dal.port)


def test_connection_killed_while_dal_is_frozen_is_replaced(one_conn_dal) -> None:
    """DAL is frozen while the client sends an UPDATE and the backend kills DAL's idle
    connection; DAL resumes and finds both at once: the UPDATE runs on a fresh connection,
    applied exactly once."""
    dal = one_conn_dal
    order_id = new_order(dal.connect())
    client = RawClient(dal.port)
    assert client.login()[:1] == b"\x00"
    thread_id = thread_on_b(client)
    with dal_stopped(dal):
        client.send(bump(USER_ON_B, order_id))
        time.sleep(0.1)
        kill(dal, "b", thread_id)
    bumped_once(dal, client, "b", order_id)


def test_statement_right_behind_a_backend_kill_is_retried_once(one_conn_dal) -> None:
    """The backend kills the pooled connection (KILL on the backend: clients cannot reach
    backend threads through DAL) and the next UPDATE follows at once: DAL finds the connection
    closed, or writes to it before it has read the close. The backend never read the UPDATE,
    so DAL runs it once more on a fresh connection: applied exactly once."""
    dal = one_conn_dal
    order_id = new_order(dal.connect(), USER_ON_A)
    client = RawClient(dal.port)
    assert client.login()[:1] == b"\x00"
    thread_id = int(decode_text_row(client.query(b"SELECT @@pseudo_thread_id")[3], 1)[0])
    kill(dal, "a", thread_id)
    client.send(bump(USER_ON_A, order_id))
    bumped_once(dal, client, "a", order_id)


def test_prepared_execution_is_prepared_again_on_the_fresh_connection(one_conn_dal) -> None:
    """The same race with COM_STMT_EXECUTE: its statement id belongs to the dead connection;
    DAL prepares the statement on the fresh one and executes it there, once."""
    dal = one_conn_dal
    order_id = new_order(dal.connect(), USER_ON_A)
    ps = PsClient(dal.port)
    ps.login()
    stmt = ps.prepare("UPDATE orders SET total = total + ? WHERE user_id = ? AND id = ?")
    params = [((T.LONG, False), 1), ((T.LONGLONG, True), USER_ON_A),
              ((T.LONGLONG, True), order_id)]
    ps.execute(stmt.id, params)
    assert ps.read_result().affected_rows == 1
    thread_id = int(decode_text_row(ps.query(b"SELECT @@pseudo_thread_id")[3], 1)[0])
    kill(dal, "a", thread_id)
    ps.send(ps.execute(stmt.id, params, send=False))
    assert ps.read_result().affected_rows == 1
    assert total_on(dal, "a", order_id) == 3
    ps.close()
    assert_pools_idle(dal.port)


def _running(dal, instance: str, text: str) -> int:
    direct = backend(dal, instance)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with direct.cursor() as cur:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                            "AND ID != CONNECTION_ID()", (f"%{text}%",))
                row = cur.fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
        raise AssertionError(f"{text} never ran on {instance}")
    finally:
        direct.close()


def _kill_when_running(dal, instance: str, text: str) -> threading.Thread:
    thread = threading.Thread(target=lambda: kill(dal, instance, _running(dal, instance, text)))
    thread.start()
    return thread


def test_statement_killed_while_running_gets_2013_naming_the_instance(one_conn_dal) -> None:
    """The backend read the statement: it is not run again; the client gets 2013 naming the
    instance, and its connection keeps working."""
    dal = one_conn_dal
    client = dal.connect()
    killer = _kill_when_running(dal, "a", "SLEEP(7.5)")
    started = time.monotonic()
    with pytest.raises(pymysql.OperationalError) as info:
        one(client, "SELECT SLEEP(7.5)")
    killer.join(10)
    assert time.monotonic() - started < 5  # not run a second time
    code, message = info.value.args
    assert code == 2013
    assert message.startswith("Lost connection to backend instance 'a' during query")
    assert one(client, "SELECT 1") == (1,)
    client.close()
    assert_pools_idle(dal.port)


def test_connection_dying_mid_result_closes_the_client_connection(one_conn_dal) -> None:
    """Rows already went out: the client connection is closed (drivers report a lost
    connection, 2013), with no ERR packet in the middle of the result; a new one works."""
    dal = one_conn_dal
    client = RawClient(dal.port)
    assert client.login()[:1] == b"\x00"
    killer = _kill_when_running(dal, "a", "7.25")
    client.send(frame(b"\x03SELECT REPEAT('x', 1000) AS pad, SLEEP(IF(seq = 250, 7.25, 0)) "
                      b"FROM seq_1_to_300", 0))
    packets = []
    while (packet := client.read_packet()) is not None:
        packets.append(packet[1])
    killer.join(10)
    client.close()
    rows = [p for p in packets if p[:1] not in (b"\xfe", b"\xff") and len(p) > 1000]
    assert len(rows) >= 100  # part of the result had arrived when the backend went away
    assert not [p for p in packets if p[:1] == b"\xff"]
    fresh = dal.connect()
    assert one(fresh, "SELECT 1") == (1,)
    fresh.close()
    assert_pools_idle(dal.port)


def test_client_wait_timeout_is_not_applied_to_pooled_connections(one_conn_dal) -> None:
    """`SET wait_timeout = 1` is the client's (DAL closes that idle client session itself,
    dal/idle.py): the shared backend connection keeps the server's value and is not dropped
    after a second idle."""
    dal = one_conn_dal
    client = dal.connect()
    with client.cursor() as cur:
        cur.execute("SET wait_timeout = 1")
    server_value = one(backend(dal, "a"), "SELECT @@global.wait_timeout")[0]
    assert one(client, "SELECT @@session.wait_timeout")[0] == server_value
    before = pool(dal, "a")
    time.sleep(2.0)
    other = dal.connect()  # on the same pooled connection (one per instance)
    assert one(other, "SELECT @@session.wait_timeout")[0] == server_value
    assert pool(dal, "a")["closed"] == before["closed"]  # the same connection, still alive
    other.close()
    client.close()
    assert_pools_idle(dal.port)
