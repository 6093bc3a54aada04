"""Least privilege (issue 19): what an `app` or `admin` login may run through DAL.

Every statement an application login could use to harm the backend (server administration,
users and grants, global settings, DDL, files, system schemas, shard databases) is tried as
written, in odd spellings and inside executable comments: each is refused with a documented
code, the backend is read directly to show nothing changed, and the session goes on.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pymysql
import pytest

from tests.metrics_scrape import scrape, value

MARK = f"acc{uuid.uuid4().hex[:6]}"
OUTFILE = f"/tmp/{MARK}-outfile"

# (statement, allowed codes). Codes: 1227 privilege, 1142 table access, 1044 database access,
# 1235 not supported by DAL.
APP_REFUSED = [
    ("SHUTDOWN", {1227}),
    ("shutdown", {1227}),
    ("  \n\tShUtDoWn ;", {1227}),
    ("/* hello */ SHUTDOWN", {1227}),
    ("/*!SHUTDOWN*/", {1227}),
    ("/*!50000 SHUTDOWN */", {1227}),
    ("/*M!100000 SHUTDOWN */", {1227}),
    ("RESTART", {1227}),
    (f"CREATE USER {MARK}@'%' IDENTIFIED BY 'x'", {1227}),
    (f"/*!50000 CREATE USER {MARK}@'%' IDENTIFIED BY 'x' */", {1227}),
    (f"DROP USER {MARK}", {1227}),
    ("DROP USER dal", {1227}),
    (f"GRANT ALL ON *.* TO {MARK}@'%' IDENTIFIED BY 'x'", {1227}),
    ("GRANT ALL ON *.* TO app", {1227}),
    ("REVOKE ALL ON *.* FROM dal", {1227}),
    ("SET PASSWORD FOR dal = PASSWORD('x')", {1227}),
    ("SET GLOBAL max_connections=151", {1227}),
    ("SET @@global.max_connections = 151", {1227}),
    ("set   global\tread_only = 1", {1227}),
    ("SET GLOBAL read_only=ON", {1227}),
    ("/*!40101 SET GLOBAL read_only=1 */", {1227}),
    ("FLUSH PRIVILEGES", {1227}),
    ("FLUSH TABLES", {1227}),
    ("RESET MASTER", {1227}),
    ("PURGE BINARY LOGS BEFORE NOW()", {1227}),
    ("SET sql_log_bin=0", {1227}),
    ("SET SESSION sql_log_bin = 0", {1227}),
    ("SET @@session.sql_log_bin=0", {1227}),
    ("SET STATEMENT sql_log_bin=0 FOR SELECT 1", {1227}),
    ("SET STATEMENT max_statement_time=5 FOR SHUTDOWN", {1227}),
    ("SET session_track_system_variables=''", {1227}),
    ("STOP SLAVE", {1227}),
    ("CHANGE MASTER TO MASTER_HOST='127.0.0.1'", {1227}),
    ("INSTALL SONAME 'ha_blackhole'", {1227}),
    ("RENAME TABLE merchants TO m2", {1227}),
    (f"CREATE TRIGGER {MARK}_t BEFORE INSERT ON merchants FOR EACH ROW SET NEW.rating = 1",
     {1227}),
    (f"CREATE EVENT {MARK}_e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM merchants", {1227}),
    ("OPTIMIZE TABLE merchants", {1227}),
    ("REPAIR TABLE merchants", {1227}),
    ("TRUNCATE TABLE merchants", {1227}),
    (f"/*!50000 CREATE TABLE {MARK}_t (id INT) */", {1227}),
    (f"/*!50000 CREATE TABLE {MARK}_t2 */ (id INT)", {1227}),
    ("/*!50000 DROP TABLE merchants */", {1227}),
    ("DROP TABLE merchants", {1227}),
    ("ALTER TABLE merchants ADD COLUMN z INT", {1227}),
    ("SELECT LOAD_FILE('/etc/passwd')", {1227}),
    ("select load_file ( '/etc/passwd' )", {1227}),
    ("SELECT 1 /*!99999 , LOAD_FILE('/etc/passwd') */", {1227}),
    ("SELECT name FROM merchants WHERE name = LOAD_FILE('/etc/hostname')", {1227}),
    (f"SELECT * FROM merchants INTO OUTFILE '{OUTFILE}'", {1227}),
    (f"SELECT 1 INTO DUMPFILE '{OUTFILE}'", {1227}),
    ("LOAD DATA INFILE '/etc/hostname' INTO TABLE merchants", {1227}),
    ("LOAD XML INFILE '/etc/hostname' INTO TABLE merchants", {1227}),
    ("SELECT User, Password FROM mysql.user", {1142}),
    ("SELECT * FROM `mysql`.`user`", {1142}),
    ("SELECT * FROM mysql . user", {1142}),
    ("SELECT * FROM performance_schema.threads", {1142}),
    ("SELECT * FROM sys.processlist", {1142}),
    ("SELECT * FROM dal_meta.gene_workers", {1142}),
    ("UPDATE dal_meta.gene_workers SET holder = 'x'", {1142}),
    ("SHOW TABLES FROM mysql", {1142}),
    ("USE mysql", {1142, 1044, 1049}),
    ("SELECT * FROM information_schema.processlist", {1142}),
    ("SELECT * FROM information_schema.user_privileges", {1142}),
    ("SHOW GRANTS FOR dal", {1044}),
    ("SHOW BINARY LOGS", {1227}),
    ("SHOW MASTER STATUS", {1227}),
    ("SHOW SLAVE STATUS", {1227}),
    ("SHOW ENGINE INNODB STATUS", {1227}),
    ("SHOW CREATE USER dal", {1227}),
    ("SELECT * FROM user_000.orders", {1044}),
    ("DROP DATABASE merchant_059", {1235, 1044}),
    (f"CREATE DATABASE {MARK}", {1235}),
    ("PREPARE s FROM 'SHUTDOWN'", {1227}),
    ("PREPARE s FROM 'SELECT LOAD_FILE(\\'/etc/passwd\\')'", {1227}),
    ("PREPARE s FROM @sql", {1235}),
    ("XA START 'x'", {1235}),
]

ADMIN_REFUSED = [
    ("DROP DATABASE merchant_059", {1044, 1235}),
    ("drop  database `merchant_059`", {1044, 1235}),
    ("/*!40000 DROP DATABASE merchant_059 */", {1044, 1235}),
    ("DROP SCHEMA IF EXISTS user_000", {1044, 1235}),
    (f"CREATE DATABASE {MARK}", {1235}),
    ("CREATE DATABASE user_200", {1044, 1235}),
    ("DROP TABLE user_000.orders", {1044}),
    ("DROP TABLE `merchant_001`.`orders`", {1044}),
    (f"CREATE TABLE merchant_001.{MARK} (id INT)", {1044}),
    ("ALTER TABLE user_001.orders ADD COLUMN z INT", {1044}),
    ("TRUNCATE TABLE user_002.orders", {1044}),
    (f"RENAME TABLE trade.merchants TO user_000.{MARK}", {1044}),
    ("USE user_003", {1044, 1049}),
    ("DROP TABLE orders", {1235}),
    ("SHUTDOWN", {1227}),
    (f"CREATE USER {MARK}@'%'", {1227}),
    ("SET GLOBAL max_connections=151", {1227}),
    ("SELECT * FROM mysql.user", {1142}),
    ("SELECT LOAD_FILE('/etc/passwd')", {1227}),
]


def _code(conn: pymysql.connections.Connection, sql: str) -> int | None:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
    except pymysql.MySQLError as exc:
        return exc.args[0]
    return None


def _snapshot(direct) -> dict:
    """What the statements above would change on the backends, read directly."""
    a = direct("a")
    with a.cursor() as cur:
        cur.execute("SELECT @@global.max_connections, @@global.read_only")
        globals_ = cur.fetchone()
        cur.execute("SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('trade', 'user_000', 'user_001', 'user_002', "
                    "'merchant_001')")
        tables = sorted(cur.fetchall())
        cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                    "table_schema IN ('trade', 'user_001') AND column_name = 'z'")
        columns = cur.fetchall()
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        # only what these statements name: other tests create databases of their own
        schemas = sorted(r[0] for r in cur.fetchall()
                         if r[0] in ("merchant_059", "user_000", "user_200") or MARK in r[0])
        cur.execute("SELECT COUNT(*) FROM information_schema.triggers WHERE "
                    "trigger_schema = 'trade'")
        triggers = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM information_schema.events")
        events = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM trade.merchants")
        merchants = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM user_002.orders")
        orders = cur.fetchone()[0]
    return {"globals": globals_, "tables": tables, "columns": columns, "schemas": schemas,
            "triggers": triggers, "events": events, "merchants": merchants, "orders": orders}


def _no_probe_user(backends: dict) -> None:
    cfg = backends["a"]
    with pytest.raises(pymysql.MySQLError) as info:
        pymysql.connect(host=cfg["host"], port=cfg["port"], user=MARK, password="x",
                        connect_timeout=5)
    assert info.value.args[0] == 1045


def _refuse_all(conn, statements: list[tuple[str, set[int]]]) -> list[str]:
    wrong = []
    for sql, codes in statements:
        code = _code(conn, sql)
        if code not in codes:
            wrong.append(f"{sql!r}: got {code}, expected one of {sorted(codes)}")
        # the session goes on, in the same database
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE(), 1")
            assert cur.fetchone() == ("trade", 1), f"session broken after {sql!r}"
    return wrong


def test_app_cannot_touch_the_server(connect, direct, backends, dal_config) -> None:
    before = _snapshot(direct)
    metrics_port = dal_config[1]["server"]["metrics"]["port"]
    counted = value(scrape(metrics_port), "dal_rule_refusals_total", rule="privilege")
    app = connect()
    wrong = _refuse_all(app, APP_REFUSED)
    assert not wrong, "\n".join(wrong)
    assert _snapshot(direct) == before
    _no_probe_user(backends)
    assert not os.path.exists(OUTFILE)
    with direct("a").cursor() as cur:
        cur.execute("SELECT 1")  # SHUTDOWN never reached it
        assert cur.fetchone() == (1,)
    with app.cursor() as cur:
        cur.execute("SELECT @@sql_log_bin")
        assert cur.fetchone() == (1,)
    after = value(scrape(metrics_port), "dal_rule_refusals_total", rule="privilege")
    assert after - counted >= 40


def test_admin_cannot_touch_shard_databases(connect, direct, backends) -> None:
    before = _snapshot(direct)
    admin = connect("admin", "admin")
    wrong = _refuse_all(admin, ADMIN_REFUSED)
    assert not wrong, "\n".join(wrong)
    after = _snapshot(direct)
    assert after == before
    assert "merchant_059" in after["schemas"] and "user_000" in after["schemas"]
    _no_probe_user(backends)


def test_admin_keeps_ddl_on_unsharded_tables(connect, direct) -> None:
    admin = connect("admin", "admin")
    table = f"{MARK}_own"
    with admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute(f"/*!40000 ALTER TABLE {table} DISABLE KEYS */")
        cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        cur.execute(f"OPTIMIZE TABLE {table}")
        cur.fetchall()
    with direct("a").cursor() as cur:
        cur.execute(f"SELECT v FROM trade.{table}")
        assert cur.fetchall() == (("a",),)
    with admin.cursor() as cur:
        cur.execute(f"DROP TABLE {table}")
    with direct("a").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                    "'trade' AND table_name = %s", (table,))
        assert cur.fetchone() == (0,)


def test_app_keeps_what_applications_run(connect) -> None:
    """The allowlist lets through what drivers, ORMs and applications send."""
    app = connect()
    allowed = [
        "SELECT 1", "select @@version_comment limit 1", "SELECT DATABASE(), @@tx_isolation",
        "SET NAMES utf8mb4", "SET autocommit=1", "SET SESSION sql_mode='STRICT_TRANS_TABLES'",
        "SET @x = 5", "SET time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SHOW TABLES", "SHOW FULL TABLES", "SHOW DATABASES", "SHOW COLUMNS FROM merchants",
        "SHOW CREATE TABLE merchants", "SHOW INDEX FROM orders", "SHOW VARIABLES LIKE 'x%'",
        "SHOW WARNINGS", "SHOW COLLATION LIKE 'utf8mb4_bin'", "SHOW ENGINES",
        "DESCRIBE orders", "EXPLAIN SELECT * FROM merchants", "SELECT * FROM merchants LIMIT 1",
        "BEGIN", "SELECT * FROM orders WHERE user_id = 7", "COMMIT",
        "START TRANSACTION", "ROLLBACK", "LOCK TABLES merchants READ", "UNLOCK TABLES",
        "PREPARE s FROM 'SELECT ? + 1'", "SET @a = 1", "EXECUTE s USING @a",
        "DEALLOCATE PREPARE s", "DO 1", "SELECT 'SHUTDOWN', 'mysql.user', 'load_file('",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'trade'",
    ]
    failed = [(sql, _code(app, sql)) for sql in allowed]
    assert [f for f in failed if f[1] is not None] == []


def test_no_backslash_escapes_round_trips_every_byte(connect, direct) -> None:
    """Drivers escape by SERVER_STATUS_NO_BACKSLASH_ESCAPES in DAL's OK packets: every byte
    value comes back as sent, also through a sharded insert and read, and the injection of
    the issue stays a string."""
    app = connect()
    with app.cursor() as cur:
        cur.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        assert app.server_status & 0x200, "OK of the SET lacks NO_BACKSLASH_ESCAPES"
        cur.execute("SELECT 1")
        assert app.server_status & 0x200
        for b in range(256):
            cur.execute("SELECT %s", (bytes([b]),))
            assert cur.fetchone()[0] == bytes([b]), f"byte {b}"
        cur.execute("SELECT %s", (bytes(range(256)),))
        assert cur.fetchone()[0] == bytes(range(256))
        tricky = "\u00e9' OR 1=1 -- \\"
        cur.execute("SELECT %s", (tricky,))
        assert cur.fetchall() == ((tricky,),)
        user, merchant = 4242, 17
        notes = [MARK + chr(c) for c in range(128)] + [MARK + tricky, MARK + "\\'\\"]
        for note in notes:
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, %s, 1, 1.00, %s, NOW(), NOW())",
                        (user, merchant, note))
        cur.execute("SELECT note FROM orders WHERE user_id = %s AND note LIKE %s ORDER BY id",
                    (user, MARK + "%"))
        got = [r[0] for r in cur.fetchall()]
    try:
        assert got == notes
        shard = f"user_{user % 120:03d}"
        with direct("b" if user % 120 >= 60 else "a").cursor() as cur:
            cur.execute(f"SELECT note FROM {shard}.orders WHERE user_id = %s ORDER BY id",
                        (user,))
            assert [r[0] for r in cur.fetchall()] == notes
    finally:
        with app.cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id = %s", (user,))
            cur.execute("SET sql_mode = DEFAULT")
            assert not app.server_status & 0x200


def test_processlist_grants_and_current_user_are_dal_s(connect, direct) -> None:
    app = connect()
    other = connect()
    admin = connect("admin", "admin")
    ids = {}
    for name, conn in (("app", app), ("other", other), ("admin", admin)):
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID(), CURRENT_USER(), USER()")
            ids[name], current, user = cur.fetchone()
            cur.execute("SELECT COUNT(*), CURRENT_USER, USER() FROM merchants")
            assert cur.fetchone()[1:] == (current, user)  # inside a statement too
            assert current.endswith("@%") and current.split("@")[0] in ("app", "admin")
            assert user.split("@")[0] == current.split("@")[0]
    with app.cursor() as cur:
        cur.execute("SHOW PROCESSLIST")
        rows = cur.fetchall()
    assert {r[1] for r in rows} == {"app"}
    assert {ids["app"], ids["other"]} <= {r[0] for r in rows}
    assert ids["admin"] not in {r[0] for r in rows}
    with admin.cursor() as cur:
        cur.execute("SHOW FULL PROCESSLIST")
        everyone = {r[0] for r in cur.fetchall()}
    assert set(ids.values()) <= everyone
    with app.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0] for r in cur.fetchall())
    assert "`app`@`%`" in grants and "dal" not in grants.replace("`trade`", "")
    assert not re.search(r"\*[0-9A-F]{40}", grants)  # no password hash


def test_information_schema_shows_the_logical_view(connect) -> None:
    app = connect()
    with app.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        assert {r[0] for r in cur.fetchall()} == {"information_schema", "trade"}
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                    "'trade' ORDER BY table_name")
        tables = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT DISTINCT table_schema FROM information_schema.columns")
        schemas = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "DATABASE() AND table_name = 'orders' ORDER BY ordinal_position")
        columns = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema LIKE "
                    "'user\\_%' OR table_schema LIKE 'merchant\\_%'")
        shards = cur.fetchone()[0]
    assert {"orders", "order_items", "merchants", "regions"} <= set(tables)
    assert len(tables) == len(set(tables))
    assert schemas <= {"information_schema", "trade"}
    assert columns[:3] == ["id", "user_id", "merchant_id"]
    assert shards == 0


def test_kill_reaches_dal_sessions_only(connect, direct) -> None:
    app = connect()
    victim = connect()
    admin = connect("admin", "admin")
    with victim.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        victim_id = cur.fetchone()[0]
    with admin.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        admin_id = cur.fetchone()[0]
    # KILL QUERY ends a running statement of one's own user, quickly
    outcome: dict = {}

    def sleep() -> None:
        start = time.monotonic()
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT SLEEP(20) FROM merchants LIMIT 1")
                outcome["rows"] = cur.fetchall()
        except pymysql.MySQLError as exc:
            outcome["error"] = exc.args[0]
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=sleep)
    thread.start()
    time.sleep(1.0)
    with app.cursor() as cur:
        cur.execute(f"KILL QUERY {victim_id}")
    thread.join(15)
    assert outcome.get("seconds", 99) < 10
    with victim.cursor() as cur:  # the session goes on
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    # another user's session is not the app's to kill; unknown ids are unknown
    assert _code(app, f"KILL {admin_id}") == 1095
    assert _code(app, "KILL 987654321") == 1094
    # a backend thread id is never reachable
    with direct("a").cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        backend_thread = cur.fetchone()[0]
    with admin.cursor() as cur:
        cur.execute("SHOW PROCESSLIST")
        dal_ids = {r[0] for r in cur.fetchall()}
    if backend_thread not in dal_ids:
        assert _code(admin, f"KILL {backend_thread}") == 1094
        with direct("a").cursor() as cur:
            cur.execute("SELECT 1")
    # KILL CONNECTION ends the session
    with app.cursor() as cur:
        cur.execute(f"KILL {victim_id}")
    with pytest.raises(pymysql.MySQLError), victim.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()
    # and one's own connection: 1927, as MariaDB
    with app.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        own = cur.fetchone()[0]
    assert _code(app, f"KILL {own}") == 1927


def test_backslash_hiding_charsets_are_refused(connect, dal) -> None:
    """gbk's 0xbf5c is one character to MariaDB: `'\xbf\' , LOAD_FILE(...) , '` would be a string
    to DAL and code to the backend. Such client character sets are refused, at login and by
    SET, and the session stays in its own character set."""
    app = connect()
    for sql in ("SET NAMES gbk", "SET NAMES sjis", "SET CHARACTER SET big5",
                "SET character_set_client = cp932", "/*!40101 SET NAMES gbk */"):
        assert _code(app, sql) in (1115, 1235), sql
    with app.cursor() as cur:
        cur.execute("SELECT @@character_set_client")
        assert cur.fetchone()[0] != "gbk"
    with pytest.raises(pymysql.MySQLError) as info:
        pymysql.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                        database="trade", charset="gbk", connect_timeout=10)
    assert info.value.args[0] == 1115
