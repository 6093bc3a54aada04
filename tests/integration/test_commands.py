"""Every command the front end accepts, through a raw client, with the outcome MySQL gives."""

from __future__ import annotations

import urllib.request
import uuid

import pymysql
import pytest

from dal.wire.messages import EOF
from router.rows.columns import ColumnDefinition
from tests.rawclient import RawClient, error_of

pytestmark = pytest.mark.usefixtures("connect")


@pytest.fixture
def client(dal):
    raw = RawClient(dal.port)
    assert raw.login()[:1] == b"\x00"
    yield raw
    raw.close()


def test_ping(client: RawClient) -> None:
    client.send(b"\x01\x00\x00\x00\x0e")
    seq, payload = client.read_packet()
    assert seq == 1
    assert payload[:1] == b"\x00"


def test_statistics_is_the_backends_status_line(client: RawClient) -> None:
    client.send(b"\x01\x00\x00\x00\x09")
    _, payload = client.read_packet()
    assert payload.startswith(b"Uptime: ")


def test_init_db_to_unknown_database_is_1049_and_keeps_the_old_one(client: RawClient) -> None:
    client.send(b"\x06\x00\x00\x00\x02nope!")
    err = error_of(client.read_packet()[1])
    assert err.code == 1049
    assert "nope!" in err.message
    rows = client.query(b"SELECT DATABASE()")
    assert rows[3] == b"\x05trade"


def test_set_option(client: RawClient) -> None:
    client.send(b"\x03\x00\x00\x00\x1b\x01\x00")  # multi-statements off
    _, payload = client.read_packet()
    assert payload[:1] == b"\xfe"
    assert EOF.decode(payload).warnings == 0
    client.send(b"\x03\x00\x00\x00\x1b\x00\x00")  # multi-statements on
    _, payload = client.read_packet()
    assert payload[:1] == b"\xfe"  # (test_multi_statements.py runs batches)
    client.send(b"\x03\x00\x00\x00\x1b\x02\x00")  # no such option
    assert error_of(client.read_packet()[1]).code == 1047


@pytest.mark.parametrize("table", ["merchants", "orders"])
def test_field_list_names_the_logical_database(client: RawClient, table: str) -> None:
    client.send(bytes((len(table) + 2, 0, 0, 0, 0x04)) + table.encode() + b"\x00")
    names = []
    while True:
        _, payload = client.read_packet()
        if payload[:1] == b"\xfe" and len(payload) < 9:
            break
        col = ColumnDefinition.decode(payload)
        assert col.schema == b"trade", "a shard database leaked into column metadata"
        assert col.table == table.encode()
        names.append(col.name)
    assert b"id" in names


def test_field_list_of_missing_table_is_the_backends_error(client: RawClient) -> None:
    client.send(b"\x07\x00\x00\x00\x04nosuch\x00")
    assert error_of(client.read_packet()[1]).code == 1146


def test_quit_closes(client: RawClient) -> None:
    client.send(b"\x01\x00\x00\x00\x01")
    assert client.closed_by_server()


def test_reset_connection_drops_session_state_and_rolls_back(connect, direct) -> None:
    name = f"reset-{uuid.uuid4()}"
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET @marker = 42")
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (name,))
        conn._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
        conn._read_ok_packet()
        cur.execute("SELECT @marker")
        assert cur.fetchone() == (None,)
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name=%s", (name,))
        assert cur.fetchone() == (0,), "an uncommitted insert survived COM_RESET_CONNECTION"


def test_transaction_commit_and_rollback(connect, direct) -> None:
    kept, dropped = f"kept-{uuid.uuid4()}", f"dropped-{uuid.uuid4()}"
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (dropped,))
        conn.rollback()
        cur.execute("BEGIN")
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (kept,))
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name=%s", (kept,))
        assert cur.fetchone() == (1,), "the transaction does not see its own insert"
        conn.commit()
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT name FROM merchants WHERE name IN (%s, %s)", (kept, dropped))
        assert cur.fetchall() == ((kept,),)
        cur.execute("DELETE FROM merchants WHERE name=%s", (kept,))


def test_disconnect_mid_transaction_rolls_back(connect, direct) -> None:
    name = f"orphan-{uuid.uuid4()}"
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (name,))
    conn.close()  # no commit
    # The connect fixture then asserts the pinned backend connection went back to its pool.
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name=%s", (name,))
        assert cur.fetchone() == (0,)


def test_session_variables_follow_the_session_not_the_connection(connect) -> None:
    strict, loose = connect(), connect()
    with strict.cursor() as a, loose.cursor() as b:
        a.execute("SET sql_mode = 'STRICT_ALL_TABLES'")
        b.execute("SET sql_mode = ''")
        for _ in range(5):  # interleaved: each statement may land on any pooled connection
            a.execute("SELECT @@sql_mode")
            assert a.fetchone() == ("STRICT_ALL_TABLES",)
            b.execute("SELECT @@sql_mode")
            assert b.fetchone() == ("",)


def test_show_warnings_sees_the_previous_statements_warning(connect) -> None:
    with connect().cursor() as cur:
        cur.execute("SELECT CAST('x1' AS SIGNED)")
        cur.execute("SHOW WARNINGS")
        rows = cur.fetchall()
        assert rows and rows[0][1] == 1292


def test_app_user_cannot_run_admin_statements(connect) -> None:
    with connect().cursor() as cur, pytest.raises(pymysql.err.OperationalError) as info:
        cur.execute("SHOW DAL POOLS")
    assert info.value.args[0] == 1227


def test_app_user_cannot_run_ddl(connect) -> None:
    with connect().cursor() as cur, pytest.raises(pymysql.err.OperationalError) as info:
        cur.execute("CREATE TABLE app_made (a INT)")
    assert info.value.args[0] == 1227


def test_admin_ddl_on_unsharded_table_passes_through(connect, direct) -> None:
    table = f"scratch_{uuid.uuid4().hex[:8]}"
    with connect("admin", "admin").cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (a INT PRIMARY KEY)")
        try:
            cur.execute("SHOW TABLES")
            assert (table,) in cur.fetchall()
            with pytest.raises(pymysql.err.NotSupportedError) as info:
                cur.execute("ALTER TABLE orders ADD COLUMN x INT")
            assert info.value.args[0] == 1235
            assert "dal schema apply" in info.value.args[1]
        finally:
            cur.execute(f"DROP TABLE {table}")


def test_metrics_endpoint_reports_pools(dal_config, connect) -> None:
    with connect().cursor() as cur:
        cur.execute("SELECT 1")
    port = dal_config[1]["server"]["metrics"]["port"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'dal_pool_max{instance="a"} 16.0' in body
    assert "dal_statements_total" in body
    assert "dal_plan_cache_total" in body
