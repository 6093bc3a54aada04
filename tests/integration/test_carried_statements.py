"""Statements that carry another are held to what the carried one may do on its own.

`PREPARE s FROM '<statement>'`, `SET STATEMENT ... FOR <statement>` and an executable comment
holding literals in a prepared statement go to the backend as written. DAL used to check the
carried statement against the role's allowlist only, so a statement DAL answers, tracks or
rewrites itself ran on the backend as DAL's own account instead: USE of another logical
database (left in the pool for the next session), KILL of other sessions' queries, SHOW
PROCESSLIST with their SQL, SHOW GRANTS with the account's password hash, information_schema
past the logical view, another session's @@last_insert_id, and a write to one copy of a
broadcast table. Each is refused now (checked on the backends where it could act), and the
same forms still work for what DAL would send as written anyway.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from router.rows.types import ColumnType as T
from tests.dal_process import DalProcess
from tests.own_dal import dal_with_a_foreign_database
from tests.psclient import PsClient, ServerError

OTHER = "test_carried"  # a created logical database the limited user may not use

FOR = "SET STATEMENT max_statement_time = 0 FOR "


@pytest.fixture(scope="module")
def dal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DalProcess, dict]]:
    with dal_with_a_foreign_database(tmp_path_factory.mktemp("carried"), "carried", OTHER,
                                     "carried_secret") as started:
        yield started


def _connect(proc: DalProcess, user: str) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=proc.port, user=user, password=user,
                           database="trade", autocommit=True, connect_timeout=10,
                           read_timeout=30)


def _root(raw: dict, instance: str) -> pymysql.Connection:
    inst = raw["instances"][instance]
    return pymysql.connect(host=inst["host"], port=inst["port"], user="root", password="",
                           autocommit=True, connect_timeout=10)


def _refused(cur, sql: str) -> int:
    with pytest.raises(pymysql.MySQLError) as info:
        cur.execute(sql)
        cur.fetchall()
        if sql.startswith("PREPARE"):
            cur.execute("EXECUTE s")
    return info.value.args[0]


REFUSED = [
    f"PREPARE s FROM 'USE {OTHER}'",
    f"{FOR}USE {OTHER}",
    f"{FOR}SHOW FULL PROCESSLIST",
    "PREPARE s FROM 'SHOW PROCESSLIST'",
    f"{FOR}SHOW GRANTS",
    f"{FOR}SHOW DATABASES",
    "PREPARE s FROM 'SELECT CURRENT_USER()'",
    f"{FOR}SELECT @@last_insert_id",
    "PREPARE s FROM 'SELECT @@last_insert_id, LAST_INSERT_ID()'",
    f"{FOR}SELECT GROUP_CONCAT(DISTINCT table_schema) FROM information_schema.tables",
    "SET @x = (SELECT GROUP_CONCAT(DISTINCT table_schema) FROM information_schema.tables)",
    "SHOW VARIABLES WHERE (SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = 'dal_meta') > 0",
    f"{FOR}INSERT INTO regions (id, name) VALUES (987654, 'carried')",
    f"{FOR}SET autocommit = 0",
    "PREPARE s FROM 'BEGIN'",
    f"SET STATEMENT max_statement_time = 'x FOR y' FOR USE {OTHER}",
    # A CTE named like the table it shadowed: one copy of a broadcast table written.
    "UPDATE regions SET name = 'one-copy' WHERE id IN "
    "(WITH regions AS (SELECT 987654 AS id) SELECT id FROM regions)",
    "SELECT LAST_INSERT_ID(/**/) + 0",
    # A CTE's body sees the table of its name, not a later CTE (a tenth review).
    "WITH x AS (SELECT * FROM orders), orders AS (SELECT 1 AS id) SELECT * FROM x",
    # `WHERE id IS NULL` would then read the pooled connection's last insert.
    "SET sql_auto_is_null = 1",
    "SET sql_auto_is_null = 0+1",  # an eleventh review: the whole value is read
    "SHOW /* WHERE ' */ COLUMNS FROM orders WHERE Field = 'id' AND (@carried := 7) -- '",
    "SHOW LOCAL STATUS WHERE (SELECT 1) = 1",
    "SHOW FIELDS FROM merchants WHERE (SELECT 1) = 1",
    "SHOW LOCAL STATUS WHERE Variable_name = 'Uptime' AND EXTRACTVALUE(1, CURRENT_USER())",
    # A sequence's last value belongs to the connection (a twelfth review).
    "SELECT LASTVAL(carried_seq)",
    "SELECT PREVIOUS VALUE FOR carried_seq",
    "SHOW VARIABLES WHERE Value = NEXT VALUE FOR carried_seq",
]


def test_carried_statements_dal_would_not_send_as_written_are_refused(
        dal: tuple[DalProcess, dict]) -> None:
    proc, raw = dal
    for user in ("limited", "app"):
        with contextlib.closing(_connect(proc, user)) as conn, conn.cursor() as cur:
            for sql in REFUSED:
                assert _refused(cur, sql) in (1235, 1044, 1227), (user, sql)
            cur.execute("SELECT DATABASE(), @@autocommit")
            assert cur.fetchone() == ("trade", 1), user
            with pytest.raises(pymysql.MySQLError):  # still in trade: no such table here
                cur.execute("SELECT v FROM carried_secret")
    for instance in ("a", "b"):  # the broadcast write reached no copy
        with contextlib.closing(_root(raw, instance)) as conn, conn.cursor() as cur:
            cur.execute("SELECT table_schema FROM information_schema.tables WHERE "
                        "table_name = 'regions' AND (table_schema = 'trade' OR "
                        "table_schema LIKE 'user\\_%')")  # every copy, and no other database
            copies = cur.fetchall()
            assert len(copies) > 1, instance
            for (db,) in copies:
                cur.execute(f"SELECT COUNT(*) FROM `{db}`.regions WHERE id = 987654")
                assert cur.fetchone() == (0,), (instance, db)


def test_executable_comments_in_prepared_statements_follow_the_same_rule(
        dal: tuple[DalProcess, dict]) -> None:
    proc, _ = dal
    ps = PsClient(proc.port)
    try:
        assert ps.login("limited", "limited")[:1] == b"\x00"
        for sql in ("/*!KILL QUERY 1 */", "/*!SHOW DATABASES LIKE 'dal%' */",
                    f"/*!SELECT v FROM {OTHER}.carried_secret WHERE id = 1 */"):
            with pytest.raises(ServerError) as info:
                ps.prepare(sql)
            assert info.value.code in (1235, 1044), sql
        got = ps.run("/*!SELECT COUNT(*) FROM merchants WHERE id > 0 */")
        assert len(got.rows) == 1  # a carried statement DAL sends as written: still works
    finally:
        ps.close()


def test_kill_in_a_carried_statement_does_not_reach_another_session(
        dal: tuple[DalProcess, dict]) -> None:
    proc, raw = dal
    outcome: dict = {}

    def sleep_as_admin() -> None:
        with contextlib.closing(_connect(proc, "admin")) as conn, conn.cursor() as cur:
            cur.execute("SELECT SLEEP(3) AS carried_victim")
            outcome["slept"] = cur.fetchone()[0]

    victim = threading.Thread(target=sleep_as_admin)
    victim.start()
    thread_id = None
    deadline = time.monotonic() + 5
    default = raw["databases"]["trade"]["default_instance"]
    while thread_id is None and time.monotonic() < deadline:
        with contextlib.closing(_root(raw, default)) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist "
                        "WHERE info LIKE 'SELECT SLEEP(3) AS carried_victim%'")
            row = cur.fetchone()
            thread_id = row[0] if row else None
        time.sleep(0.05)
    assert thread_id is not None
    with contextlib.closing(_connect(proc, "limited")) as conn, conn.cursor() as cur:
        for sql in (f"PREPARE s FROM 'KILL QUERY {thread_id}'", f"{FOR}KILL QUERY {thread_id}",
                    "PREPARE s FROM 'KILL USER nobody_carried'"):
            assert _refused(cur, sql) in (1235, 1227), sql
    victim.join(10)
    assert outcome.get("slept") == 0  # ran its three seconds: not killed


def test_carried_statements_dal_sends_as_written_still_work(
        dal: tuple[DalProcess, dict]) -> None:
    proc, _ = dal
    with contextlib.closing(_connect(proc, "limited")) as conn, conn.cursor() as cur:
        cur.execute("SET sql_auto_is_null = 0")
        cur.execute("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                    "WHERE VARIABLE_NAME = 'Uptime'")  # no logical view: sent as written
        assert len(cur.fetchall()) == 1
        cur.execute(f"{FOR}SELECT COUNT(*) FROM merchants WHERE id > 0")
        assert len(cur.fetchall()) == 1
        cur.execute("PREPARE s FROM 'SELECT COUNT(*) FROM merchants WHERE id > ?'")
        cur.execute("SET @n = 0")
        cur.execute("EXECUTE s USING @n")
        assert len(cur.fetchall()) == 1
        cur.execute("DEALLOCATE PREPARE s")


# -- a shared connection's state (an eighth review) ----------------------------------------------


def test_show_status_tails_compare_columns_only(dal: tuple[DalProcess, dict]) -> None:
    """SHOW TABLE|PROCEDURE STATUS run their LIKE/WHERE on a pooled connection: a function,
    subquery, variable or assignment there ran in whatever database and state the last user
    left (it read another database's table through an XPATH error, and left a GET_LOCK)."""
    proc, raw = dal
    with contextlib.closing(_connect(proc, "limited")) as conn, conn.cursor() as cur:
        for show in ("SHOW PROCEDURE STATUS", "SHOW TABLE STATUS", "SHOW FUNCTION STATUS",
                     "SHOW COLUMNS FROM orders", "SHOW INDEX FROM order_items"):
            for tail in ("WHERE Name = EXTRACTVALUE(1, CONCAT('~', DATABASE()))",
                         "WHERE Name = (SELECT v FROM carried_secret LIMIT 1)",
                         "WHERE (@carried_leak := 'x') IS NULL",
                         "WHERE GET_LOCK('carried_lock', 0) IS NULL"):
                assert _refused(cur, f"{show} {tail}") == 1235, (show, tail)
            column = "Name" if "STATUS" in show else ("Field" if "COLUMNS" in show else "Key_name")
            cur.execute(f"{show} WHERE {column} IN ('id', 'orders') AND NOT ({column} LIKE 'x%')")
            cur.fetchall()
        cur.execute("SHOW TABLE STATUS LIKE 'merchants'")
        assert [row[0] for row in cur.fetchall()] == ["merchants"]
    default = raw["databases"]["trade"]["default_instance"]
    with contextlib.closing(_root(raw, default)) as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK('carried_lock')")
        assert cur.fetchone() == (None,)


def test_state_of_a_shared_connection_is_not_read_or_left(dal: tuple[DalProcess, dict]) -> None:
    """GET DIAGNOSTICS read the last user's warnings on a pooled connection; a SET whose value
    DAL evaluates on one read its @@last_insert_id or left a GET_LOCK held there; a pinned SET
    changed the connection's character set unseen."""
    proc, raw = dal
    with contextlib.closing(_connect(proc, "app")) as conn, conn.cursor() as cur:
        cur.execute("SELECT CAST('carried-secret-XYZ' AS SIGNED)")
    with contextlib.closing(_connect(proc, "limited")) as conn, conn.cursor() as cur:
        for sql in ("GET DIAGNOSTICS CONDITION 1 @m = MESSAGE_TEXT",
                    "SET max_statement_time = @@last_insert_id",
                    "SET sql_select_limit = GET_LOCK('carried_set_lock', 0)",
                    "SET @a = 1, character_set_connection = 'latin1'",
                    "SET @a = 1, collation_connection = 'latin1_swedish_ci'",
                    "PREPARE s FROM 'SET @a = 1, collation_connection = ''latin1_swedish_ci'''"):
            assert _refused(cur, sql) in (1235, 1115), sql
        # On its own connection (pinned by a user variable) a session reads its own warnings.
        cur.execute("SET @pinned := 1")
        cur.execute("SELECT CAST('mine-ABC' AS SIGNED)")
        cur.execute("GET DIAGNOSTICS CONDITION 1 @m = MESSAGE_TEXT")
        cur.execute("SELECT @m, @@character_set_connection")
        message, charset = cur.fetchone()
        assert "mine-ABC" in message and charset == "utf8mb4"
    default = raw["databases"]["trade"]["default_instance"]
    with contextlib.closing(_root(raw, default)) as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK('carried_set_lock')")
        assert cur.fetchone() == (None,)


def test_a_refused_prepare_is_not_cached_for_every_prepare(
        dal: tuple[DalProcess, dict]) -> None:
    """The refusal of one PREPARE depends on its body: cached under the shape `PREPARE s FROM
    ?` it refused every later PREPARE of any session."""
    proc, _ = dal
    for user, refused in (("limited", f"PREPARE s FROM 'SHOW CREATE DATABASE {OTHER}'"),
                          ("app", "PREPARE s FROM 'SHOW PROCESSLIST'")):
        with contextlib.closing(_connect(proc, user)) as conn, conn.cursor() as cur:
            assert _refused(cur, refused) in (1044, 1235)
        with contextlib.closing(_connect(proc, user)) as conn, conn.cursor() as cur:
            cur.execute("PREPARE s FROM 'SELECT COUNT(*) FROM merchants'")
            cur.execute("EXECUTE s")
            assert len(cur.fetchall()) == 1, user


def test_unqualified_names_never_resolve_in_another_users_database(tmp_path) -> None:
    """A statement DAL sends without selecting a database (a shard statement, a SET value it
    evaluates) ran in whatever database the pooled connection's last user left: a stored
    function or sequence of another logical database answered a user limited to trade (a
    ninth review). With one pooled connection per instance, admin leaves it in the other
    database; the limited user's statements must not see it."""
    other = "test_carried_home"
    with dal_with_a_foreign_database(tmp_path, "carried-home", other, "home_secret",
                                      pool={"max_size": 1, "pipeline_depth": 0}) as (proc, raw):
        default = raw["databases"]["trade"]["default_instance"]
        with contextlib.closing(_root(raw, default)) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE FUNCTION {other}.home_f() RETURNS VARCHAR(20) DETERMINISTIC "
                        f"READS SQL DATA RETURN (SELECT v FROM {other}.home_secret LIMIT 1)")
        user = next(u for u in range(1, 400) if u % 120 < 60) if default == "a" else 60
        with contextlib.closing(_connect(proc, "admin")) as admin, admin.cursor() as cur:
            cur.execute(f"USE {other}")
            cur.execute("SELECT home_f()")  # the instance's one connection is now there
            assert cur.fetchone() == ("only-admins",)
        with contextlib.closing(_connect(proc, "limited")) as conn, conn.cursor() as cur:
            for sql in (f"SELECT o.id, home_f() FROM orders o WHERE o.user_id = {user}",
                        "SELECT id, home_f() FROM regions",
                        "SET @@session.lc_time_names = CONCAT('x', DATABASE())"):
                try:
                    cur.execute(sql)
                    seen = str(cur.fetchall())
                except pymysql.MySQLError as exc:
                    seen = str(exc.args)
                assert "only-admins" not in seen and other not in seen, (sql, seen)


def test_a_prepared_statement_does_not_read_a_pooled_connections_last_insert_id(
        dal: tuple[DalProcess, dict]) -> None:
    """Prepared statements are not rewritten with the session's values: LAST_INSERT_ID() in
    one (beside other terms) read the pooled connection's, another session's insert id."""
    proc, _ = dal
    with contextlib.closing(_connect(proc, "admin")) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (name, created_at) VALUES ('carried-id', NOW())")
        cur.execute("DELETE FROM merchants WHERE name = 'carried-id'")
    ps = PsClient(proc.port)
    try:
        assert ps.login("limited", "limited")[:1] == b"\x00"
        for sql in ("SELECT LAST_INSERT_ID() + ?", "SELECT id FROM orders WHERE user_id = ? "
                    "AND id = LAST_INSERT_ID()"):
            with pytest.raises(ServerError) as info:
                ps.run(sql, [((T.LONGLONG, False), 1)])
            assert info.value.code == 1235, sql
    finally:
        ps.close()


def test_warnings_left_by_idle_sessions_do_not_hold_every_connection(tmp_path) -> None:
    """A statement that leaves a warning keeps its connection for SHOW WARNINGS; sessions
    that did so and went idle held the whole pool, and nobody else could log in. The last
    spare connection is never kept."""
    from tests.own_dal import own_dal

    with own_dal(tmp_path, pool={"max_size": 2, "acquire_timeout": 2.0,
                                 "pipeline_depth": 0}) as dal:
        idle = [dal.connect() for _ in range(3)]
        try:
            for conn in idle:
                with conn.cursor() as cur:
                    cur.execute("SELECT 'abc' + 0")  # a warning, whatever the tables hold
                    cur.fetchall()
            late = dal.connect()  # its login's SET NAMES needs a backend connection
            with late.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM merchants")
                assert len(cur.fetchall()) == 1
            late.close()
            with idle[0].cursor() as cur:  # the first one still reads its own warning
                cur.execute("SHOW WARNINGS")
                assert "abc" in str(cur.fetchall())
        finally:
            for conn in idle:
                conn.close()
