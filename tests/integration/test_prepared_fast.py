"""Repeated COM_STMT_EXECUTE of a statement keyed by one parameter (the fast route of
`dal.prepared_fast`): every shard, clients that send types once or every time, type changes,
NULLs, a pool too small for its clients, and rate limits, all checked against the shards."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from router.rows.types import ColumnType as T
from tests.dal_process import running_test_config
from tests.own_dal import OwnDal, own_dal
from tests.psclient import PsClient, ServerError

U64 = (T.LONGLONG, True)
I32 = (T.LONG, False)
STR = (T.VAR_STRING, False)
BASE = 930_000
USERS = [BASE + shard + 120 * copy for shard in range(120) for copy in range(2)]  # every shard
WIPE = f"DELETE FROM orders WHERE user_id IN ({', '.join(map(str, USERS))})"
SELECT = "SELECT id, user_id, note FROM orders WHERE user_id = ? ORDER BY id"


def instance_of(shard: int) -> str:
    return "a" if shard < 60 else "b"


@pytest.fixture(scope="module")
def orders(dal) -> Iterator[dict[int, list[tuple]]]:
    """Two orders for each user of USERS (so on every user shard), written through DAL; the
    expected rows of each user, read directly from its shard."""
    config = running_test_config()
    through = pymysql.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                              database="trade", autocommit=True)
    with through.cursor() as cur:
        cur.execute(WIPE)
        for user in USERS:
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 7, 1, 1.00, %s, NOW(), NOW()), "
                        "(%s, 8, 1, 2.00, NULL, NOW(), NOW())", (user, f"u{user}", user))
    expected = {}
    for user in USERS:
        shard = user % 120
        instance = config.instances[instance_of(shard)]
        with pymysql.connect(host=instance.host, port=instance.port, user=instance.user,
                             password=instance.password) as direct, direct.cursor() as cur:
            cur.execute(f"SELECT id, user_id, note FROM user_{shard:03d}.orders WHERE user_id "
                        "= %s ORDER BY id", (user,))
            expected[user] = list(cur.fetchall())
        assert len(expected[user]) == 2
    yield expected
    with through.cursor() as cur:
        cur.execute(WIPE)
    through.close()


def rows(client: PsClient, statement: int, param: tuple, bound: bool = True) -> list[tuple]:
    client.execute_raw(statement, [param], bound)
    return [(r[0], r[1], r[2] and r[2].decode()) for r in client.read_result().rows]


def test_every_shard_with_types_sent_once_or_always(dal, orders) -> None:
    client = PsClient(dal.port)
    client.login()
    try:
        stmt = client.prepare(SELECT)
        for rnd in range(3):  # round 0 fills the caches; later rounds take the fast route
            order = list(USERS)
            random.Random(rnd).shuffle(order)
            for i, user in enumerate(order):
                bound = (rnd == 0 and i == 0) or rnd == 1  # as libmysqlclient, and as mysql2
                assert rows(client, stmt.id, (U64, user), bound) == orders[user], (rnd, user)
        # New types mid-way: a signed 32-bit key, then the key as a string, then types again
        # omitted (the last ones bound apply); a NULL or negative key is refused, as in text.
        user = USERS[77]
        assert rows(client, stmt.id, (I32, user)) == orders[user]
        assert rows(client, stmt.id, (I32, USERS[78]), bound=False) == orders[USERS[78]]
        assert rows(client, stmt.id, (STR, str(user).encode())) == orders[user]
        assert rows(client, stmt.id, (STR, str(USERS[5]).encode()), False) == orders[USERS[5]]
        with pytest.raises(ServerError) as info:
            rows(client, stmt.id, (U64, None))
        assert info.value.code == 1105 and "NULL" in info.value.message
        assert rows(client, stmt.id, (U64, USERS[6])) == orders[USERS[6]]
        with pytest.raises(ServerError) as info:
            rows(client, stmt.id, (I32, -5))
        assert info.value.code == 1105 and "negative" in info.value.message
        assert rows(client, stmt.id, (U64, USERS[9])) == orders[USERS[9]]
    finally:
        client.close()


def test_new_sessions_take_the_route_another_session_built(dal, orders) -> None:
    """A client that prepares the statement on each new connection: from the second
    connection on, the first execution already takes the route the first one built; the
    types it sent then stay bound for executions without them, on either path."""
    first = PsClient(dal.port)
    first.login()
    try:
        stmt = first.prepare(SELECT)
        assert rows(first, stmt.id, (U64, USERS[0])) == orders[USERS[0]]
    finally:
        first.close()
    for n in range(3):
        client = PsClient(dal.port)
        client.login()
        try:
            stmt = client.prepare(SELECT)
            for i, user in enumerate(USERS[n::17]):
                assert rows(client, stmt.id, (U64, user), bound=i == 0) == orders[user], user
            with pytest.raises(ServerError) as info:  # the full path, with no types sent
                rows(client, stmt.id, (U64, None), bound=False)
            assert info.value.code == 1105 and "NULL" in info.value.message
            # other types than the route's: this session's own way, then its own types
            assert rows(client, stmt.id, (I32, USERS[n])) == orders[USERS[n]]
            assert rows(client, stmt.id, (I32, USERS[n + 1]), bound=False) == orders[USERS[n + 1]]
        finally:
            client.close()


def test_statement_on_two_columns_routes_by_its_key(dal, orders) -> None:
    """The key is the second parameter, after a fixed-size one; a string parameter after it."""
    client = PsClient(dal.port)
    client.login()
    try:
        stmt = client.prepare("SELECT id, user_id, note FROM orders WHERE merchant_id = ? AND "
                              "user_id = ? AND note <> ? ORDER BY id")
        for _ in range(2):
            for user in USERS[::7]:
                client.execute_raw(stmt.id, [(U64, 7), (U64, user), (STR, b"-")], True)
                got = [(r[0], r[1], r[2].decode()) for r in client.read_result().rows]
                assert got == orders[user][:1], user
    finally:
        client.close()


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnDal]:
    running_test_config()
    with own_dal(tmp_path_factory.mktemp("psfast"),
                 pool={"max_size": 2, "max_waiters": 100, "acquire_timeout": 5.0},
                 limits={"fingerprints": {"SELECT note FROM orders WHERE id = ?":
                                          {"rate": 2, "burst": 2}}}) as proc:
        yield proc


def test_clients_outnumber_the_pool(tiny_pool, orders) -> None:
    """Twelve clients on a pool of two per instance: executions queue for a connection (no
    coroutine, no decoding) and every answer is the owning shard's; nothing leaks."""
    failures: list[str] = []
    done = [0]

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        client = PsClient(tiny_pool.port)
        client.login()
        try:
            stmt = client.prepare(SELECT)
            for i in range(150):
                user = rng.choice(USERS)
                got = rows(client, stmt.id, (U64, user), bound=i == 0)
                if got != orders[user]:
                    failures.append(f"user {user}: {got} != {orders[user]}")
                done[0] += 1
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == [] and done[0] == 12 * 150
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            tiny_pool.metric("dal_pool_in_use", instance=name) for name in ("a", "b")):
        time.sleep(0.1)
    for name in ("a", "b"):
        assert tiny_pool.metric("dal_pool_in_use", instance=name) == 0
        assert tiny_pool.metric("dal_pool_max", instance=name) == 2


def test_rate_limits_apply_to_prepared_executions(tiny_pool, orders) -> None:
    """A fingerprint limit written as the prepared statement's text throttles its executions
    (refused with 1226 past the burst), as it does the text statement."""
    client = PsClient(tiny_pool.port)
    client.login()
    try:
        time.sleep(1.1)  # the bucket is full again
        stmt = client.prepare("SELECT note FROM orders WHERE id = ?")
        order_id = orders[USERS[3]][0][0]
        codes = []
        for _ in range(5):
            client.execute_raw(stmt.id, [(U64, order_id)], True)
            try:
                assert client.read_result().rows == [[f"u{USERS[3]}".encode()]]
                codes.append(0)
            except ServerError as exc:
                codes.append(exc.code)
        assert codes[:2] == [0, 0] and 1226 in codes[2:], codes
        time.sleep(1.1)
        client.execute_raw(stmt.id, [(U64, order_id)], False)
        assert client.read_result().rows == [[f"u{USERS[3]}".encode()]]
    finally:
        client.close()


def test_unsharded_statement_relayed_with_nulls_and_new_types(dal, direct) -> None:
    """`merchants` lives on the default instance: after one full-path execution each execute
    is relayed there as it came (NULLs too), with types sent once or every time; what DAL
    writes and reads equals the backend's own table."""
    names = [f"fixed-route-{i}" for i in range(40)]
    backend = direct("a", "trade")
    with backend.cursor() as cur:
        cur.execute("DELETE FROM merchants WHERE name LIKE 'fixed-route-%'")
    client = PsClient(dal.port)
    client.login()
    try:
        insert = client.prepare("INSERT INTO merchants (name, region_id, rating) VALUES (?, ?, ?)")
        for i, name in enumerate(names):
            region = None if i % 3 == 0 else i
            rating = None if i % 4 == 0 else f"{i % 5}.{i % 10}0".encode()
            client.execute_raw(insert.id, [(STR, name.encode()), (I32, region),
                                           ((T.NEWDECIMAL, False), rating)], i % 7 == 0)
            client.read_result()
        select = client.prepare("SELECT name, region_id, rating FROM merchants WHERE name = ?")
        with backend.cursor() as cur:
            for i, name in enumerate(names * 2):
                client.execute_raw(select.id, [(STR, name.encode())], i % 5 == 0)
                got = [(r[0].decode(), r[1], None if r[2] is None else r[2].decode())
                       for r in client.read_result().rows]
                cur.execute("SELECT name, region_id, rating FROM merchants WHERE name = %s",
                            (name,))
                want = [(n, reg, None if rat is None else str(rat))
                        for n, reg, rat in cur.fetchall()]
                assert got == want and len(want) == 1, name
            # a new type for the parameter, then a NULL one: the backend's own answers
            client.execute_raw(select.id, [((T.BLOB, False), names[3].encode())], True)
            assert [r[0].decode() for r in client.read_result().rows] == [names[3]]
            client.execute_raw(select.id, [(STR, None)], True)
            assert client.read_result().rows == []
            cur.execute("SELECT COUNT(*) FROM merchants WHERE name LIKE 'fixed-route-%'")
            assert cur.fetchone()[0] == len(names)
            cur.execute("DELETE FROM merchants WHERE name LIKE 'fixed-route-%'")
    finally:
        client.close()
