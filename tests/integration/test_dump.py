"""Backups with `mariadb-dump` through DAL, restored into a scratch database on one instance.

A DBA backs up the logical database `trade` as the admin user (the role meant for
maintenance; `app` would do as well, everything the dump sends is on its allowlist too). The
restored copy must hold exactly what DAL shows: every order and order item of every user shard,
the unsharded merchants and the broadcast regions. A backup that silently lacks the sharded
data is the worst kind, so the counts are also checked against the shards directly.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pymysql
import pymysql.cursors
import pytest

from tests.conftest import assert_pools_idle
from tests.dal_process import ROOT, dba_login, start_own_dal

DUMP = shutil.which("mariadb-dump") or "/usr/bin/mariadb-dump"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"
TABLES = ("merchants", "order_items", "orders", "regions")
USERS = [7_000_003 + i * 131 for i in range(150)]  # spread over the shards of both instances
REGIONS = range(880_000, 880_005)
MAX_MERGE_ROWS = 100  # a DAL of the xa test's own: less than the 300 orders of `data`

pytestmark = pytest.mark.skipif(not Path(DUMP).exists(), reason="mariadb-dump is not installed")


@pytest.fixture
def data(connect):
    """A few hundred orders and items over 150 users, merchants and regions, through DAL."""
    mark = f"dump-{secrets.token_hex(4)}"
    app = connect()
    with app.cursor() as cur:
        for n, user in enumerate(USERS):
            for k in range(2):
                cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                            "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, "
                            "'2026-12-01 10:00:00.000001', NOW(6))",
                            (user, 500 + n % 37, k, f"{n}.{k}5", f"{mark} 'q' \\ {n}"))
                order = cur.lastrowid
                cur.execute("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, "
                            "price) VALUES (%s, %s, %s, %s, 2, 9.99), (%s, %s, %s, %s, 1, 0.5)",
                            (order, user, 500 + n % 37, f"s{n}", order, user, 500 + n % 37,
                             f"t{n}"))
        cur.execute("INSERT INTO merchants (name, region_id, rating) VALUES (%s, 1, 4.5), "
                    "(%s, NULL, NULL)", (f"{mark}-m1", f"{mark}-m2"))
    with connect("admin", "admin").cursor() as cur:
        for region in REGIONS:
            cur.execute("INSERT INTO regions (id, name, parent_id) VALUES (%s, %s, NULL)",
                        (region, f"{mark}-r{region}"))
    yield mark
    with app.cursor() as cur:
        cur.execute("DELETE FROM order_items WHERE user_id IN %s", (USERS,))
        cur.execute("DELETE FROM orders WHERE user_id IN %s", (USERS,))
        cur.execute("DELETE FROM merchants WHERE name LIKE %s", (f"{mark}%",))
    with connect("admin", "admin").cursor() as cur:
        cur.execute("DELETE FROM regions WHERE id IN %s", (list(REGIONS),))


@pytest.fixture
def scratch(direct, backends):
    """An empty database on instance a to restore into, dropped after the test."""
    name = f"dump_check_{secrets.token_hex(4)}"
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield name
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "LANG": "C.UTF-8"}


def dump(port: int, tmp_path: Path, *options: str) -> Path:
    """Run mariadb-dump through DAL; the dump file. It must exit 0 and complain of nothing."""
    out = tmp_path / "dump.sql"
    with out.open("wb") as sink:
        proc = subprocess.run([DUMP, "--no-defaults", "--verbose", "-h127.0.0.1", f"-P{port}",
                               "-uadmin", "-padmin", *options], stdout=sink,
                              stderr=subprocess.PIPE, text=True, timeout=300, env=_env(tmp_path),
                              check=False)
    complaints = [line for line in proc.stderr.splitlines() if not line.startswith("-- ")]
    assert proc.returncode == 0 and not complaints, proc.stderr
    return out


def restore(backend: dict, database: str, path: Path, tmp_path: Path) -> None:
    with path.open("rb") as source:
        user, password = dba_login()  # the scratch database is the DBA account's
        proc = subprocess.run([CLIENT, "--no-defaults", f"-h{backend['host']}",
                               f"-P{backend['port']}", f"-u{user}",
                               f"-p{password}", database], stdin=source,
                              capture_output=True, timeout=300, env=_env(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def rows_of(conn, table: str, database: str | None = None) -> tuple:
    name = f"{database}.{table}" if database else table
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {name} ORDER BY id")
        return cur.fetchall()


def shard_count(direct, table: str) -> int:
    """Rows of ``table`` summed over the 120 user shards, read on the backends directly."""
    total = 0
    for instance, shards in (("a", range(60)), ("b", range(60, 120))):
        union = " UNION ALL ".join(f"SELECT COUNT(*) AS n FROM user_{s:03d}.{table}"
                                   for s in shards)
        with direct(instance).cursor() as cur:
            cur.execute(f"SELECT SUM(n) FROM ({union}) AS counts")
            total += int(cur.fetchone()[0])
    return total


def checksum(direct, database: str, table: str) -> int:
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"CHECKSUM TABLE {database}.{table}")
        return int(cur.fetchone()[1])


@pytest.mark.parametrize("options", [(), ("--single-transaction",)],
                         ids=["defaults", "single-transaction"])
def test_dump_through_dal_restores_every_table(options, dal, connect, direct, backends, data,
                                               scratch, tmp_path) -> None:
    path = dump(dal.port, tmp_path, *options, "trade")
    restore(backends["a"], scratch, path, tmp_path)
    assert_restored(connect("admin", "admin"), direct, scratch)


@pytest.mark.parametrize("options", [(), ("--single-transaction",)],
                         ids=["defaults", "single-transaction"])
def test_dump_in_transaction_mode_xa_streams_past_max_merge_rows(options, connect, direct,
                                                                 backends, data, scratch,
                                                                 tmp_path) -> None:
    """Mode xa, the shipped default: both dumps restore every row of a table larger than
    server.max_merge_rows. A scatter read inside an XA transaction streams on the
    transaction's branches (first checked here: it sees the transaction's own write); that its
    memory stays bounded is shown by test_scatter_stream.py. (--single-transaction's SET
    SESSION TRANSACTION pins the session, so its START TRANSACTION runs on that connection and
    its scatter reads beside it, as in mode single.)"""
    transactions = {"mode": "xa", "decision_log": str(tmp_path / "xa.log"),
                    "xid_prefix": f"dump{secrets.token_hex(3)}"}
    proc, _, _ = start_own_dal(tmp_path, ROOT / "var" / "test" / "dal-own.log",
                               {"transactions": transactions}, max_merge_rows=MAX_MERGE_ROWS)
    try:
        admin = pymysql.connect(host="127.0.0.1", port=proc.port, user="admin",
                                password="admin", database="trade", autocommit=False)
        with admin.cursor() as cur:  # a transaction's stream reads its own writes
            cur.execute("SELECT COUNT(*) FROM orders")
            count = cur.fetchone()[0]
            assert count > MAX_MERGE_ROWS
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 1, 0, 1, %s, NOW(), NOW())",
                        (USERS[-1], f"{data}-uncommitted"))
            cur.execute("SELECT id, note FROM orders")
            rows = cur.fetchall()
            assert len(rows) == count + 1 and f"{data}-uncommitted" in {n for _, n in rows}
            admin.rollback()
        admin.close()
        path = dump(proc.port, tmp_path, *options, "trade")
        restore(backends["a"], scratch, path, tmp_path)
        assert_restored(connect("admin", "admin"), direct, scratch)
        assert_pools_idle(proc.port)
    finally:
        proc.stop()


def assert_restored(admin, direct, scratch: str) -> None:
    """The restored copy in ``scratch`` holds what DAL shows (``admin``: a DAL connection)
    of every table: every row of every shard, and the unsharded tables bit for bit."""
    restored = direct("a", account="dba")
    for table in TABLES:
        through_dal = rows_of(admin, table)
        assert rows_of(restored, table, scratch) == through_dal, table
    for table in ("orders", "order_items"):
        with admin.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            dal_count = cur.fetchone()[0]
        assert dal_count == shard_count(direct, table) >= 2 * len(USERS)
        assert len(rows_of(restored, table, scratch)) == dal_count
    # Unsharded and broadcast tables: the restored copy is the default database's, bit for bit.
    for table in ("merchants", "regions"):
        assert checksum(direct, scratch, table) == checksum(direct, "trade", table)


def test_dumping_one_sharded_table_dumps_its_rows(dal, connect, direct, backends, data, scratch,
                                                  tmp_path) -> None:
    """`mariadb-dump trade orders` used to exit 0 with "Couldn't read status information for
    table orders" and no rows: SHOW TABLE STATUS did not list sharded tables."""
    path = dump(dal.port, tmp_path, "trade", "orders")
    restore(backends["a"], scratch, path, tmp_path)
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"SHOW TABLES FROM {scratch}")
        assert cur.fetchall() == (("orders",),)
    assert rows_of(direct("a", account="dba"), "orders", scratch) == rows_of(connect(), "orders")


def test_show_table_status_lists_every_logical_table(connect, direct) -> None:
    """Sharded and bound tables answer from the first user shard (Rows is that shard's
    estimate), the others from the default database; LIKE and WHERE filter as MariaDB does."""
    with connect("admin", "admin").cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW TABLE STATUS")
        listed = {row["Name"]: row for row in cur.fetchall()}
        assert set(TABLES) <= set(listed)
        cur.execute("SHOW TABLE STATUS LIKE 'order\\_items'")
        assert [row["Name"] for row in cur.fetchall()] == ["order_items"]
        cur.execute("SHOW TABLE STATUS FROM trade WHERE Name IN ('orders', 'regions')")
        assert [row["Name"] for row in cur.fetchall()] == ["orders", "regions"]
    with direct("a", account="dba").cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW TABLE STATUS FROM user_000 LIKE 'orders'")
        shard = cur.fetchone()
    for column in ("Engine", "Row_format", "Collation", "Create_options", "Comment"):
        assert listed["orders"][column] == shard[column], column


def test_lock_tables_read_on_sharded_tables_is_accepted_and_locks_nothing(connect) -> None:
    app = connect()
    with app.cursor() as cur:
        cur.execute("LOCK TABLES orders READ /*!32311 LOCAL */, order_items READ, "
                    "merchants READ /*!32311 LOCAL */")
        cur.execute("SELECT COUNT(*) FROM orders")  # a scatter runs beside it
        assert cur.fetchone()[0] >= 0
        cur.execute("UNLOCK TABLES")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("LOCK TABLES orders WRITE")
        assert refused.value.args[0] == 1235 and "cannot lock" in refused.value.args[1]


def test_scatter_reads_in_a_snapshot_transaction_only(connect) -> None:
    """mariadb-dump --single-transaction's session: the scatter reads of a transaction begun
    WITH CONSISTENT SNAPSHOT run beside it; an ordinary transaction still refuses them."""
    with connect().cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */")
        cur.execute("SAVEPOINT sp")
        cur.execute("SELECT /*!40001 SQL_NO_CACHE */ COUNT(*) FROM orders")
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute("COMMIT")
        cur.execute("START TRANSACTION")
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SELECT COUNT(*) FROM orders")
        assert refused.value.args[0] == 1235
        cur.execute("ROLLBACK")
