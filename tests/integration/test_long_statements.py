"""Long statements are planned off the event loop, and long OR chains route.

sqlglot plans about 5-7 ms per KiB. DAL used to plan on the event loop, so one client's
100 KiB OR chain held every other client of the process for seconds, and a chain of 1,000 ORs
on a sharded table failed with 1105 (Python's recursion limit). Here a client sends an OR chain
of thousands of shard keys while another keeps running short statements: the short ones keep
being answered, and the long one returns exactly the rows it names, checked against the
backends directly.
"""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from router.rows.types import ColumnType as T
from tests.psclient import PsClient

USERS = [810_017 + i * 7919 for i in range(12)]  # spread over the shards of both instances
CHAIN = 6000  # shard keys ORed: about 100 KiB of statement, seconds of sqlglot
NOBODY = 7_700_000_000  # user ids from here on hold no orders (other tests use small ones)


IN_USERS = ",".join(map(str, USERS))


def _or_chain(keys: list[int]) -> str:
    return "SELECT id, user_id FROM orders WHERE " + " OR ".join(f"user_id = {k}" for k in keys)


@pytest.fixture
def orders(connect, direct) -> dict[int, int]:
    """One order per user in USERS, written through DAL; order id -> user id, as the
    backends hold them."""
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM orders WHERE user_id IN ({IN_USERS})")
        for user in USERS:
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 7, 1, 2.50, 'long', NOW(), NOW())",
                        (user,))
    truth: dict[int, int] = {}
    for instance in ("a", "b"):
        with direct(instance).cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata "
                        "WHERE schema_name LIKE 'user\\_%'")
            for (db,) in cur.fetchall():
                cur.execute(f"SELECT id, user_id FROM {db}.orders WHERE note = 'long' AND "
                            f"user_id IN ({IN_USERS})")
                truth.update(dict(cur.fetchall()))
    assert sorted(truth.values()) == sorted(USERS)
    yield truth
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM orders WHERE user_id IN ({IN_USERS})")


def test_long_statement_leaves_other_clients_served(connect, orders: dict[int, int]) -> None:
    keys = USERS + list(range(NOBODY, NOBODY + CHAIN - len(USERS)))
    long_sql = _or_chain(keys)
    assert len(long_sql) > 64 * 1024
    done = threading.Event()
    result: dict = {}

    def run_long() -> None:
        conn = connect(read_timeout=120)
        started = time.perf_counter()
        try:
            with conn.cursor() as cur:
                cur.execute(long_sql)
                result["rows"] = dict(cur.fetchall())
        finally:
            result["seconds"] = time.perf_counter() - started
            done.set()

    other = connect()
    with other.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM regions")  # planned and cached before the race
        cur.fetchall()
        worker = threading.Thread(target=run_long)
        worker.start()
        latencies = []
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            cur.execute("SELECT COUNT(*) FROM regions")
            cur.fetchall()
            latencies.append(time.perf_counter() - started)
        worker.join(10)
    assert result.get("rows") == orders  # every named user's order, nothing else
    # The long statement took long enough to matter, and nobody waited for it meanwhile.
    assert result["seconds"] > 0.3, result
    assert len(latencies) >= 10, (result, latencies)
    assert max(latencies) < result["seconds"] / 3, (result["seconds"], max(latencies))


def test_long_or_chain_in_a_batch_and_prepared(connect, dal, orders: dict[int, int]) -> None:
    """The same chain in a multi-statement batch (read on the planner thread as a whole), and
    a prepared IN of 1,500 parameters (its plan too long to cache: planned per execution)."""
    keys = USERS + list(range(NOBODY, NOBODY + 2000))
    conn = connect(client_flag=1 << 16)  # CLIENT_MULTI_STATEMENTS
    with conn.cursor() as cur:
        cur.execute(f"{_or_chain(keys)}; SELECT COUNT(*) FROM orders WHERE user_id = {USERS[0]}")
        assert dict(cur.fetchall()) == orders
        assert cur.nextset()
        assert cur.fetchall() == ((1,),)
    ps = PsClient(dal.port)
    try:
        assert ps.login()[:1] == b"\x00"
        params = USERS + list(range(NOBODY, NOBODY + 1500 - len(USERS)))
        sql = f"SELECT id, user_id FROM orders WHERE user_id IN ({','.join('?' * len(params))})"
        for _ in range(2):  # the second execution plans again: its key is past the cache's
            got = ps.run(sql, [((T.LONGLONG, True), key) for key in params])
            assert {row[0]: row[1] for row in got.rows} == orders
    finally:
        ps.close()


def test_kill_query_while_a_statement_is_planned_stops_it(connect, direct,
                                                          orders: dict[int, int]) -> None:
    """KILL QUERY of a statement still on the planner thread (nothing on a backend to kill)
    ends it with 1317 once planned, and it writes nothing; the session goes on."""
    keys = USERS[:1] + list(range(NOBODY, NOBODY + 15000))
    update = ("UPDATE orders SET note = 'ran-after-kill' WHERE "
              + " OR ".join(f"user_id = {k}" for k in keys))
    victim = connect(read_timeout=120)
    with victim.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        (victim_id,) = cur.fetchone()
    outcome: dict = {}

    def run_update() -> None:
        try:
            with victim.cursor() as cur:
                cur.execute(update)
                outcome["affected"] = cur.rowcount
        except pymysql.MySQLError as exc:
            outcome["error"] = exc.args[0]

    worker = threading.Thread(target=run_update)
    worker.start()
    time.sleep(0.3)
    with connect().cursor() as cur:
        cur.execute(f"KILL QUERY {victim_id}")
    worker.join(120)
    assert outcome == {"error": 1317}
    with victim.cursor() as cur:  # the session is still usable
        cur.execute("SELECT note FROM orders WHERE user_id = %s", (USERS[0],))
        assert cur.fetchall() == (("long",),)
