"""Executable comments on sharded tables route as MariaDB reads them.

MariaDB runs the body of ``/*!NNNNN ... */`` when NNNNN is at or below its version (and a
MySQL 5.7+ version only in the ``/*M!`` form), and skips it otherwise. DAL expands them the
same way before routing, so a key predicate inside one reaches the right shards. Each case is
checked against MariaDB itself: the same statement on the shard that holds the rows.
"""

from __future__ import annotations

import pymysql
import pytest

from tests.integration.test_sharded_routing import INSERT, instance_of

USERS = [5, 5 + 120 * 71, 5 + 120 * 72 + 61]  # shard 5 (twice) and shard 66, on both instances


@pytest.fixture
def orders(connect):
    def wipe() -> None:
        with connect().cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id IN %s", (USERS,))
    wipe()
    with connect().cursor() as cur:
        for user in USERS:
            for status in (1, 2, 2):
                cur.execute(INSERT, (user, 9, status, "3.50", f"u{user} s{status}"))
    yield
    wipe()


def on_shard(direct, user: int, sql: str) -> tuple:
    """``sql`` (which names ``orders``) run by MariaDB on the user's shard directly."""
    shard = user % 120
    with direct(instance_of(shard), f"user_{shard:03d}").cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def through_dal(connect, sql: str) -> tuple:
    with connect().cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.mark.parametrize("sql", [
    "SELECT /*!40001 SQL_NO_CACHE */ * FROM orders WHERE user_id = {u} ORDER BY id",
    "SELECT id, status FROM orders WHERE user_id = {u} /*!99999 AND status = 1 */ ORDER BY id",
    "SELECT id, status FROM orders WHERE user_id = {u} /*M!100000 AND status = 2 */ ORDER BY id",
    "SELECT id FROM orders WHERE user_id = {u} /*!50700 AND status = 1 */ ORDER BY id",
    "SELECT id FROM orders WHERE user_id = {u} /*M!50700 AND status = 1 */ ORDER BY id",
    "SELECT /*! STRAIGHT_JOIN */ COUNT(*) FROM orders WHERE user_id = {u} /*!40001 AND 1 */",
    "SELECT id FROM orders WHERE /*!40001 user_id = {u} AND */ status = 2 ORDER BY id",
])
def test_read_as_mariadb_reads_it(sql, connect, direct, orders) -> None:
    user = USERS[0]
    expected = on_shard(direct, user, sql.format(u=user))
    assert expected, "the case must return rows to prove something"
    assert through_dal(connect, sql.format(u=user)) == expected


def test_a_key_inside_a_run_comment_reaches_its_shard(connect, direct, orders) -> None:
    """MariaDB reads ``WHERE /*!50000 user_id = a OR */ user_id = b`` as a predicate on both
    users, whose rows live on two shards of two instances: DAL reads both."""
    a, b = USERS[0], USERS[2]
    got = through_dal(connect, f"SELECT note FROM orders WHERE /*!50000 user_id = {a} OR */ "
                               f"user_id = {b} ORDER BY note")
    expected = sorted(on_shard(direct, a, f"SELECT note FROM orders WHERE user_id = {a}")
                      + on_shard(direct, b, f"SELECT note FROM orders WHERE user_id = {b}"))
    assert list(got) == expected and len(expected) == 6
    skipped = through_dal(connect, f"SELECT note FROM orders WHERE /*!99999 user_id = {a} OR */ "
                                   f"user_id = {b} ORDER BY note")
    assert list(skipped) == sorted(on_shard(direct, b, f"SELECT note FROM orders WHERE "
                                                       f"user_id = {b}"))


def test_a_write_with_a_run_comment_changes_the_rows_mariadb_would(connect, direct,
                                                                    orders) -> None:
    a, b = USERS[0], USERS[2]
    with connect().cursor() as cur:
        cur.execute(f"UPDATE orders SET note = 'hit' WHERE user_id = {b} "
                    f"/*M!100500 AND status = 2 */ /*!99999 AND status = 1 */")
        assert cur.rowcount == 2
        cur.execute(f"DELETE FROM orders WHERE /*M!100500 user_id = {a} AND */ user_id = {a} "
                    "AND status = 1")
        assert cur.rowcount == 1
    assert sorted(on_shard(direct, b, f"SELECT status, note FROM orders WHERE user_id = {b}")) \
        == [(1, f"u{b} s1"), (2, "hit"), (2, "hit")]
    assert on_shard(direct, a, f"SELECT COUNT(*) FROM orders WHERE user_id = {a}") == ((2,),)


def test_a_skipped_comment_still_counts_for_the_access_check(connect, orders) -> None:
    """MariaDB would skip ``/*!99999 ... */``, but DAL's access check reads every executable
    comment whatever its version: a version DAL might read differently must never let a
    forbidden word through."""
    with connect().cursor() as cur, pytest.raises(pymysql.MySQLError) as refused:
        cur.execute(f"SELECT id FROM orders WHERE user_id = {USERS[0]} "
                    "/*!99999 AND LOAD_FILE('/etc/passwd') */")
    assert refused.value.args[0] == 1227


def test_executable_comments_in_a_batch(connect, direct, orders) -> None:
    """Statements of a multi-statement batch are planned from their expansion too."""
    user = USERS[0]
    conn = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute(f"SELECT /*!40001 SQL_NO_CACHE */ COUNT(*) FROM orders WHERE user_id = "
                    f"{user}; SELECT /*!99999 1 + */ 41 + 1")
        assert cur.fetchall() == ((3,),)
        assert cur.nextset()
        assert cur.fetchall() == ((42,),)


@pytest.mark.parametrize("batch", [False, True], ids=["alone", "in-a-batch"])
def test_the_statement_the_backend_would_run_is_checked_too(connect, batch) -> None:
    """Read with every body included, ``/*!99999 SELECT */ SET GLOBAL ...`` starts with
    SELECT; the backend skips that comment and would run SET GLOBAL. DAL checks the expansion
    as well, on the text path and in a batch (planned apart)."""
    sql = "/*!99999 SELECT */ SET GLOBAL max_connections = max_connections"
    conn = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS) if batch else connect()
    with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as refused:
        cur.execute(f"{sql}; SELECT 1" if batch else sql)
        while cur.nextset():
            pass
    assert refused.value.args[0] == 1227
