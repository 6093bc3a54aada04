"""Statements of several sessions pipelined on one backend connection (pool.pipeline_depth).

Each test runs a DAL of its own with one backend connection per instance: while one session's
statement runs on it, the autocommit statements of other sessions are written behind it on the
same connection. Every session must get its own answer: rows, affected-row counts, errors;
when the backend kills the connection mid-pipeline, every statement in flight on it fails with
2013, none is run again, and the sessions go on. A session in a transaction is never
pipelined.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from pymysql.cursors import Cursor

from dal.wire.framing import frame
from dal.wire.messages import OK
from router.rows.columns import decode_text_row
from tests.conftest import assert_pools_idle
from tests.integration.test_dead_connections import INTERNAL, backend, kill, new_order, one
from tests.own_dal import own_dal
from tests.rawclient import RawClient, error_of

USER_ON_A = 1  # user shard 1, on instance a, as the default database
LOST = "Lost connection to backend instance 'a' during query; the statement may or may not " \
       "have been applied"


@pytest.fixture
def piped_dal(tmp_path):
    with own_dal(tmp_path, pool={"max_size": 1, "min_idle": 0, "pipeline_depth": 8}) as dal:
        yield dal
        assert INTERNAL not in dal.proc.log()[-20000:]


def raw_client(dal) -> RawClient:
    client = RawClient(dal.port)
    assert client.login()[:1] == b"\x00"
    return client


def rows(payloads: list[bytes]) -> list[list]:
    """The text rows of a result set read by `RawClient.read_response`."""
    assert payloads[0][:1] not in (b"\x00", b"\xff"), payloads[0][:64]
    count = payloads[0][0]
    body = payloads[1 + count + 1:-1]
    return [decode_text_row(p, count) for p in body]


def affected(payloads: list[bytes]) -> int:
    assert payloads[0][:1] == b"\x00", payloads[0][:64]
    return OK.decode(payloads[0]).affected_rows


def behind(dal, head: bytes, statements: list[bytes]) -> tuple[RawClient, list[RawClient]]:
    """``head`` sent by one session; once it runs on the backend, each of ``statements`` by a
    session of its own (written behind it on the one connection). Nothing is read yet."""
    clients = [raw_client(dal) for _ in statements]
    first = raw_client(dal)
    first.send(_query(head))
    time.sleep(0.3)  # the head is running on the backend
    for client, sql in zip(clients, statements, strict=True):
        client.send(_query(sql))
    return first, clients


def _query(sql: bytes) -> bytes:
    return frame(b"\x03" + sql, 0)


def test_pipelined_sessions_get_their_own_rows_counts_and_errors(piped_dal) -> None:
    dal = piped_dal
    setup = dal.connect()
    ids = [new_order(setup, USER_ON_A) for _ in range(3)]
    opened = dal.metric("dal_pool_opened_total", instance="a")
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")
    thread = one(setup, "SELECT @@pseudo_thread_id")[0]  # the one connection to instance a
    statements = [
        f"SELECT id, total FROM orders WHERE user_id = {USER_ON_A} AND id = {ids[0]}".encode(),
        f"UPDATE orders SET total = total + 1 WHERE user_id = {USER_ON_A} AND id IN "
        f"({ids[0]}, {ids[1]}, {ids[2]})".encode(),
        f"SELECT no_such_column FROM orders WHERE user_id = {USER_ON_A}".encode(),
        f"DELETE FROM orders WHERE user_id = {USER_ON_A} AND id = -1".encode(),
        b"SELECT 5, REPEAT('x', 200000)",  # an answer larger than one read
        b"SELECT @@pseudo_thread_id",
        f"UPDATE orders SET note = 'piped' WHERE user_id = {USER_ON_A} AND id = {ids[1]}"
        .encode(),
    ]
    first, clients = behind(dal, b"SELECT 'head', SLEEP(0.6)", statements)
    answers = [client.read_response() for client in clients]
    assert rows(first.read_response()) == [[b"head", b"0"]]
    assert rows(answers[0]) == [[str(ids[0]).encode(), b"1.00"]]
    assert affected(answers[1]) == 3
    err = error_of(answers[2][0])
    assert err.code == 1054 and "no_such_column" in err.message
    assert affected(answers[3]) == 0
    assert rows(answers[4]) == [[b"5", b"x" * 200000]]
    assert rows(answers[5]) == [[str(thread).encode()]]  # the same backend connection
    assert affected(answers[6]) == 1
    # they shared the one connection: none was opened, and all seven were pipelined
    assert dal.metric("dal_pool_opened_total", instance="a") == opened
    assert dal.metric("dal_pool_pipelined_total", instance="a") - pipelined == len(statements)
    for client in [first, *clients]:  # each session goes on
        assert rows(client.query(b"SELECT 7")) == [[b"7"]]
        client.close()
    assert one(setup, "SELECT SUM(total) FROM orders WHERE user_id = %s AND id IN (%s, %s, %s)",
               (USER_ON_A, *ids))[0] == 6
    setup.close()
    assert_pools_idle(dal.port)
    pool = next(r for r in dal.admin("SHOW DAL POOLS") if r["instance"] == "a")
    assert (pool["in_use"], pool["idle"]) == (0, 1)


def test_backend_killed_mid_pipeline_fails_each_statement_once(piped_dal) -> None:
    """The backend connection is killed while the head statement sleeps and four others wait
    behind it on the wire: each session gets its own 2013 (the head may get the backend's
    own 1927 first), no statement is run again (the UPDATE written behind stays unapplied),
    and every session works again at once on a fresh connection. A statement that may not be
    pipelined (DO) waited in the pool's queue instead: it runs on the fresh connection."""
    dal = piped_dal
    setup = dal.connect()
    order = new_order(setup, USER_ON_A)
    thread = one(setup, "SELECT @@pseudo_thread_id")[0]
    statements = [b"SELECT 1", b"SELECT 2, SLEEP(0.1)",
                  f"UPDATE orders SET total = total + 1 WHERE user_id = {USER_ON_A} AND id = "
                  f"{order}".encode(),
                  b"SELECT no_such_column FROM merchants", b"DO 1"]
    first, clients = behind(dal, b"SELECT SLEEP(5)", statements)
    time.sleep(0.2)
    kill(dal, "a", thread)
    head = error_of(first.read_response()[0])
    assert head.code in (1927, 2013), head
    for client in clients[:-1]:
        err = error_of(client.read_response()[0])
        assert (err.code, err.message) == (2013, LOST)
    assert affected(clients[-1].read_response()) == 0  # DO 1, queued: run afterwards
    direct = backend(dal, "a")
    try:
        assert one(direct, f"SELECT total FROM user_{USER_ON_A:03d}.orders WHERE id = %s",
                   (order,)) == (1,)
    finally:
        direct.close()
    for client in [first, *clients]:
        answer = rows(client.query(b"SELECT @@pseudo_thread_id"))
        assert answer != [[str(thread).encode()]]
        client.close()
    setup.close()
    assert_pools_idle(dal.port)


def test_a_session_in_a_transaction_is_never_pipelined(piped_dal) -> None:
    """The one connection is pinned to a transaction: another session's autocommit SELECT
    waits for it instead of running behind the transaction's statements, and never sees the
    transaction's uncommitted write."""
    dal = piped_dal
    setup = dal.connect()
    order = new_order(setup, USER_ON_A)
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")
    txn = dal.connect(autocommit=False)
    with txn.cursor() as cur:
        cur.execute("UPDATE orders SET total = total + 100 WHERE user_id = %s AND id = %s",
                    (USER_ON_A, order))
    seen: list = []

    def read() -> None:
        reader = dal.connect()
        seen.append(one(reader, "SELECT total, @@in_transaction FROM orders WHERE user_id = %s "
                        "AND id = %s", (USER_ON_A, order)))
        seen.append(time.monotonic())
        reader.close()

    worker = threading.Thread(target=read)
    worker.start()
    time.sleep(0.5)
    assert not seen  # waiting for the pinned connection
    ended = time.monotonic()
    txn.rollback()
    worker.join(10)
    assert seen[0] == (1, 0) and seen[1] >= ended
    assert dal.metric("dal_pool_pipelined_total", instance="a") == pipelined
    txn.close()
    setup.close()
    assert_pools_idle(dal.port)


def test_kill_query_reaches_only_the_pipelined_statement_it_names(piped_dal) -> None:
    """KILL QUERY for a session whose statement waits behind another session's on the same
    backend thread: the statement ahead runs to its end untouched; the named one is
    interrupted once it runs (MariaDB ends it with 1317, or an interrupted SLEEP with 1). The
    KILL itself answers at once."""
    dal = piped_dal
    victim = raw_client(dal)
    victim_id = int(rows(victim.query(b"SELECT CONNECTION_ID()"))[0][0])
    killer = dal.connect("admin", "admin")  # its login's statements need the connection too
    first, (bystander,) = behind(dal, b"SELECT 'ahead', SLEEP(1.5)", [b"SELECT 'next', 1"])
    started = time.monotonic()
    victim.send(_query(b"SELECT 'victim', SLEEP(20)"))
    time.sleep(0.2)
    asked = time.monotonic()
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim_id}")
    # answered at once, as MariaDB's KILL is, not once the statement ahead has ended
    assert time.monotonic() - asked < 0.8
    assert rows(first.read_response()) == [[b"ahead", b"0"]]  # not interrupted
    assert rows(bystander.read_response()) == [[b"next", b"1"]]
    answer = victim.read_response()
    assert time.monotonic() - started < 10
    if answer[-1][:1] == b"\xff":  # before or after the result's header
        assert error_of(answer[-1]).code == 1317
    else:
        assert rows(answer) == [[b"victim", b"1"]]
    for client in (victim, first, bystander):  # the victim's error keeps the connection
        assert rows(client.query(b"SELECT 8")) == [[b"8"]]  # for SHOW WARNINGS until then
        client.close()
    killer.close()
    assert_pools_idle(dal.port)


@pytest.fixture
def spread_dal(tmp_path):
    """A DAL of its own whose statements pipeline once one connection runs shareable ones
    (``pool.pipeline_spread: 1``), with 16 connections allowed per instance."""
    with own_dal(tmp_path, pool={"max_size": 16, "pipeline_depth": 8,
                                 "pipeline_spread": 1}) as dal:
        yield dal
        assert INTERNAL not in dal.proc.log()[-20000:]


def in_sessions(dal, *jobs: Callable[[Cursor], None]) -> None:
    """Run each job in a thread with a session (a pymysql cursor) of its own; wait for all."""
    def run(job: Callable[[Cursor], None]) -> None:
        conn = dal.connect()
        try:
            with conn.cursor() as cur:
                job(cur)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def point_select(order: int) -> str:
    return f"SELECT id FROM orders WHERE user_id = {USER_ON_A} AND id = {order}"


def test_spread_pipelines_busy_sessions_before_the_pool_is_full(spread_dal) -> None:
    """Sessions' statements join the connection already running such statements, with 15
    more connections still allowed. Six sessions, each reading and updating an order of its
    own at once, get their own rows and counts, and the backend holds exactly the updates
    each session made."""
    dal = spread_dal
    setup = dal.connect()
    orders = [new_order(setup, USER_ON_A) for _ in range(6)]
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")
    wrong: list[str] = []
    updates = [0] * len(orders)

    def work(n: int) -> Callable[[Cursor], None]:
        def job(cur: Cursor) -> None:
            for i in range(150):
                cur.execute(f"SELECT {n}, {i}, id FROM orders WHERE user_id = {USER_ON_A} "
                            f"AND id = {orders[n]}")
                if cur.fetchall() != ((n, i, orders[n]),):
                    wrong.append(f"session {n} statement {i}")
                if i % 5 == 0:
                    count = cur.execute(f"UPDATE orders SET total = total + 1 WHERE user_id = "
                                        f"{USER_ON_A} AND id = {orders[n]}")
                    updates[n] += 1
                    if count != 1:
                        wrong.append(f"session {n} update {i}: {count} rows")
        return job

    in_sessions(dal, *(work(n) for n in range(len(orders))))
    assert not wrong
    assert dal.metric("dal_pool_pipelined_total", instance="a") > pipelined
    direct = backend(dal, "a")
    try:
        for n, order in enumerate(orders):
            assert one(direct, f"SELECT total FROM user_{USER_ON_A:03d}.orders WHERE id = %s",
                       (order,)) == (1 + updates[n],)
    finally:
        direct.close()
    setup.close()
    assert_pools_idle(dal.port)


def test_spread_queues_no_fast_statement_behind_a_slow_one(spread_dal) -> None:
    """While one session runs one-second statements, the point selects of four others never
    wait behind one of them. A statement shape is queued behind only once it has been
    answered quickly (dal/stats.py `quick`)."""
    dal = spread_dal
    setup = dal.connect()
    order = new_order(setup, USER_ON_A)
    done = threading.Event()
    worst: list[float] = []

    def slow(cur: Cursor) -> None:
        try:
            for _ in range(3):
                cur.execute(f"SELECT id, SLEEP(1) FROM orders WHERE user_id = {USER_ON_A} "
                            f"AND id = {order}")
                cur.fetchall()
        finally:
            done.set()

    def fast(cur: Cursor) -> None:
        longest = 0.0
        try:
            while not done.is_set():
                started = time.monotonic()
                cur.execute(point_select(order))
                assert cur.fetchall() == ((order,),)
                longest = max(longest, time.monotonic() - started)
        finally:
            worst.append(longest)

    in_sessions(dal, slow, *(fast for _ in range(4)))
    assert len(worst) == 4 and max(worst) < 0.5, worst
    setup.close()
    assert_pools_idle(dal.port)


def test_spread_keeps_each_sessions_warnings_readable(spread_dal) -> None:
    """Sessions whose statements leave warnings read their own with SHOW WARNINGS every
    time, while others' point selects pipeline around them: a shape that leaves diagnostics
    is not queued behind, so the session keeps the connection that holds them."""
    dal = spread_dal
    setup = dal.connect()
    order = new_order(setup, USER_ON_A)
    readers = 2
    finished: list[int] = []
    done = threading.Event()
    wrong: list[object] = []
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")

    def warned(n: int) -> Callable[[Cursor], None]:
        def job(cur: Cursor) -> None:
            try:
                for i in range(100):
                    cur.execute(point_select(order))  # no warnings: the connection goes back
                    cur.fetchall()
                    cur.execute(f"SELECT id, CAST('{n}x{i}' AS UNSIGNED) FROM orders WHERE "
                                f"user_id = {USER_ON_A} AND id = {order}")
                    cur.fetchall()
                    cur.execute("SHOW WARNINGS")
                    got = cur.fetchall()
                    if [(code, f"'{n}x{i}'" in message) for _, code, message in got] != [
                            (1292, True)]:
                        wrong.append((n, i, got))
            finally:
                finished.append(n)
                if len(finished) == readers:
                    done.set()
        return job

    def fast(cur: Cursor) -> None:
        while not done.is_set():
            cur.execute(point_select(order))
            cur.fetchall()

    in_sessions(dal, *(warned(n) for n in range(readers)), *(fast for _ in range(6)))
    assert not wrong, wrong[:3]
    assert dal.metric("dal_pool_pipelined_total", instance="a") > pipelined
    setup.close()
    assert_pools_idle(dal.port)
