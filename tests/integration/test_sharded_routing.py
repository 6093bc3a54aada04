"""Writes through DAL land in exactly the shard their keys name; refusals apply nothing."""

from __future__ import annotations

import random

import pymysql
import pytest

from router.genes import merchant_shard_of_gene, user_shard_of_gene

USERS = [900_001 + i * 7919 for i in range(12)]  # spread over shards on both instances
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
          "updated_at) VALUES (%s, %s, %s, %s, %s, '2026-11-22 12:00:00.123456', "
          "'2026-11-22 12:00:00.123456')")


def instance_of(shard: int) -> str:
    return "a" if shard < 60 else "b"


@pytest.fixture
def clean(connect):
    def wipe() -> None:
        with connect().cursor() as cur:
            cur.execute("DELETE FROM order_items WHERE user_id IN %s", (USERS,))
            cur.execute("DELETE FROM orders WHERE user_id IN %s", (USERS,))
    wipe()
    yield
    wipe()


def shard_rows(direct, shard: int, table: str = "orders") -> set[tuple]:
    with direct(instance_of(shard)).cursor() as cur:
        cur.execute(f"SELECT id, user_id FROM user_{shard:03d}.{table} WHERE user_id IN %s",
                    (USERS,))
        return set(cur.fetchall())


def test_inserts_land_in_their_user_shard_only(connect, direct, clean) -> None:
    rng = random.Random(7)
    made = {}
    with connect().cursor() as cur:
        for user in USERS:
            merchant = rng.randrange(1, 10**6)
            cur.execute(INSERT, (user, merchant, 1, "12.50", "x"))
            made[cur.lastrowid] = (user, merchant)
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, created_at, "
                    "updated_at) VALUES (%s, 3, 0, 1, NOW(), NOW()), (%s, 4, 0, 2, NOW(), "
                    "NOW())", (USERS[0], USERS[5]))
        assert cur.rowcount == 2
    for order_id, (user, merchant) in made.items():
        assert user_shard_of_gene(order_id) == user % 120
        assert merchant_shard_of_gene(order_id) == merchant % 120
    for shard in range(120):
        rows = shard_rows(direct, shard)
        assert all(user % 120 == shard for _, user in rows), f"stray row in user_{shard:03d}"
        expected = {(i, u) for i, (u, _) in made.items() if u % 120 == shard}
        assert expected <= rows


def test_reads_updates_deletes_by_key_and_by_order_id(connect, direct, clean) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(INSERT, (USERS[1], 77, 0, "5.00", None))
        first = cur.lastrowid
        cur.execute(INSERT, (USERS[2], 78, 0, "6.00", None))
        second = cur.lastrowid
        cur.execute("SELECT id, user_id, merchant_id, total FROM orders WHERE id = %s", (first,))
        assert cur.fetchall()[0][:3] == (first, USERS[1], 77)
        cur.execute("SELECT user_id FROM orders WHERE user_id = %s OR user_id = %s "
                    "ORDER BY user_id", (USERS[1], USERS[2]))
        assert [r[0] for r in cur.fetchall()] == sorted([USERS[1], USERS[2]])
        assert cur.execute("UPDATE orders SET status = 3 WHERE id = %s", (second,)) == 1
        assert cur.execute("DELETE FROM orders WHERE user_id = %s AND id = %s",
                           (USERS[1], first)) == 1
        assert cur.description is None
    assert shard_rows(direct, USERS[1] % 120) & {(first, USERS[1])} == set()
    with direct(instance_of(USERS[2] % 120)).cursor() as cur:
        cur.execute(f"SELECT status FROM user_{USERS[2] % 120:03d}.orders WHERE id = %s",
                    (second,))
        assert cur.fetchall() == ((3,),)


def test_columns_name_the_logical_database(connect, clean) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(INSERT, (USERS[3], 1, 0, "1.00", None))
        cur.execute("SELECT id FROM orders WHERE user_id = %s", (USERS[3],))
        cur.fetchall()
        assert conn._result.fields[0].db == b"trade"


@pytest.mark.parametrize(("sql", "fragment"), [
    ("UPDATE orders SET user_id = 5 WHERE user_id = {u}", "shard-key column 'user_id'"),
    ("UPDATE orders SET status = 1 WHERE status = 0", "scatter write"),
    ("DELETE FROM orders WHERE merchant_id = 5", "read copy"),
    ("INSERT INTO orders (id, user_id, merchant_id, status, total, created_at, updated_at) "
     "VALUES (5, {u}, 1, 0, 1, NOW(), NOW())", "contradicts"),
    ("SELECT * FROM orders o JOIN merchants m ON m.id = o.merchant_id WHERE o.user_id = {u}",
     "unsharded table 'merchants'"),
])
def test_refusals_name_the_cause_and_apply_nothing(connect, direct, clean, sql: str,
                                                   fragment: str) -> None:
    with connect().cursor() as cur:
        cur.execute(INSERT, (USERS[4], 1, 0, "1.00", None))
        order_id = cur.lastrowid
        with pytest.raises(pymysql.MySQLError) as info:
            cur.execute(sql.format(u=USERS[4]))
        assert info.value.args[0] in (1235, 1105)
        assert fragment in info.value.args[1]
    assert shard_rows(direct, USERS[4] % 120) == {(order_id, USERS[4])}
    with direct(instance_of(USERS[4] % 120)).cursor() as cur:
        cur.execute(f"SELECT status FROM user_{USERS[4] % 120:03d}.orders WHERE id = %s",
                    (order_id,))
        assert cur.fetchall() == ((0,),)


def test_join_with_unsharded_table_is_served_on_one_shard_of_its_instance(connect, direct,
                                                                       clean) -> None:
    """merchants lives in the default database on instance a: a join with it runs on one
    shard of a, and gives what the same join gives on the backend itself."""
    home = next(u for u in USERS if u % 120 < 60)
    away = next(u for u in USERS if u % 120 >= 60)
    with connect().cursor() as cur:
        cur.execute("INSERT INTO merchants (name, region_id) VALUES ('join-test', 7)")
        merchant = cur.lastrowid
        try:
            for user in (home, home, away):
                cur.execute(INSERT, (user, merchant, 2, "3.25", "j"))
            sql = ("SELECT o.id, o.total, m.name, m.region_id FROM orders o JOIN merchants m "
                   "ON m.id = o.merchant_id WHERE o.user_id = %s ORDER BY o.id")
            cur.execute(sql, (home,))
            through_dal = cur.fetchall()
            with direct("a").cursor() as dcur:
                dcur.execute(sql.replace("FROM orders", f"FROM user_{home % 120:03d}.orders")
                             .replace("JOIN merchants", "JOIN trade.merchants"), (home,))
                truth = dcur.fetchall()
            assert len(truth) == 2 and through_dal == truth
            for bad, fragment in ((sql, "reaches shard user_"), (
                    sql.replace("o.user_id = %s", "o.user_id IN (%s, 1)"), "reaches 2 shards")):
                with pytest.raises(pymysql.MySQLError) as info:
                    cur.execute(bad, (away,))
                assert info.value.args[0] == 1235
                assert fragment in info.value.args[1] and "'merchants'" in info.value.args[1]
        finally:
            cur.execute("DELETE FROM merchants WHERE id = %s", (merchant,))


def test_transaction_lives_on_the_shards_backend(connect, direct, clean) -> None:
    user = next(u for u in USERS if u % 120 >= 60)  # a shard on instance b
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (user, 1, 0, "1.00", None))
        kept = cur.lastrowid
        conn.commit()
        cur.execute("BEGIN")
        cur.execute(INSERT, (user, 1, 0, "2.00", None))
        dropped = cur.lastrowid
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (user,))
        assert cur.fetchone() == (2,)
        conn.rollback()
    rows = shard_rows(direct, user % 120)
    assert (kept, user) in rows
    assert (dropped, user) not in rows


def test_explain_dal_shows_each_shard_and_its_values(connect) -> None:
    with connect().cursor() as cur:
        cur.execute("EXPLAIN DAL SELECT * FROM orders WHERE user_id IN (1, 2, 121)")
        assert [d[0] for d in cur.description] == ["plan", "targets", "sql"]
        rows = cur.fetchall()
    assert rows[0][0].startswith("Scatter SELECT on user shards")
    assert rows[0][1:] == ("2 databases: user_001 on a, user_002 on a", None)
    assert rows[1:] == (
        ("  -> user_001", "user_001 on a",
         "SELECT * FROM user_001.orders WHERE user_id IN (1, 121)"),
        ("  -> user_002", "user_002 on a", "SELECT * FROM user_002.orders WHERE user_id IN (2)"),
    )


def test_explain_dal_routes_by_the_sessions_connection_id(connect) -> None:
    """EXPLAIN DAL plans the statement as its run would: with the session's CONNECTION_ID()
    written in, `WHERE user_id = CONNECTION_ID()` reaches one shard, not all 120."""
    conn = connect()
    me = conn.thread_id()
    with conn.cursor() as cur:
        cur.execute("EXPLAIN DAL SELECT id FROM orders WHERE user_id = CONNECTION_ID()")
        rows = cur.fetchall()
    shard = f"user_{me % 120:03d}"
    assert rows[0][1].startswith("1 database"), rows
    assert rows[1][1:] == (f"{shard} on a" if me % 120 < 60 else f"{shard} on b",
                           f"SELECT id FROM {shard}.orders WHERE user_id = {me}")


def test_explain_dal_prints_the_tree_of_a_sorted_scatter(connect) -> None:
    with connect().cursor() as cur:
        cur.execute("EXPLAIN DAL SELECT id, created_at FROM orders ORDER BY created_at "
                    "LIMIT 5, 20")
        rows = cur.fetchall()
    assert [r[0] for r in rows[:3]] == [
        "Limit 20 offset 5",
        "  MergeSort k-way by #2 (every shard sends its rows sorted)",
        "    Scatter SELECT on user shards: every shard (no shard key)"]
    assert rows[2][1] == "120 databases: user_000..user_059 on a, user_060..user_119 on b"
    assert rows[3] == ("      -> user_000 (each of the 120 the same, with its own database)",
                       "user_000 on a", "SELECT id, created_at FROM user_000.orders "
                       "ORDER BY created_at LIMIT 25")
    assert len(rows) == 4


def copies_of_region(direct, region_id: int) -> list:
    found = []
    for instance in ("a", "b"):
        with direct(instance).cursor() as cur:
            cur.execute("SELECT TABLE_SCHEMA FROM information_schema.TABLES "
                        "WHERE TABLE_NAME = 'regions'")
            for (schema,) in cur.fetchall():
                cur.execute(f"SELECT name FROM `{schema}`.regions WHERE id = %s", (region_id,))
                found += [(schema, row[0]) for row in cur.fetchall()]
    return found


def test_broadcast_writes_reach_every_copy(connect, direct) -> None:
    region = 91_001
    with connect().cursor() as cur:
        cur.execute("DELETE FROM regions WHERE id = %s", (region,))
        cur.execute("INSERT INTO regions (id, name) VALUES (%s, 'Lujiazui')", (region,))
        assert cur.rowcount == 1
        assert cur.execute("UPDATE regions SET name = 'Pudong' WHERE id = %s", (region,)) == 1
        cur.execute("SELECT name FROM regions WHERE id = %s", (region,))
        assert cur.fetchall() == (("Pudong",),)
    copies = copies_of_region(direct, region)
    assert len(copies) == 241  # trade + 120 user shards + 120 merchant shards
    assert {name for _, name in copies} == {"Pudong"}
    with connect().cursor() as cur:
        cur.execute("INSERT INTO regions (id, name) VALUES (%s, 'again')", (region + 1,))
        with pytest.raises(pymysql.err.IntegrityError) as info:  # duplicate everywhere
            cur.execute("INSERT INTO regions (id, name) VALUES (%s, 'dup')", (region + 1,))
        assert info.value.args[0] == 1062
        cur.execute("DELETE FROM regions WHERE id IN (%s, %s)", (region, region + 1))
    assert copies_of_region(direct, region) == []


def test_replace_and_on_duplicate_key_route_like_insert(connect, direct, clean) -> None:
    user = USERS[6]
    with connect().cursor() as cur:
        cur.execute(INSERT, (user, 9, 0, "1.00", None))
        order_id = cur.lastrowid
        row = ("(id, user_id, merchant_id, status, total, created_at, updated_at) VALUES "
               f"({order_id}, {user}, 9, 7, 2, '2026-01-01', '2026-01-01')")
        assert cur.execute(f"INSERT INTO orders {row} ON DUPLICATE KEY UPDATE status = "
                           "status + 1") == 2
        assert cur.execute(f"REPLACE INTO orders {row}") == 2
    with direct(instance_of(user % 120)).cursor() as cur:
        cur.execute(f"SELECT status, total FROM user_{user % 120:03d}.orders WHERE id = %s",
                    (order_id,))
        assert cur.fetchall() == ((7, 2),)


def test_express_lane_answers_as_the_ordinary_path(connect, direct, clean) -> None:
    """Statements ending in their routing integer take the express lane once their head is
    known (router/express.py). It must read the owning shard, keep the logical database in
    column definitions, and leave transactions, pins and schema changes to the ordinary path."""
    with connect().cursor() as cur:
        for user in USERS:
            cur.execute(INSERT, (user, user + 1, 2, "3.00", f"u{user}"))
    reader = connect()
    with reader.cursor() as cur:
        for _ in range(3):  # the first run of each head teaches it; the rest take the lane
            for user in USERS:
                cur.execute(f"SELECT user_id, note FROM orders WHERE user_id = {user}")
                assert cur.fetchall() == ((user, f"u{user}"),)
        cur.execute(f"SELECT user_id FROM orders WHERE user_id = {USERS[0]}")
        assert cur.fetchall() == ((USERS[0],),)
    with direct(instance_of(USERS[3] % 120)).cursor() as cur:
        cur.execute(f"SELECT user_id, note FROM user_{USERS[3] % 120:03d}.orders "
                    f"WHERE user_id = {USERS[3]}")
        assert cur.fetchall() == ((USERS[3], f"u{USERS[3]}"),)
    # Inside a transaction the same, now known, shape must still refuse a second shard.
    first, second = USERS[0], next(u for u in USERS if u % 120 != USERS[0] % 120)
    with reader.cursor() as cur:  # teach the head in autocommit
        cur.execute(f"SELECT note FROM orders WHERE user_id = {second}")
        cur.execute(f"SELECT note FROM orders WHERE user_id = {first}")
    txn = connect(autocommit=False)
    with txn.cursor() as cur:
        cur.execute(f"SELECT note FROM orders WHERE user_id = {first}")
        with pytest.raises(pymysql.err.MySQLError) as refused:
            cur.execute(f"SELECT note FROM orders WHERE user_id = {second}")
        assert refused.value.args[0] == 1235
        txn.rollback()
    # A session without a default database plans the same text for itself: no table to find.
    other = connect(database=None)
    with other.cursor() as cur, pytest.raises(pymysql.err.MySQLError) as missing:
        cur.execute(f"SELECT note FROM orders WHERE user_id = {first}")
    assert missing.value.args[0] == 1046


def test_a_key_written_as_a_whole_decimal_hex_or_string_routes_to_its_shard(connect, direct,
                                                                           clean) -> None:
    """MariaDB compares `user_id = 5.0`, `= 0x5` and `= ' 5 '` as 5: so must the router."""
    user = USERS[6]
    shard = user % 120
    forms = [f"{user}.0", f"{user}e0", hex(user), bin(user), f"' {user} '", f"'{user}.00'"]
    with connect().cursor() as cur:
        cur.execute(INSERT.replace("VALUES (%s", f"VALUES ({forms[0]}"),
                    (77, 0, "1.00", "decimal key"))
        order_id = cur.lastrowid
        assert user_shard_of_gene(order_id) == shard
        for form in forms:
            cur.execute(f"SELECT id, user_id, note FROM orders WHERE user_id = {form}")
            assert cur.fetchall() == ((order_id, user, "decimal key"),), form
        cur.execute(f"UPDATE orders SET status = 3 WHERE user_id = {forms[2]}")
        assert cur.rowcount == 1
        with pytest.raises(pymysql.MySQLError) as refused:  # 1 to MariaDB, 1000 to int()
            cur.execute("SELECT id FROM orders WHERE user_id = '1_000'")
        assert refused.value.args[0] == 1105 and "not an integer" in refused.value.args[1]
    for other in range(120):  # the row is in its user shard and in no other
        assert shard_rows(direct, other) == ({(order_id, user)} if other == shard else set())
    with direct(instance_of(shard)).cursor() as cur:
        cur.execute(f"SELECT status FROM user_{shard:03d}.orders WHERE id = %s", (order_id,))
        assert cur.fetchall() == ((3,),)


def test_an_overlong_key_literal_is_refused_and_the_session_goes_on(connect, clean) -> None:
    """A known express head followed by 5,000 digits, alone and inside a multi-statement
    batch: a 1105 refusal each time, and the connection keeps working."""
    user = USERS[2]
    conn = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute(INSERT, (user, 1, 0, "1.00", "x"))
        for _ in range(2):  # the second run takes the express lane
            cur.execute(f"SELECT note FROM orders WHERE user_id = {user}")
            assert cur.fetchall() == (("x",),)
        for sql in (f"SELECT note FROM orders WHERE user_id = {'1' * 5000}",
                    f"SELECT 1; SELECT note FROM orders WHERE user_id = {'1' * 5000}"):
            with pytest.raises(pymysql.MySQLError) as refused:
                cur.execute(sql)
                while cur.nextset():
                    pass
            assert refused.value.args[0] == 1105 and "not an integer" in refused.value.args[1]
        cur.execute(f"SELECT note FROM orders WHERE user_id = {user}")
        assert cur.fetchall() == (("x",),)


def test_update_or_delete_with_limit_on_several_shards_is_refused(connect, direct,
                                                                  clean) -> None:
    """Each shard would apply the LIMIT on its own (4 rows changed for LIMIT 2): refused, and
    nothing changes; on one user's shard LIMIT works as on MariaDB."""
    first, second = USERS[0], next(u for u in USERS if u % 120 != USERS[0] % 120)
    with connect().cursor() as cur:
        for user in (first, second):
            for _ in range(3):
                cur.execute(INSERT, (user, 1, 0, "1.00", "before"))
        for sql in (f"UPDATE orders SET note = 'after' WHERE user_id IN ({first}, {second}) "
                    "ORDER BY id LIMIT 2",
                    f"DELETE FROM orders WHERE user_id = {first} OR user_id = {second} LIMIT 1"):
            with pytest.raises(pymysql.MySQLError) as refused:
                cur.execute(sql)
            assert refused.value.args[0] == 1235 and "LIMIT" in refused.value.args[1]
        assert cur.execute(f"UPDATE orders SET note = 'after' WHERE user_id = {first} "
                           "ORDER BY id LIMIT 2") == 2
    for user, changed in ((first, 2), (second, 0)):
        with direct(instance_of(user % 120)).cursor() as cur:
            cur.execute(f"SELECT note, COUNT(*) FROM user_{user % 120:03d}.orders "
                        "WHERE user_id = %s GROUP BY note ORDER BY note", (user,))
            expected = [("after", changed)] if changed else []
            assert list(cur.fetchall()) == [*expected, ("before", 3 - changed)]


def test_found_rows_and_row_count_are_the_sessions_own(connect, direct, clean) -> None:
    """On a pooled connection FOUND_ROWS() and ROW_COUNT() would answer for whichever session
    used it last: DAL answers them with the session's own values (the last statement's
    affected rows, the last result's row count), inside a transaction too, the pinned
    connection after SQL_CALC_FOUND_ROWS, and asking does not tie the session to a backend."""
    first, second = USERS[0], next(u for u in USERS if u % 120 // 60 != USERS[0] % 120 // 60)
    with connect().cursor() as cur:
        for user in (first, second):
            cur.execute(INSERT, (user, 1, 0, "1.00", "x"))
        cur.execute("SELECT ROW_COUNT()")
        assert cur.fetchall() == ((1,),)  # the INSERT's
        cur.execute(f"SELECT note FROM orders WHERE user_id IN ({first}, {second})")
        cur.fetchall()
        cur.execute("SELECT FOUND_ROWS(), ROW_COUNT()")
        assert cur.fetchall() == ((2, -1),)
        for user in (first, second):  # both backends still reachable
            cur.execute(f"SELECT note FROM orders WHERE user_id = {user}")
            assert cur.fetchall() == (("x",),)
    txn = connect(autocommit=False)
    with txn.cursor() as cur:
        cur.execute(f"UPDATE orders SET status = 4 WHERE user_id = {first}")
        cur.execute("SELECT ROW_COUNT()")
        assert cur.fetchall() == ((1,),)
        txn.commit()
    with direct("a").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM trade.merchants")
        (merchants,) = cur.fetchone()
    with connect().cursor() as cur:
        cur.execute("SELECT SQL_CALC_FOUND_ROWS id FROM merchants LIMIT 1")
        cur.execute("SELECT FOUND_ROWS()")
        assert cur.fetchall() == ((merchants,),)
