"""Protocol corners drivers rely on (issue 22), each checked against MariaDB directly: the same
client action through DAL and straight to a backend gives the same client-visible result.

Compound statements in a multi-statement packet (mysqlclient's default), MariaDB Connector/C's
COM_CHANGE_USER, MariaDB's 1064 for parse errors (bare SELECT, sharded tables), wait_timeout
enforced on the DAL session, and the labels of dal_statements_total."""

from __future__ import annotations

import time

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.metrics_scrape import scrape

HOST = "127.0.0.1"

# A procedure with labels, nested blocks, IF/ELSEIF/ELSE, CASE, LOOP, WHILE and REPEAT, and
# semicolons in strings: one statement for MariaDB, and so for DAL's splitter.
PROCEDURE = """CREATE PROCEDURE dal_corners_p(IN n INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE evens INT DEFAULT 0;
  DECLARE odds INT DEFAULT 0;
  DECLARE w INT DEFAULT 0;
  outer_loop: LOOP
    SET i = i + 1;
    IF i > n THEN LEAVE outer_loop; END IF;
    inner_block: BEGIN
      CASE WHEN i % 2 = 0 THEN SET evens = evens + i;
      ELSE BEGIN SET odds = odds + IF(i > 2, i, 0); END; END CASE;
    END inner_block;
  END LOOP outer_loop;
  WHILE w < 3 DO SET w = w + 1; END WHILE;
  REPEAT SET w = w + 10; UNTIL w > 20 END REPEAT;
  IF n < 0 THEN SELECT 'negative;' AS s, 0 AS evens, 0 AS odds, w;
  ELSEIF n = 0 THEN SELECT 'zero;' AS s, evens, odds, w;
  ELSE SELECT 'positive;' AS s, evens, odds, w; END IF;
END"""


def _multi(port: int, user: str, password: str, database: str = "trade") -> pymysql.Connection:
    return pymysql.connect(host=HOST, port=port, user=user, password=password, database=database,
                           autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)


def _results(cur) -> list[tuple]:
    out = [tuple(cur.fetchall())]
    while cur.nextset():
        out.append(tuple(cur.fetchall()))
    return out


def _create_and_call(conn, calls: str) -> list[list[tuple]]:
    """In one packet each: drop, create and select; then the calls."""
    with conn.cursor() as cur:
        cur.execute(f"DROP PROCEDURE IF EXISTS dal_corners_p; {PROCEDURE}; SELECT 'created'")
        created = _results(cur)
        cur.execute(calls)
        return [created, _results(cur)]


@pytest.fixture
def drop_procedure(direct):
    yield
    with direct("a", "trade").cursor() as cur:
        cur.execute("DROP PROCEDURE IF EXISTS dal_corners_p")


def test_stored_procedure_in_a_multi_statement_packet(dal, backends, connect, direct,
                                                       drop_procedure) -> None:
    calls = "CALL dal_corners_p(5); CALL dal_corners_p(0)"
    a = backends["a"]
    expected = _create_and_call(_multi(a["port"], a["user"], a["password"]), calls)
    through_dal = _create_and_call(connect.track(_multi(dal.port, "admin", "admin")), calls)
    assert through_dal == expected
    assert expected[0] == [(), (), (("created",),)]
    assert expected[1][0] == (("positive;", 6, 8, 23),)
    # The application calls it (a statement of its own: CALL is allowed to app users) ...
    with connect.track(_multi(dal.port, "app", "app")).cursor() as cur:
        cur.execute("CALL dal_corners_p(4); SELECT 2")
        assert _results(cur)[0] == (("positive;", 6, 3, 23),)
        # ... but may not create routines.
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("CREATE PROCEDURE dal_corners_q() BEGIN SELECT 1; END")
        assert refused.value.args[0] == 1227


def test_mysqlclient_default_multi_statements_keep_procedure_bodies(dal, connect,
                                                                     drop_procedure) -> None:
    MySQLdb = pytest.importorskip("MySQLdb", reason="mysqlclient not installed (make clients)")
    conn = MySQLdb.connect(host=HOST, port=dal.port, user="admin", password="admin",
                           database="trade")  # CLIENT.MULTI_STATEMENTS is its default
    connect.track(conn)
    cur = conn.cursor()
    cur.execute(f"DROP PROCEDURE IF EXISTS dal_corners_p; {PROCEDURE}")
    while cur.nextset():
        pass
    cur.execute("CALL dal_corners_p(-1)")
    assert cur.fetchall() == (("negative;", 0, 0, 23),)
    while cur.nextset():
        pass


def _change_user(port: int, user: str, password: str, to_user: str, to_password: str) -> dict:
    mariadb = pytest.importorskip("mariadb", reason="MariaDB Connector/Python not installed")
    conn = mariadb.connect(host=HOST, port=port, user=user, password=password, database="trade")
    outcome: dict = {}
    try:
        try:
            conn.change_user(to_user, to_password, "trade")
            conn.change_user(to_user, to_password, "trade")  # the scramble in force, again
            outcome["changed"] = True
        except mariadb.Error as exc:
            outcome["changed"] = False
            outcome["errno"] = exc.errno
            outcome["denied"] = f"Access denied for user '{to_user}'" in str(exc)
        cur = conn.cursor()
        cur.execute("SELECT DATABASE(), 1")
        outcome["usable"] = cur.fetchall()
    finally:
        conn.close()
    return outcome


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
def test_mariadb_connector_change_user_as_mariadb(dal, backends, connect, right) -> None:
    a = backends["a"]
    direct = _change_user(a["port"], a["user"], a["password"], a["user"],
                          a["password"] if right else "wrong")
    through_dal = _change_user(dal.port, "app", "app", "admin", "admin" if right else "wrong")
    assert through_dal == direct
    assert direct["changed"] is right
    assert direct["usable"] == [("trade", 1)]


def _error(port: int, user: str, password: str, database: str, sql: str) -> tuple[int, str]:
    conn = pymysql.connect(host=HOST, port=port, user=user, password=password,
                           database=database, autocommit=True)
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as caught:
            cur.execute(sql)
        with conn.cursor() as cur:  # the connection survives its syntax error
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
        return caught.value.args[0], caught.value.args[1]
    finally:
        conn.close()


@pytest.mark.parametrize("sql", [
    "SELECT",
    "SELECT FROM merchants",
    "SELECT * FROM merchants WHERE",
])
def test_parse_errors_on_unsharded_tables_are_mariadbs(dal, backends, connect, sql) -> None:
    a = backends["a"]
    expected = _error(a["port"], a["user"], a["password"], "trade", sql)
    assert _error(dal.port, "app", "app", "trade", sql) == expected
    assert expected[0] == 1064


@pytest.mark.parametrize("sql", [
    "SELECT * FROM orders WHERE",
    "SELECT FROM orders",
    "SELECT * FROM orders WHERE user_id = 1 AND AND id = 3",
    "SELECT * FROM orders WHERE (user_id = 1",
    "SELECT * FROM orders WHERE user_id = 1)",
    "SELECT id FROM orders\nWHERE user_id = 1 ORDER BY id id id",
    "SELECT * FROM orders WHERE user_id = 'unterminated",
    "UPDATE orders SET status = WHERE user_id = 1",
    "REPLACE INTO orders (id, user_id) VALUES (1, 2) (",
])
def test_syntax_errors_on_sharded_tables_are_mariadbs_1064(dal, backends, connect, sql) -> None:
    a = backends["a"]
    code, message = _error(dal.port, "app", "app", "trade", sql)
    expected = _error(a["port"], a["user"], a["password"], "user_000", sql)
    assert (code, message) == expected
    assert code == 1064
    for internal in ("sqlglot", "Required keyword", "<class", "Col:"):
        assert internal not in message


@pytest.mark.parametrize("variable", ["wait_timeout", "SESSION wait_timeout",
                                      "@@session.wait_timeout"])
def test_wait_timeout_closes_an_idle_session_as_mariadb(dal, backends, connect,
                                                        variable) -> None:
    a = backends["a"]
    outcomes = []
    for conn in (connect(), pymysql.connect(host=a["host"], port=a["port"], user=a["user"],
                                            password=a["password"], autocommit=True)):
        with conn.cursor() as cur:
            cur.execute(f"SET {variable} = 1")
        time.sleep(2.6)
        with pytest.raises(pymysql.OperationalError) as gone:
            conn.cursor().execute("SELECT 1")
        outcomes.append(gone.value.args[0])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] in (2006, 2013)  # "server has gone away" / "lost connection"


def test_wait_timeout_spares_a_busy_session_and_is_not_replayed(dal, connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET wait_timeout = 1")
        cur.execute("SELECT SLEEP(2.5)")  # busy for longer than its wait_timeout
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
        cur.execute("SET wait_timeout = DEFAULT")  # stops the enforcement
    # The pooled backend connections kept their own timeout: after more than a second of
    # idleness, statements (of this client and another) still find them alive.
    other = connect()
    time.sleep(1.6)
    for client in (other, conn):
        with client.cursor() as cur:
            for _ in range(20):
                cur.execute("SELECT @@session.wait_timeout")
                assert cur.fetchall()[0][0] > 1


def test_every_statement_series_has_its_result_label(dal_config, connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES ('dal-corners-metrics')")
        cur.execute("DELETE FROM merchants WHERE name = 'dal-corners-metrics'")
        cur.execute("SELECT * FROM orders WHERE user_id = 7")
    samples = scrape(dal_config[1]["server"]["metrics"]["port"])
    series = [dict(labels) for name, labels in samples if name == "dal_statements_total"]
    assert series
    for labels in series:
        assert set(labels) == {"plan", "kind", "result"}, labels
        assert labels["result"] in ("ok", "error"), labels
    assert {"plan": "route", "kind": "insert", "result": "ok"} in series
    latency = [dict(labels) for name, labels in samples
               if name == "dal_statement_latency_seconds_count"]
    for labels in latency:
        assert set(labels) == {"plan", "kind"}, labels


def test_json_column_type_through_the_mariadb_connector(dal, backends, connect, direct) -> None:
    mariadb = pytest.importorskip("mariadb", reason="MariaDB Connector/Python not installed")
    with direct("a", "trade").cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS dal_corners_json (id INT PRIMARY KEY, doc JSON)")
    a = backends["a"]
    types = []
    try:
        for port, user, password in ((a["port"], a["user"], a["password"]),
                                     (dal.port, "app", "app")):
            conn = mariadb.connect(host=HOST, port=port, user=user, password=password,
                                   database="trade")
            try:
                cur = conn.cursor()
                cur.execute("SELECT id, doc FROM dal_corners_json")
                types.append([d[1] for d in cur.description])
            finally:
                conn.close()
    finally:
        with direct("a", "trade").cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS dal_corners_json")
    assert types[0][1] == 245  # MYSQL_TYPE_JSON, from the extended type info
    assert types[1] == types[0]


# Results DAL builds itself (a merge, its own answers, a prepared scatter) and results it
# relays, through a client that negotiated extended type info and one that did not.
EXTENDED_STATEMENTS = [
    ("SELECT id, status, note FROM orders ORDER BY id DESC LIMIT 3", ()),  # a merge
    ("SELECT status, COUNT(*) FROM orders GROUP BY status", ()),
    ("SHOW DATABASES", ()),
    ("SELECT LAST_INSERT_ID(), CONNECTION_ID()", ()),
    ("SHOW WARNINGS", ()),
    ("SHOW FULL TABLES", ()),
    ("SHOW TABLE STATUS LIKE 'orders'", ()),
    ("SELECT id, doc FROM dal_corners_json ORDER BY id", ()),  # relayed
    ("SELECT id, status FROM orders WHERE user_id = ?", (17,)),  # one shard
    ("SELECT COUNT(*) FROM orders WHERE id > ?", (0,)),  # a prepared scatter
]


def test_extended_type_info_only_to_clients_that_asked(dal, connect, direct) -> None:
    """MariaDB Connector/Python asks for MARIADB_CLIENT_EXTENDED_METADATA; pymysql does not.
    Each reads every kind of result through the same DAL (same pools) as MariaDB would send
    it: a definition with or without the extended block, never the other framing."""
    mariadb = pytest.importorskip("mariadb", reason="MariaDB Connector/Python not installed")
    with direct("a", "trade").cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS dal_corners_json (id INT PRIMARY KEY, doc JSON)")
        cur.execute("REPLACE INTO dal_corners_json VALUES (1, '{\"a\": 1}')")
    plain = connect()
    extended = mariadb.connect(host=HOST, port=dal.port, user="admin", password="admin",
                               database="trade", autocommit=True)
    try:
        for _ in range(2):  # the second round on pooled connections of both flavours
            for sql, params in EXTENDED_STATEMENTS:
                with plain.cursor() as cur:
                    cur.execute(sql.replace("?", "%s"), params or None)
                    expected = [tuple(row) for row in cur.fetchall()]
                    names = [d[0] for d in cur.description]
                for prepared in (False, True):
                    if params and not prepared:
                        continue
                    cur = extended.cursor(prepared=prepared)
                    cur.execute(sql, params)
                    got = [tuple(row) for row in cur.fetchall()]
                    assert [d[0] for d in cur.description] == names, sql
                    if "doc" in names:
                        assert cur.description[1][1] == 245, sql  # JSON, from the block
                        got = [(i, doc if isinstance(doc, str) else doc.decode())
                               for i, doc in got]
                        expected = [(i, doc if isinstance(doc, str) else doc.decode())
                                    for i, doc in expected]
                    if not sql.startswith(("SHOW TABLE STATUS", "SELECT LAST_INSERT_ID")):
                        assert [tuple(str(v) for v in r) for r in got] == [
                            tuple(str(v) for v in r) for r in expected], sql
                    cur.close()
            with extended.cursor() as cur:
                cur.execute("SHOW DAL POOLS")  # DAL's admin answers too
                assert cur.fetchall()
    finally:
        extended.close()
        with direct("a", "trade").cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS dal_corners_json")


def test_prepared_show_warnings_never_reads_another_sessions(dal) -> None:
    """A prepared SHOW WARNINGS (or error count) of a session that holds no backend
    connection answers empty, as the text one does: the pooled connection it would run on
    holds the diagnostics of whoever used it last, here another session's failed prepare."""
    mariadb = pytest.importorskip("mariadb", reason="MariaDB Connector/Python not installed")
    victim, other = (mariadb.connect(host=HOST, port=dal.port, user="app", password="app",
                                     database="trade", autocommit=True) for _ in range(2))
    try:
        clean = victim.cursor(binary=True)
        clean.execute("SELECT id FROM merchants WHERE id = 1")
        clean.fetchall()
        for sql in ("SHOW WARNINGS", "SHOW ERRORS", "SHOW COUNT(*) ERRORS"):
            with pytest.raises(mariadb.Error, match="other_sessions_column"):
                other.cursor(binary=True).execute(
                    "SELECT other_sessions_column FROM merchants WHERE id = 1")
            cur = victim.cursor(binary=True)
            cur.execute(sql)
            rows = [tuple(row) for row in cur.fetchall()]
            assert rows == ([(0,)] if "COUNT" in sql else []), (sql, rows)
            cur.close()
        own = victim.cursor(binary=True)  # its own warning it reads, on the connection kept
        own.execute("SELECT 1 / 0")
        own.fetchall()
        own.execute("SHOW WARNINGS")
        assert [row[1] for row in own.fetchall()] == [1365]
    finally:
        victim.close()
        other.close()


def test_prepared_connection_id_is_the_sessions(dal) -> None:
    """CONNECTION_ID() inside a prepared statement is the session's id (the one KILL takes),
    not the thread id of the backend connection that happens to execute it; a prepared SHOW
    VARIABLES answers for the session too, as the text one does."""
    mariadb = pytest.importorskip("mariadb", reason="MariaDB Connector/Python not installed")
    conns = [mariadb.connect(host=HOST, port=dal.port, user="app", password="app",
                             database="trade", autocommit=True) for _ in range(2)]
    try:
        for conn in conns:
            text = conn.cursor()
            text.execute("SELECT CONNECTION_ID()")
            (own,) = text.fetchone()
            cur = conn.cursor(binary=True)
            for _ in range(2):  # prepared once, then executed again
                cur.execute("SELECT CONNECTION_ID() + 0, ?", (7,))
                assert cur.fetchall() == [(own, 7)]
                cur.execute("SHOW VARIABLES WHERE Variable_name IN ('last_gtid', 'identity')")
                assert sorted(cur.fetchall()) == [("identity", "0"), ("last_gtid", "")]
            # With a read-only cursor the rows are fetched (COM_STMT_FETCH), one at a time.
            fetched = conn.cursor(binary=True, cursor_type=mariadb.constants.CURSOR.READ_ONLY,
                                  prefetch_size=1)
            fetched.execute("SHOW VARIABLES LIKE '%identity'")
            assert fetched.fetchall() == [("identity", "0")]
            cur.execute("SHOW VARIABLES WHERE Variable_name IN (?, ?)", ("identity", "version"))
            assert [name for name, _ in cur.fetchall()] == ["identity", "version"]
            text.execute("SELECT 1")  # the connection is still in step
            assert text.fetchall() == [(1,)]
    finally:
        for conn in conns:
            conn.close()
