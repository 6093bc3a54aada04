"""A merge-free scatter read streams shard by shard: DAL's memory does not grow with the result.

200,000 small orders are written straight into the 120 user shards (multi-row INSERTs, ids
with their genes), then read back with one ``SELECT * FROM orders`` through DAL while DAL's
resident memory is sampled from /proc. Before streaming, DAL decoded every row of every shard
into Python objects before sending the first one (several hundred bytes per row).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pymysql
import pymysql.cursors
import pytest

from tests.conftest import assert_pools_idle
from tests.own_dal import own_dal

ROWS_PER_SHARD = 1667  # x 120 shards = 200,040 rows
BASE_USER = 10_000_000
BASE_GENE = 9_000_000_000
MARK = "stream-test"


def instance_of(shard: int) -> str:
    return "a" if shard < 60 else "b"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def many_orders(direct, connect):
    # Warm first: the statement's plan (a sqlglot parse on a fresh DAL), its pools and the
    # streaming code are in place before the baseline is read.
    with connect().cursor() as cur:
        cur.execute("SELECT * FROM orders")

    def wipe() -> None:
        for instance, shards in (("a", range(60)), ("b", range(60, 120))):
            with direct(instance).cursor() as cur:
                for shard in shards:
                    cur.execute(f"DELETE FROM user_{shard:03d}.orders WHERE note = %s", (MARK,))
    wipe()
    started = time.monotonic()
    for instance, shards in (("a", range(60)), ("b", range(60, 120))):
        with direct(instance).cursor() as cur:
            for shard in shards:
                values = ",".join(
                    f"({(BASE_GENE + j) * 14400 + (j % 120) * 120 + shard},"
                    f"{(BASE_USER + j) * 120 + shard},{j},1,1.25,'{MARK}',"
                    "'2026-12-01 00:00:00','2026-12-01 00:00:00')"
                    for j in range(ROWS_PER_SHARD))
                cur.execute(f"INSERT INTO user_{shard:03d}.orders (id, user_id, merchant_id, "
                            f"status, total, note, created_at, updated_at) VALUES {values}")
    assert time.monotonic() - started < 120
    yield ROWS_PER_SHARD * 120
    wipe()


def test_a_scatter_of_200000_rows_streams_in_bounded_memory(dal, connect, many_orders) -> None:
    read_in_bounded_memory(dal.proc.pid, connect(cursorclass=pymysql.cursors.SSCursor,
                                                 read_timeout=300), many_orders)


def test_a_scatter_inside_an_xa_transaction_streams_in_bounded_memory(many_orders,
                                                                       tmp_path) -> None:
    """Mode xa: the read runs on the transaction's branches (mariadb-dump
    --single-transaction reads every table so), streamed as outside a transaction."""
    transactions = {"mode": "xa", "decision_log": str(tmp_path / "xa.log"),
                    "xid_prefix": f"strm{uuid.uuid4().hex[:4]}"}
    with own_dal(tmp_path, transactions=transactions) as xdal:
        warm = xdal.connect()
        with warm.cursor() as cur:  # the plan and the streaming code in place first
            cur.execute("SELECT * FROM orders LIMIT 1")
        warm.close()
        conn = xdal.connect(cursorclass=pymysql.cursors.SSCursor, read_timeout=300,
                            autocommit=False)
        with conn.cursor() as cur:
            cur.execute("SELECT @@in_transaction")  # opens the XA transaction
        read_in_bounded_memory(xdal.proc.proc.pid, conn, many_orders)  # type: ignore[union-attr]
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM orders WHERE note = %s", (MARK,))
            assert cur.fetchone()[0] == many_orders  # the session's transaction goes on
        conn.rollback()
        conn.close()
        assert_pools_idle(xdal.port)


def read_in_bounded_memory(pid: int, conn: pymysql.Connection, expected: int) -> None:
    """``SELECT * FROM orders`` read slowly through ``conn`` (an SSCursor) while the RSS of
    DAL's process ``pid`` is sampled: every marked row arrives, memory grows far less."""
    baseline = peak = rss_kib(pid)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marked = total = 0
    result_bytes = 0
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM orders")
            for row in cur:
                total += 1
                marked += row[5] == MARK
                result_bytes += sum(len(str(v)) + 1 for v in row)
    finally:
        stop.set()
        sampler.join()
    seconds = time.monotonic() - started
    growth = (peak - baseline) * 1024
    print(f"\nstreamed {total} rows ({result_bytes / 1e6:.1f} MB of text) in {seconds:.1f} s; "
          f"DAL RSS {baseline / 1024:.1f} MiB -> peak {peak / 1024:.1f} MiB "
          f"(+{growth / 1e6:.1f} MB)")
    assert marked == expected
    assert growth < result_bytes / 3, (growth, result_bytes)
    assert growth < 16e6


def test_a_branch_killed_mid_stream_ends_the_read_and_the_transaction(many_orders, direct,
                                                                       tmp_path) -> None:
    """The branch connection serving a streamed read is killed on the backend: the client's
    read ends with an error, the transaction then answers that it lost a branch, ROLLBACK
    ends it, and every connection is back in its pool."""
    transactions = {"mode": "xa", "decision_log": str(tmp_path / "xa.log"),
                    "xid_prefix": f"kill{uuid.uuid4().hex[:4]}"}
    with own_dal(tmp_path, transactions=transactions) as xdal:
        conn = xdal.connect(cursorclass=pymysql.cursors.SSCursor, read_timeout=60,
                            autocommit=False)
        cur = conn.cursor()
        cur.execute("SELECT * FROM orders")
        for _ in range(1000):
            assert cur.fetchone() is not None
        with direct("a", account="root").cursor() as root:  # the branch: the open transaction
            root.execute("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX")
            threads = [row[0] for row in root.fetchall()]
            assert len(threads) == 1, threads
            for thread in threads:
                root.execute(f"KILL CONNECTION {thread}")
        with pytest.raises(pymysql.MySQLError):
            while cur.fetchone() is not None:
                pass
        with pytest.raises(pymysql.MySQLError) as lost:
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = 5")
        assert "lost its connection" in lost.value.args[1]
        conn.rollback()
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM orders WHERE note = %s", (MARK,))
        assert cur.fetchone()[0] == many_orders
        conn.rollback()
        conn.close()
        assert_pools_idle(xdal.port)
