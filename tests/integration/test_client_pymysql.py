"""pymysql against DAL: CRUD on the unsharded `merchants` table, transactions, value round
trips, session statements, metadata statements and every login path.

Every write is checked where a user would check it: read back through DAL, and where it
matters read directly from backend instance a (database `trade`), bypassing DAL.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pymysql
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pymysql.constants import CLIENT, FIELD_TYPE

from tests.clients.merchants import (
    CONFIGURED_TABLES,
    MERCHANTS_DESCRIBE,
    count_direct,
    purge,
    unique_prefix,
)
from tests.clients.pymysql_auth import CountingSha2Handler, TracingConnection

HOST = "127.0.0.1"
COLUMNS = "id, name, region_id, rating, created_at"


@pytest.fixture
def prefix(direct):
    """A unique merchant-name prefix; rows left behind by a failed test are purged directly."""
    value = unique_prefix("pymysql")
    yield value
    purge(direct("a", "trade"), value)


@pytest.fixture
def tx(connect, dal):
    """A connection as `pymysql.connect()` makes it by default: autocommit off."""
    conn = pymysql.connect(host=HOST, port=dal.port, user="app", password="app",
                           database="trade", connect_timeout=10, read_timeout=30)
    connect.track(conn)
    return conn


def fetch(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def merchant(conn, merchant_id):
    rows = fetch(conn, f"SELECT {COLUMNS} FROM merchants WHERE id = %s", (merchant_id,))
    return rows[0] if rows else None


def direct_merchant(direct_conn, merchant_id):
    rows = fetch(direct_conn, f"SELECT {COLUMNS} FROM trade.merchants WHERE id = %s",
                 (merchant_id,))
    return rows[0] if rows else None


# -- CRUD and transactions ------------------------------------------------------------------


def test_autocommit_off_crud_commits_and_reads_back(tx, connect, direct, prefix):
    backend = direct("a", "trade")
    assert tx.get_autocommit() is False
    assert fetch(tx, "SELECT @@autocommit") == ((0,),)

    name = prefix + "crud"
    created = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)
    with tx.cursor() as cur:
        assert cur.execute("INSERT INTO merchants (name, region_id, rating, created_at) "
                           "VALUES (%s, %s, %s, %s)", (name, 7, Decimal("4.25"), created)) == 1
        merchant_id = cur.lastrowid
    assert isinstance(merchant_id, int) and merchant_id > 0
    expected = (merchant_id, name, 7, Decimal("4.25"), created)

    # Read-your-writes inside the transaction; nobody else sees it before COMMIT.
    assert merchant(tx, merchant_id) == expected
    assert count_direct(backend, merchant_id) == 0
    other = connect()
    assert merchant(other, merchant_id) is None

    tx.commit()
    assert direct_merchant(backend, merchant_id) == expected
    assert merchant(other, merchant_id) == expected

    with tx.cursor() as cur:
        assert cur.execute("UPDATE merchants SET rating = %s, region_id = NULL WHERE id = %s",
                           (Decimal("3.10"), merchant_id)) == 1
        assert cur.rowcount == 1
        # Nothing changes: without CLIENT_FOUND_ROWS, rowcount counts changed rows.
        cur.execute("UPDATE merchants SET rating = %s WHERE id = %s",
                    (Decimal("3.10"), merchant_id))
        assert cur.rowcount == 0
    tx.commit()
    updated = (merchant_id, name, None, Decimal("3.10"), created)
    assert merchant(tx, merchant_id) == updated
    assert direct_merchant(backend, merchant_id) == updated

    with tx.cursor() as cur:
        cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))
        assert cur.rowcount == 1
    tx.commit()
    assert merchant(tx, merchant_id) is None
    assert count_direct(backend, merchant_id) == 0
    with tx.cursor() as cur:
        cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))
        assert cur.rowcount == 0
    tx.commit()


def test_rollback_discards_an_insert(tx, direct, prefix):
    backend = direct("a", "trade")
    with tx.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "rolled-back",))
        discarded = cur.lastrowid
    assert merchant(tx, discarded) is not None  # visible inside the transaction
    tx.rollback()

    assert merchant(tx, discarded) is None
    assert count_direct(backend, discarded) == 0
    assert fetch(backend, "SELECT COUNT(*) FROM trade.merchants WHERE name = %s",
                 (prefix + "rolled-back",)) == ((0,),)

    # The connection goes on working: a later transaction commits normally, and a rollback
    # after the commit does not undo it.
    with tx.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "kept",))
        kept = cur.lastrowid
    tx.commit()
    tx.rollback()
    assert kept != discarded
    assert count_direct(backend, kept) == 1
    with tx.cursor() as cur:
        assert cur.execute("DELETE FROM merchants WHERE id = %s", (kept,)) == 1
    tx.commit()
    assert count_direct(backend, kept) == 0


def test_update_rowcount_follows_client_found_rows(connect, prefix):
    """DAL shares backend connections between clients: each client must still get the
    rowcount semantics it asked for at login (matched rows with CLIENT_FOUND_ROWS, changed
    rows without)."""
    changed = connect()
    matched = connect(client_flag=CLIENT.FOUND_ROWS)
    with changed.cursor() as cur:
        cur.execute("INSERT INTO merchants (name, region_id) VALUES (%s, 1)", (prefix + "fr",))
        merchant_id = cur.lastrowid
    for _ in range(2):  # alternate, so that both kinds of backend connection get reused
        with matched.cursor() as cur:
            assert cur.execute("UPDATE merchants SET region_id = 1 WHERE id = %s",
                               (merchant_id,)) == 1
        with changed.cursor() as cur:
            assert cur.execute("UPDATE merchants SET region_id = 1 WHERE id = %s",
                               (merchant_id,)) == 0
    with matched.cursor() as cur:
        assert cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,)) == 1


def test_last_insert_id_inside_a_transaction(tx, prefix):
    with tx.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "lid",))
        merchant_id = cur.lastrowid
        cur.execute("SELECT LAST_INSERT_ID()")
        assert cur.fetchone() == (merchant_id,)
        cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))
    tx.commit()


def test_last_insert_id_in_autocommit_is_the_sessions_own(connect, prefix):
    mine, theirs = connect(), connect()
    with mine.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "mine",))
        my_id = cur.lastrowid
    with theirs.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "theirs",))
        their_id = cur.lastrowid
    try:
        assert fetch(mine, "SELECT LAST_INSERT_ID()") == ((my_id,),)
        assert fetch(theirs, "SELECT LAST_INSERT_ID()") == ((their_id,),)
    finally:
        fetch(mine, "DELETE FROM merchants WHERE id IN (%s, %s)", (my_id, their_id))


def test_variables_that_describe_a_connection_are_the_sessions_own(connect, prefix):
    """SHOW VARIABLES and CONNECTION_ID() inside an expression run on a pooled connection:
    DAL answers them with the session's values, not with whichever session's (the last
    insert id) or backend thread's (the id) that connection holds."""
    mine, theirs = connect(), connect()
    with mine.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "vars",))
        my_id = cur.lastrowid
    try:
        for conn, last in ((mine, my_id), (theirs, 0)):
            own = {"last_insert_id": str(last), "identity": str(last), "last_gtid": ""}
            assert dict(fetch(conn, "SHOW VARIABLES WHERE Variable_name IN ('last_insert_id', "
                                    "'identity', 'last_gtid')")) == own
            assert fetch(conn, "SHOW SESSION VARIABLES LIKE 'identity'") == (
                ("identity", str(last)),)
            assert fetch(conn, "SELECT @@identity, @@last_gtid") == ((last, ""),)
            assert fetch(conn, "SELECT CONNECTION_ID() + 0, 'x'") == ((conn.thread_id(), "x"),)
        # The server's own values stay the server's.
        assert fetch(theirs, "SHOW VARIABLES LIKE 'version'")[0][1] == (
            fetch(theirs, "SELECT VERSION()")[0][0])
    finally:
        fetch(mine, "DELETE FROM merchants WHERE id = %s", (my_id,))


def test_show_variables_of_a_session_that_holds_its_connection(tx) -> None:
    """In a transaction, or after a SET that keeps the session on its connection, SHOW
    VARIABLES describes that connection (the one its statements run on), not a pooled one."""
    assert fetch(tx, "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)  # BEGIN is implicit
    assert fetch(tx, "SHOW VARIABLES LIKE 'in_transaction'") == (("in_transaction", "1"),)
    tx.rollback()
    fetch(tx, "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    assert fetch(tx, "SHOW VARIABLES LIKE 'tx_isolation'") == (("tx_isolation", "SERIALIZABLE"),)
    assert fetch(tx, "SELECT @@tx_isolation") == (("SERIALIZABLE",),)
    tx.rollback()


def test_show_variables_where_tests_the_sessions_values(connect) -> None:
    """A WHERE on Value is applied to the session's values, not to the pooled connection's
    that DAL replaces afterwards."""
    conn, other = connect(), connect()
    with other.cursor() as cur:  # the pooled connection's last insert id is not 0 now
        cur.execute("INSERT INTO merchants (name) VALUES ('dal-vars-where')")
        other_id = cur.lastrowid
    try:
        assert fetch(conn, "SHOW VARIABLES WHERE Variable_name = 'identity' AND "
                           "Value = '0'") == (("identity", "0"),)
        assert fetch(conn, "SHOW VARIABLES WHERE Variable_name = 'identity' AND "
                           f"Value = '{other_id}'") == ()
        assert fetch(conn, "SHOW VARIABLES WHERE Variable_name IN ('last_gtid', "
                           "'autocommit') AND Value <> ''") == (("autocommit", "ON"),)
        # However the WHERE is spelled: comments around it, no space after it.
        for sql in ("/* tag */ SHOW VARIABLES WHERE Variable_name = 'identity' AND Value <> 0",
                    "SHOW /* c */ VARIABLES WHERE(Variable_name = 'identity' AND Value > 0)",
                    "SHOW VARIABLES WHERE'identity' = Variable_name AND Value > 0"):
            assert fetch(conn, sql) == (), sql
        # Compared as MariaDB compares SHOW VARIABLES' columns (case-insensitively).
        assert fetch(conn, "SHOW VARIABLES WHERE Variable_name = 'IDENTITY'") == (
            ("identity", "0"),)
    finally:
        fetch(other, "DELETE FROM merchants WHERE id = %s", (other_id,))


def test_connection_id_spellings_never_give_the_backend_thread(connect) -> None:
    """CONNECTION_ID() after a leading comment is the session's id; a spelling DAL does not
    rewrite (a comment inside it) is refused rather than answered with the backend
    connection's thread id. Under NO_BACKSLASH_ESCAPES a string that ends in a backslash
    ends there: what follows in the next string is data."""
    conn = connect()
    me = conn.thread_id()
    for sql in ("/* tag */ SELECT CONNECTION_ID() + 0", "-- tag\nSELECT CONNECTION_ID() + 0",
                "# tag\nSELECT CONNECTION_ID() + 0"):
        assert fetch(conn, sql) == ((me,),), sql
    assert fetch(conn, "/* tag */ SELECT CONNECTION_ID(), @@identity") == ((me, 0),)
    # A name is not a call; a `--` comment ends at the line's end after any control character.
    assert fetch(conn, "SELECT 1 AS `CONNECTION_ID()`") == ((1,),)
    assert fetch(conn, "SELECT 'x' --\r'\n, ' CONNECTION_ID() ', CONNECTION_ID() > 0") == (
        ("x", " CONNECTION_ID() ", 1),)
    for sql in ("SELECT CONNECTION_ID(/**/) AS c, 1", "SELECT CONNECTION_ID/**/() + 0"):
        with pytest.raises(pymysql.err.MySQLError) as excinfo:
            fetch(conn, sql)
        assert excinfo.value.args[0] == 1235, sql
    with pytest.raises(pymysql.err.MySQLError) as excinfo:
        fetch(conn, "SELECT @@global.last_insert_id")
    assert excinfo.value.args[0] == 1238  # a SESSION variable, as MariaDB says
    fetch(conn, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
    assert fetch(conn, "SELECT CONCAT('C:\\', ' CONNECTION_ID() ') AS x, CONNECTION_ID() + 0") == (
        ("C:\\ CONNECTION_ID() ", me),)


def test_sets_without_a_default_never_reach_another_session(connect) -> None:
    """MariaDB cannot set rand_seed1/2 back to DEFAULT: a session that sets them keeps its
    connection, so the next session on the pool never fails resetting them (1230). SET
    last_insert_id is refused: DAL answers LAST_INSERT_ID() from the session's inserts."""
    seeded = connect()
    fetch(seeded, "SET SESSION rand_seed1 = 5, rand_seed2 = 7")
    assert fetch(seeded, "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)
    seeded.close()
    for _ in range(5):
        assert fetch(connect(), "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)
    conn = connect()
    for sql in ("SET last_insert_id = 77", "SET @@session.identity = 5",
                "SET @u = 1, last_insert_id = 78", "SET rand_seed1 = 1, identity = 79"):
        with pytest.raises(pymysql.err.MySQLError) as excinfo:
            fetch(conn, sql)
        assert excinfo.value.args[0] == 1235, sql
    assert fetch(conn, "SELECT LAST_INSERT_ID()") == ((0,),)


def test_show_variables_in_a_one_byte_character_set(connect) -> None:
    """SHOW VARIABLES from a latin1 client: its text goes to the backend as the client sent
    it (before, DAL failed with 1105 encoding it)."""
    conn = connect(charset="latin1")
    assert fetch(conn, "SHOW VARIABLES LIKE 'café%'") == ()
    assert fetch(conn, "SHOW SESSION VARIABLES WHERE Value = 'café'") == ()
    assert fetch(conn, "SHOW VARIABLES LIKE 'character_set_client'") == (
        ("character_set_client", "latin1"),)


# -- values ---------------------------------------------------------------------------------


def test_null_decimal_and_datetime6_round_trip(tx, direct, prefix):
    rows = [
        (prefix + "r0", None, None, datetime.datetime(2000, 1, 1, 0, 0, 0, 1)),
        (prefix + "r1", 0, Decimal("0.00"), datetime.datetime(2024, 6, 30, 12, 0, 0, 999999)),
        (prefix + "r2", -2147483648, Decimal("-9.99"), datetime.datetime(1000, 1, 1, 0, 0, 0)),
        (prefix + "r3", 2147483647, Decimal("9.99"),
         datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        (prefix + "r4", 42, Decimal("1.05"), datetime.datetime(2024, 3, 31, 2, 30, 0, 500000)),
    ]
    with tx.cursor() as cur:
        # pymysql sends this as one multi-row INSERT.
        assert cur.executemany("INSERT INTO merchants (name, region_id, rating, created_at) "
                               "VALUES (%s, %s, %s, %s)", rows) == len(rows)
        first_id = cur.lastrowid
    tx.commit()
    expected = [(first_id + i, *row) for i, row in enumerate(rows)]

    with tx.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM merchants WHERE name LIKE %s ORDER BY id",
                    (prefix + "r%",))
        got = list(cur.fetchall())
        description = cur.description
    assert got == expected
    assert [type(r[3]) for r in got] == [type(None), Decimal, Decimal, Decimal, Decimal]
    assert all(type(r[4]) is datetime.datetime for r in got)
    # Column metadata as the client sees it: names, wire types and nullability.
    assert [(d[0], d[1], d[6]) for d in description] == [
        ("id", FIELD_TYPE.LONGLONG, False),
        ("name", FIELD_TYPE.VAR_STRING, False),
        ("region_id", FIELD_TYPE.LONG, True),
        ("rating", FIELD_TYPE.NEWDECIMAL, True),
        ("created_at", FIELD_TYPE.DATETIME, False),
    ]
    assert description[3][5] == 2  # DECIMAL(3,2): scale 2
    assert description[4][5] == 6  # DATETIME(6): 6 fractional digits

    backend = direct("a", "trade")
    assert [direct_merchant(backend, e[0]) for e in expected] == expected

    # The column default CURRENT_TIMESTAMP(6) is the backend's clock, to the microsecond.
    before = fetch(backend, "SELECT NOW(6)")[0][0]
    with tx.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "default",))
        default_id = cur.lastrowid
    tx.commit()
    after = fetch(backend, "SELECT NOW(6)")[0][0]
    row = merchant(tx, default_id)
    assert row[2:4] == (None, None)
    assert before <= row[4] <= after

    # A value out of range is the backend's own error, with its code; the transaction
    # goes on.
    with pytest.raises(pymysql.err.DataError) as excinfo, tx.cursor() as cur:
        cur.execute("INSERT INTO merchants (name, rating) VALUES (%s, %s)",
                    (prefix + "bad", Decimal("10.00")))
    assert excinfo.value.args[0] == 1264
    assert "rating" in excinfo.value.args[1]

    with tx.cursor() as cur:
        assert cur.execute("DELETE FROM merchants WHERE name LIKE %s",
                           (prefix + "%",)) == len(rows) + 1
    tx.commit()
    assert fetch(backend, "SELECT COUNT(*) FROM trade.merchants WHERE name LIKE %s",
                 (prefix + "%",)) == ((0,),)


def test_unicode_names_with_set_names_utf8mb4(connect, direct, prefix):
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET NAMES utf8mb4")
        cur.execute("SELECT @@character_set_client, @@character_set_connection, "
                    "@@character_set_results")
        assert cur.fetchone() == ("utf8mb4", "utf8mb4", "utf8mb4")
    names = [
        prefix + "emoji 😀🚀🍣",
        prefix + "日本語の店",
        prefix + "Ünïcödé café",
        prefix + "한국어 𝄞 (outside the BMP)",
        prefix + "😀" * (128 - len(prefix)),  # exactly VARCHAR(128) characters
    ]
    ids = []
    with conn.cursor() as cur:
        for name in names:
            cur.execute("INSERT INTO merchants (name) VALUES (%s)", (name,))
            ids.append(cur.lastrowid)
    backend = direct("a", "trade")
    for merchant_id, name in zip(ids, names, strict=True):
        # Several statements later, on whatever backend connection DAL picks, the session
        # still speaks utf8mb4.
        assert fetch(conn, "SELECT name, CHAR_LENGTH(name) FROM merchants WHERE name = %s",
                     (name,)) == ((name, len(name)),)
        assert fetch(backend, "SELECT HEX(name) FROM trade.merchants WHERE id = %s",
                     (merchant_id,)) == ((name.encode().hex().upper(),),)
    assert fetch(conn, "SELECT @@character_set_client") == (("utf8mb4",),)

    with pytest.raises(pymysql.err.DataError) as excinfo, conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (names[-1] + "😀",))
    assert excinfo.value.args[0] == 1406  # Data too long: 129 characters

    with conn.cursor() as cur:
        assert cur.execute("DELETE FROM merchants WHERE name LIKE %s", (prefix + "%",)) == 5


# -- session statements and connect-time metadata -------------------------------------------


def test_database_use_and_init_db(connect):
    conn = connect()
    assert fetch(conn, "SELECT DATABASE()") == (("trade",),)

    bare = connect(database=None)
    assert fetch(bare, "SELECT DATABASE()") == ((None,),)
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        fetch(bare, "SELECT COUNT(*) FROM merchants")
    assert excinfo.value.args[0] == 1046  # No database selected
    # A qualified name works without a default database.
    assert fetch(bare, "SELECT COUNT(*) >= 0 FROM trade.merchants") == ((1,),)

    with bare.cursor() as cur:
        cur.execute("USE trade")
    assert fetch(bare, "SELECT DATABASE()") == (("trade",),)
    assert fetch(bare, "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)

    with pytest.raises(pymysql.err.OperationalError) as excinfo, bare.cursor() as cur:
        cur.execute("USE no_such_database")
    assert excinfo.value.args == (1049, "Unknown database 'no_such_database'")
    assert fetch(bare, "SELECT DATABASE()") == (("trade",),)

    with pytest.raises(pymysql.err.OperationalError) as excinfo:  # COM_INIT_DB
        bare.select_db("information_schema")  # unqualified, its tables would skip the view
    assert excinfo.value.args[0] == 1044
    bare.select_db("trade")
    assert fetch(bare, "SELECT DATABASE()") == (("trade",),)

    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        connect(database="no_such_database")
    assert excinfo.value.args == (1049, "Unknown database 'no_such_database'")


def test_version_and_connect_time_metadata(connect, direct):
    conn, second = connect(), connect()
    version = fetch(conn, "SELECT @@version")[0][0]
    backend_version = fetch(direct("a"), "SELECT @@version")[0][0]
    assert version == backend_version
    assert "MariaDB" in version

    # The greeting: protocol 10, a MariaDB-style version ("5.5.5-" so that old clients see
    # at least 5.5.5) naming the backend's release, a thread id per connection, utf8mb4.
    info = conn.get_server_info()
    assert info.startswith("5.5.5-")
    assert info.removeprefix("5.5.5-").split("-")[0] == version.split("-")[0]
    assert conn.get_proto_info() == 10
    assert conn.thread_id() > 0 and second.thread_id() > 0
    assert conn.thread_id() != second.thread_id()
    assert conn.character_set_name() == "utf8mb4"
    assert conn.server_charset == "utf8mb4"
    caps = conn.server_capabilities
    for flag in (CLIENT.PROTOCOL_41, CLIENT.SECURE_CONNECTION, CLIENT.TRANSACTIONS,
                 CLIENT.PLUGIN_AUTH, CLIENT.CONNECT_WITH_DB, CLIENT.MULTI_RESULTS):
        assert caps & flag, f"capability {flag:#x} not offered"
    assert caps & CLIENT.SSL  # the test config names a certificate (server.tls)
    assert conn.get_autocommit() is True
    conn.ping(reconnect=False)
    assert fetch(conn, "SELECT 1") == ((1,),)


def test_connection_id_is_the_handshake_thread_id(connect):
    conn = connect()
    assert fetch(conn, "SELECT CONNECTION_ID()") == ((conn.thread_id(),),)


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transaction"])
def test_show_warnings_after_a_warning(connect, autocommit):
    conn, other = connect(), connect()
    conn.autocommit(autocommit)
    warning = ("Warning", 1292, "Truncated incorrect INTEGER value: 'x'")
    with conn.cursor() as cur:
        cur.execute("SELECT CAST('x' AS SIGNED)")
        assert cur.fetchall() == ((0,),)
    # Another client's statements in between must neither take nor clear those warnings.
    assert fetch(other, "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)
    assert fetch(other, "SHOW WARNINGS") == ()
    assert fetch(conn, "SHOW WARNINGS") == (warning,)
    assert fetch(conn, "SHOW COUNT(*) WARNINGS") == ((1,),)
    assert conn.show_warnings() == (warning,)

    # A statement that uses a table and raises nothing clears them.
    assert fetch(conn, "SELECT COUNT(*) >= 0 FROM merchants") == ((1,),)
    assert fetch(conn, "SHOW WARNINGS") == ()
    if not autocommit:
        conn.rollback()


def test_show_warnings_shows_only_the_sessions_own_error(connect):
    failing, bystander = connect(), connect()
    with pytest.raises(pymysql.err.ProgrammingError) as excinfo:
        fetch(failing, "SELECT * FROM no_such_table_here")
    assert excinfo.value.args[0] == 1146
    assert fetch(bystander, "SHOW WARNINGS") == ()  # a new session has no diagnostics
    assert fetch(failing, "SHOW WARNINGS") == (
        ("Error", 1146, "Table 'trade.no_such_table_here' doesn't exist"),)


# -- metadata statements --------------------------------------------------------------------


def test_show_databases_and_tables(connect, direct):
    conn = connect()
    assert fetch(conn, "SHOW DATABASES") == (("information_schema",), ("trade",))

    backend = direct("a", "trade")
    before = {r[0] for r in fetch(backend, "SHOW TABLES")}
    tables = [r[0] for r in fetch(conn, "SHOW TABLES")]
    after = {r[0] for r in fetch(backend, "SHOW TABLES")}
    assert tables == sorted(tables)
    assert set(tables) >= CONFIGURED_TABLES
    # Anything else is an unsharded table of the default backend database (another test run
    # may be creating or dropping its own); never a shard database's table.
    assert set(tables) - CONFIGURED_TABLES <= before | after

    full = dict(fetch(conn, "SHOW FULL TABLES"))
    assert {t: full[t] for t in CONFIGURED_TABLES} == dict.fromkeys(CONFIGURED_TABLES,
                                                                     "BASE TABLE")


def test_describe_tables(connect):
    conn = connect()
    assert list(fetch(conn, "DESCRIBE merchants")) == MERCHANTS_DESCRIBE

    orders = fetch(conn, "DESCRIBE orders")
    assert [(r[0], r[1], r[2]) for r in orders] == [
        ("id", "bigint(20) unsigned", "NO"),
        ("user_id", "bigint(20) unsigned", "NO"),
        ("merchant_id", "bigint(20) unsigned", "NO"),
        ("status", "tinyint(4)", "NO"),
        ("total", "decimal(12,2)", "NO"),
        ("note", "varchar(255)", "YES"),
        ("created_at", "datetime(6)", "NO"),
        ("updated_at", "datetime(6)", "NO"),
    ]
    assert orders[0][3] == "PRI"

    ((table, ddl),) = fetch(conn, "SHOW CREATE TABLE orders")
    assert table == "orders"
    assert ddl.startswith("CREATE TABLE `orders` (")
    assert "user_0" not in ddl and "merchant_0" not in ddl


# -- logins ---------------------------------------------------------------------------------


def login(connect, dal, user, password, **kwargs):
    # Plain TCP: these tests follow the unencrypted auth paths (RSA for full auth); pymysql
    # would otherwise take the TLS DAL offers (test_tls.py covers auth over TLS).
    kwargs.setdefault("ssl_disabled", True)
    conn = TracingConnection(host=HOST, port=dal.port, user=user, password=password,
                             database="trade", connect_timeout=10, read_timeout=30, **kwargs)
    connect.track(conn)
    return conn


def assert_works(conn):
    assert fetch(conn, "SELECT DATABASE(), COUNT(*) >= 0 FROM merchants") == (("trade", 1),)


@pytest.mark.parametrize(("user", "trace"), [
    ("app", ["ok"]),
    ("legacy", ["ok"]),
    # Only a sha2 hash is stored: DAL switches the client to caching_sha2_password.
    ("modern", ["switch:caching_sha2_password", "fast-ok", "ok"]),
])
def test_login_with_the_announced_plugin(connect, dal, user, trace):
    conn = login(connect, dal, user, user)
    assert conn.announced_plugin == "mysql_native_password"
    assert conn.auth_trace == trace
    assert_works(conn)


@pytest.mark.parametrize(("user", "trace"), [
    ("app", ["fast-ok", "ok"]),
    ("modern", ["fast-ok", "ok"]),
    # Only the native hash is stored: DAL cannot check the fast-auth scramble and asks for
    # the password itself, which pymysql sends RSA-encrypted with DAL's public key.
    ("legacy", ["full-auth", "public-key", "ok"]),
])
def test_login_caching_sha2_password_first(connect, dal, user, trace):
    conn = login(connect, dal, user, user, sha2_first=True)
    assert conn.auth_trace == trace
    if "public-key" in trace:
        key = load_pem_public_key(conn.server_public_key)
        assert isinstance(key, RSAPublicKey) and key.key_size >= 2048
    assert_works(conn)


def test_full_auth_with_a_known_public_key(connect, dal):
    """A client that already has DAL's public key sends the encrypted password at once."""
    first = login(connect, dal, "legacy", "legacy", sha2_first=True)
    key = first.server_public_key
    again = login(connect, dal, "legacy", "legacy", sha2_first=True, server_public_key=key)
    assert again.auth_trace == ["full-auth", "ok"]
    assert_works(again)


@pytest.mark.parametrize(("user", "sha2_first"), [
    ("modern", False), ("legacy", True), ("app", True)],
    ids=["modern-switch", "legacy-full-auth", "app-fast-auth"])
def test_login_through_an_auth_plugin_map_handler(connect, dal, user, sha2_first):
    conn = login(connect, dal, user, user, sha2_first=sha2_first,
                 auth_plugin_map={"caching_sha2_password": CountingSha2Handler})
    assert conn.sha2_handler_calls == 1
    assert conn.auth_trace[-1] == "ok"
    assert_works(conn)


SEQ_BUG = pytest.mark.xfail(strict=True, reason=(
    "DAL sends the login ERR packet with sequence id 2 whatever the exchange was (session.py "
    "_login: self._fail(exc.err, 2)); after an auth switch or a full-auth round the client "
    "expects 4 or 6, so pymysql raises InternalError('Packet sequence number wrong - got 2 "
    "expected N') instead of error 1045"))


@pytest.mark.parametrize(("user", "password", "sha2_first"), [
    pytest.param("app", "wrong", False, id="app-native"),
    pytest.param("legacy", "wrong", False, id="legacy-native"),
    pytest.param("legacy", "", False, id="legacy-empty-password"),
    pytest.param("nobody", "wrong", False, id="unknown-user"),
    pytest.param("modern", "wrong", False, id="modern-after-auth-switch"),
    pytest.param("app", "wrong", True, id="app-sha2-fast"),
    pytest.param("modern", "wrong", True, id="modern-sha2-fast"),
    pytest.param("legacy", "wrong", True, id="legacy-sha2-full-auth"),
])
def test_wrong_password_is_refused_with_1045(connect, dal, user, password, sha2_first):
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        login(connect, dal, user, password, sha2_first=sha2_first)
    code, message = excinfo.value.args
    assert code == 1045
    assert message.startswith(f"Access denied for user '{user}'@")
    assert message.endswith("(using password: NO)" if not password
                            else "(using password: YES)")
    # DAL still serves after the refusal.
    assert_works(connect())
