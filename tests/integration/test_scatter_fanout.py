"""A scatter read's shard statements pipelined on a few pooled connections (dal/execute/fanout.py).

Outside a transaction, an instance's share of a 120-shard read goes out over at most
`fanout.CONNECTIONS` pooled connections, several statements written at once on each. The
merged answer must equal the shards' own rows; a shard's ERR must reach the client as that
statement's error, leaving the connections usable; a backend connection killed mid-pipeline
must fail the read cleanly, give every connection back, and leave the next read correct.
"""

from __future__ import annotations

import threading
import time
import uuid

import pymysql
import pytest

from dal.execute.fanout import CONNECTIONS
from tests.conftest import assert_pools_idle
from tests.integration.test_dead_connections import INTERNAL, backend, kill
from tests.own_dal import own_dal

SHARDS = 120
NOTE = f"fanout-{uuid.uuid4().hex[:12]}"  # this run's rows: other tests' may come and go
MERGED = f"SELECT id, total FROM orders WHERE note = '{NOTE}' ORDER BY id DESC LIMIT 50"


@pytest.fixture
def fan_dal(tmp_path):
    with own_dal(tmp_path, pool={"max_size": 16, "min_idle": 0}) as dal:
        yield dal
        assert INTERNAL not in dal.proc.log()[-20000:]


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [tuple(str(v) for v in row) for row in cur.fetchall()]


def _truth(dal) -> list[tuple]:
    """MERGED computed from every shard read directly."""
    found: list[tuple] = []
    for instance, shards in (("a", range(0, 60)), ("b", range(60, SHARDS))):
        direct = backend(dal, instance)
        try:
            for n in shards:
                found += _rows(direct, f"SELECT id, total FROM user_{n:03d}.orders "
                                     f"WHERE note = '{NOTE}'")
        finally:
            direct.close()
    return sorted(found, key=lambda row: -int(row[0]))[:50]


def _add_orders(client, users: range, total: str = "2.00") -> list[int]:
    ids = []
    with client.cursor() as cur:
        for user in users:
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 7, 1, %s, %s, NOW(6), NOW(6))",
                        (user, total, NOTE))
            ids.append(cur.lastrowid)
    return ids


def test_a_120_shard_read_uses_few_connections_and_equals_the_shards(fan_dal) -> None:
    dal = fan_dal
    client = dal.connect()
    _add_orders(client, range(1, 121))  # a row on every user shard
    _add_orders(client, range(1, 61))
    before = {i: dal.metric("dal_pool_opened_total", instance=i) for i in ("a", "b")}
    for _ in range(3):
        assert _rows(client, MERGED) == _truth(dal)
    for instance in ("a", "b"):  # 60 shards each: at most CONNECTIONS connections, not 16
        opened = dal.metric("dal_pool_opened_total", instance=instance) - before[instance]
        assert 1 <= opened <= CONNECTIONS, (instance, opened)
    client.close()
    assert_pools_idle(dal.port)


def test_one_shards_error_is_the_reads_error_and_the_connections_stay_usable(fan_dal) -> None:
    """EXP(total) overflows (MariaDB's 1690) on the one shard whose order has total 1000.00;
    its statement is one of several pipelined on a connection: the read gets that ERR, and
    every connection goes on answering the next reads correctly."""
    dal = fan_dal
    client = dal.connect()
    _add_orders(client, range(1, 121))
    (bad,) = _add_orders(client, range(77, 78), "1000.00")
    opened = dal.metric("dal_pool_opened_total", instance="b")
    with pytest.raises(pymysql.err.MySQLError) as caught, client.cursor() as cur:
        cur.execute(f"SELECT id, EXP(total) FROM orders WHERE note = '{NOTE}' "
                    "ORDER BY id DESC LIMIT 10")
    assert caught.value.args[0] == 1690, caught.value.args
    assert "exp" in caught.value.args[1].lower()
    with client.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE user_id = 77 AND id = %s", (bad,))
    for _ in range(2):
        assert _rows(client, MERGED) == _truth(dal)
    # the ERR did not cost a connection: none was closed and opened again for it
    assert dal.metric("dal_pool_opened_total", instance="b") - opened <= CONNECTIONS
    client.close()
    assert_pools_idle(dal.port)


def test_a_backend_connection_killed_mid_pipeline_fails_the_read_cleanly(fan_dal) -> None:
    """Each shard statement sleeps 0.1 s, so an instance's 60 run for ~1.5 s on each of its
    connections; one of them is killed meanwhile. The read fails with a clean error (the
    backend's 1927 for the statement running there, or 2013 for those behind it), DAL gives
    every connection back, and the same read then answers as the shards do."""
    dal = fan_dal
    client = dal.connect()
    _add_orders(client, range(1, 121))
    outcome: list = []

    def read() -> None:
        reader = dal.connect()
        try:
            outcome.append(_rows(reader, "SELECT SLEEP(0.1) AS s, COUNT(*) FROM orders"))
        except pymysql.err.MySQLError as exc:
            outcome.append(exc)
        finally:
            reader.close()

    worker = threading.Thread(target=read)
    worker.start()
    direct = backend(dal, "a")
    try:
        victim = None
        deadline = time.monotonic() + 10
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with direct.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.processlist WHERE info LIKE "
                            "'SELECT SLEEP(0.1)%' AND user = 'dal' LIMIT 1")
                victim = cur.fetchone()
        assert victim is not None, "no shard statement seen running on instance a"
        time.sleep(0.2)
        kill(dal, "a", victim[0])
    finally:
        direct.close()
    worker.join(30)
    (failed,) = outcome
    assert isinstance(failed, pymysql.err.MySQLError), failed
    assert failed.args[0] in (1927, 2013), failed.args
    assert "backend" in failed.args[1] or failed.args[0] == 1927, failed.args
    assert_pools_idle(dal.port)
    assert _rows(client, MERGED) == _truth(dal)
    client.close()
