"""Prepared executions of several sessions pipelined on one backend connection.

As tests/integration/test_pipelining.py for COM_QUERY, with COM_STMT_EXECUTE: a DAL of the
test's own with one backend connection per instance and ``pool.pipeline_depth: 8``. Each
session prepares its statement and executes it once (the one backend connection prepares it
then); while another session's statement runs there, the next executions are written behind
it. Every session must get its own rows, affected-row count or error; when the backend kills
the connection mid-pipeline, each execution in flight fails with 2013 and none runs again.
"""

from __future__ import annotations

import time

from dal.wire.binary import ParamType
from router.rows.types import ColumnType
from tests.conftest import assert_pools_idle
from tests.integration.test_dead_connections import backend, kill, new_order, one
from tests.integration.test_pipelining import LOST, USER_ON_A, piped_dal, raw_client, rows
from tests.psclient import PsClient, ServerError

__all__ = ["piped_dal"]  # the fixture, shared with the text tests

LONG: ParamType = (ColumnType.LONGLONG, False)
DECIMAL: ParamType = (ColumnType.NEWDECIMAL, False)


def _session(dal, sql: str) -> tuple[PsClient, int]:
    client = PsClient(dal.port)
    assert client.login()[:1] == b"\x00"
    return client, client.prepare(sql).id


def _head(dal, sql: bytes):
    """A text statement of another session, running on the one connection to instance a."""
    first = raw_client(dal)
    first.send(b"%c\x00\x00\x00\x03" % (len(sql) + 1) + sql)
    time.sleep(0.3)
    return first


def test_pipelined_executions_get_their_own_rows_counts_and_errors(piped_dal) -> None:
    dal = piped_dal
    setup = dal.connect()
    ids = [new_order(setup, USER_ON_A) for _ in range(2)]
    work = [  # (statement, parameters)
        ("SELECT id, total FROM orders WHERE user_id = ? AND id = ?",
         [(LONG, USER_ON_A), (LONG, ids[0])]),
        ("UPDATE orders SET total = total + ? WHERE user_id = ? AND id IN (?, ?)",
         [(DECIMAL, b"1.00"), (LONG, USER_ON_A), (LONG, ids[0]), (LONG, ids[1])]),
        ("SELECT EXP(?) FROM orders WHERE user_id = ? LIMIT 1",  # 1690 at 1000, not at 0
         [(LONG, 0), (LONG, USER_ON_A)]),
        ("DELETE FROM orders WHERE user_id = ? AND id = ?", [(LONG, USER_ON_A), (LONG, -1)]),
        ("SELECT ?, @@pseudo_thread_id FROM orders WHERE user_id = ? LIMIT 1",
         [(LONG, 5), (LONG, USER_ON_A)]),
    ]
    sessions = [_session(dal, sql) for sql, _ in work]
    for (client, sid), (_, params) in zip(sessions, work, strict=True):
        client.execute(sid, params)  # prepared on the backend connection now
        client.read_result()
    thread = one(setup, "SELECT @@pseudo_thread_id")[0]
    total = one(setup, "SELECT SUM(total) FROM orders WHERE user_id = %s AND id IN (%s, %s)",
                (USER_ON_A, *ids))[0]
    opened = dal.metric("dal_pool_opened_total", instance="a")
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")
    first = _head(dal, b"SELECT 'head', SLEEP(0.8)")
    work[2][1][0] = (LONG, 1000)  # now EXP overflows: this execution's own error
    for (client, sid), (_, params) in zip(sessions, work, strict=True):
        client.execute(sid, params)
    answers = []
    for client, _ in sessions:
        try:
            answers.append(client.read_result())
        except ServerError as exc:
            answers.append(exc)
    assert rows(first.read_response()) == [[b"head", b"0"]]
    assert [list(r) for r in answers[0].rows] == [[ids[0], b"2.00"]]  # before the UPDATE
    assert answers[1].affected_rows == 2
    assert isinstance(answers[2], ServerError) and answers[2].code == 1690, answers[2]
    assert answers[3].affected_rows == 0
    assert [list(r) for r in answers[4].rows] == [[5, thread]]  # the same connection
    # all five went behind the head on the one connection: none opened, all pipelined
    assert dal.metric("dal_pool_opened_total", instance="a") == opened
    assert dal.metric("dal_pool_pipelined_total", instance="a") - pipelined == len(work)
    assert one(setup, "SELECT SUM(total) FROM orders WHERE user_id = %s AND id IN (%s, %s)",
               (USER_ON_A, *ids))[0] == total + 2
    for client, _ in sessions:  # each session goes on
        assert rows(client.query(b"SELECT 7")) == [[b"7"]]
        client.close()
    first.close()
    setup.close()
    assert_pools_idle(dal.port)


def test_backend_killed_mid_pipeline_fails_each_execution_once(piped_dal) -> None:
    """The backend connection is killed while the head sleeps and three executions wait
    behind it on the wire: each gets 2013, the UPDATE among them is not run again, and every
    session works again on a fresh connection (its statement prepared there anew)."""
    dal = piped_dal
    setup = dal.connect()
    order = new_order(setup, USER_ON_A)
    work = [
        ("SELECT ? FROM orders WHERE user_id = ? LIMIT 1", [(LONG, 1), (LONG, USER_ON_A)]),
        ("UPDATE orders SET total = total + 1 WHERE user_id = ? AND id = ?",
         [(LONG, USER_ON_A), (LONG, order)]),
        ("SELECT ?, SLEEP(0.1) FROM orders WHERE user_id = ? LIMIT 1",
         [(LONG, 2), (LONG, USER_ON_A)]),
    ]
    sessions = [_session(dal, sql) for sql, _ in work]
    for (client, sid), (_, params) in zip(sessions, work, strict=True):
        client.execute(sid, params)
        client.read_result()
    thread = one(setup, "SELECT @@pseudo_thread_id")[0]
    pipelined = dal.metric("dal_pool_pipelined_total", instance="a")
    first = _head(dal, b"SELECT SLEEP(5)")
    for (client, sid), (_, params) in zip(sessions, work, strict=True):
        client.execute(sid, params)
    time.sleep(0.3)
    assert dal.metric("dal_pool_pipelined_total", instance="a") - pipelined == len(work)
    kill(dal, "a", thread)
    head = first.read_response()[0]
    assert head[:1] == b"\xff"
    for client, _ in sessions:
        try:
            client.read_result()
            raise AssertionError("an execution in flight on the killed connection answered")
        except ServerError as exc:
            assert (exc.code, exc.message) == (2013, LOST)
    direct = backend(dal, "a")
    try:
        assert one(direct, f"SELECT total FROM user_{USER_ON_A:03d}.orders WHERE id = %s",
                   (order,)) == (2,)  # once by the warm-up, not again by the lost pipeline
    finally:
        direct.close()
    for (client, sid), (_, params) in zip(sessions, work, strict=True):
        client.execute(sid, params)
        assert client.read_result() is not None
        client.close()
    first.close()
    setup.close()
    assert_pools_idle(dal.port)


def test_kill_query_reaches_only_the_pipelined_execution_it_names(piped_dal) -> None:
    """KILL QUERY for a session whose execution waits behind another session's on the same
    backend connection, with a third session's execution behind it: the head and the third
    run to their end untouched; the named execution is interrupted once it runs."""
    dal = piped_dal
    victim, slow = _session(dal, "SELECT ?, SLEEP(?) FROM orders WHERE user_id = ? LIMIT 1")
    bystander, quick = _session(dal, "SELECT ? FROM orders WHERE user_id = ? LIMIT 1")
    setup = dal.connect()
    new_order(setup, USER_ON_A)
    victim.execute(slow, [(LONG, 0), (LONG, 0), (LONG, USER_ON_A)])
    victim.read_result()
    bystander.execute(quick, [(LONG, 0), (LONG, USER_ON_A)])
    bystander.read_result()
    victim_id = int(rows(victim.query(b"SELECT CONNECTION_ID()"))[0][0])
    killer = dal.connect("admin", "admin")
    first = _head(dal, b"SELECT 'ahead', SLEEP(1.5)")
    started = time.monotonic()
    victim.execute(slow, [(LONG, 1), (LONG, 20), (LONG, USER_ON_A)])
    bystander.execute(quick, [(LONG, 2), (LONG, USER_ON_A)])
    time.sleep(0.2)
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim_id}")
    assert rows(first.read_response()) == [[b"ahead", b"0"]]  # not interrupted
    assert [list(r) for r in bystander.read_result().rows] == [[2]]
    try:
        answer = victim.read_result()
        assert [list(r) for r in answer.rows] == [[1, 1]]  # SLEEP interrupted: 1
    except ServerError as exc:
        assert exc.code == 1317, exc
    assert time.monotonic() - started < 10
    for client in (victim, first, bystander):
        assert rows(client.query(b"SELECT 8")) == [[b"8"]]
        client.close()
    killer.close()
    setup.close()
    assert_pools_idle(dal.port)
