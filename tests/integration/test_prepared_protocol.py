"""COM_STMT_* through DAL with exact packets: routing by parameter values, the registry's
rules (ids, close, reset, limits), cursors, long data, and MariaDB's "last statement" id."""

from __future__ import annotations

import datetime
import time
from decimal import Decimal
from pathlib import Path

import pytest

from dal.wire.binary import DateTime
from dal.wire.constants import Status
from router.rows.types import ColumnType as T
from tests.dal_process import ROOT, DalProcess, free_port, write_config
from tests.psclient import PsClient, ServerError

U64 = (T.LONGLONG, True)
I8 = (T.TINY, False)
STR = (T.VAR_STRING, False)
DEC = (T.NEWDECIMAL, False)
DT = (T.DATETIME, False)
USERS = [700_003 + i * 7901 for i in range(6)]  # shards on both instances
WHEN = DateTime(2024, 5, 6, 7, 8, 9, 120000)
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
          "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")


def instance_of(shard: int) -> str:
    return "a" if shard < 60 else "b"


@pytest.fixture
def ps(dal, connect):
    """A binary-protocol client logged in to DAL (``connect`` checks the pools afterwards)."""
    client = PsClient(dal.port)
    assert client.login()[:1] == b"\x00"
    yield client
    client.close()


@pytest.fixture
def clean(connect):
    def wipe() -> None:
        with connect().cursor() as cur:
            for user in USERS:
                cur.execute("DELETE FROM orders WHERE user_id = %s", (user,))
    wipe()
    yield
    wipe()


def insert_order(ps: PsClient, user: int, note: str | None = "n", total: str = "1.50") -> int:
    stmt = ps.prepare(INSERT)
    assert stmt.params == 7 and stmt.columns == []
    ps.execute(stmt.id, [(U64, user), (U64, 31), (I8, 2), (DEC, total.encode()),
                         (STR, None if note is None else note.encode()), (DT, WHEN), (DT, WHEN)])
    result = ps.read_result()
    ps.close_statement(stmt.id)
    assert result.affected_rows == 1 and result.insert_id
    return result.insert_id


def direct_orders(direct, user: int) -> list[tuple]:
    shard = user % 120
    with direct(instance_of(shard)).cursor() as cur:
        cur.execute(f"SELECT id, user_id, status, total, note, created_at FROM "
                    f"user_{shard:03d}.orders WHERE user_id = %s ORDER BY id", (user,))
        return list(cur.fetchall())


def as_tuple(row: list) -> tuple:
    """A binary row of (id, user_id, status, total, note, created_at) as pymysql reads it."""
    oid, user, status, total, note, created = row
    return (oid, user, status, Decimal(total.decode()), note and note.decode(),
            datetime.datetime(*created))


def test_sharded_crud_routes_by_parameter_values(ps, direct, clean) -> None:
    ids = {user: insert_order(ps, user, f"note {user}") for user in USERS}
    for user, order_id in ids.items():
        rows = direct_orders(direct, user)  # the owning shard has it, read directly
        assert [r[0] for r in rows] == [order_id]
    select = ps.prepare("SELECT id, user_id, status, total, note, created_at FROM orders "
                        "WHERE user_id = ? ORDER BY id")
    assert [c.name for c in select.columns][:2] == [b"id", b"user_id"]
    assert {c.schema for c in select.columns} == {b"trade"}
    for user in USERS:  # one statement, executed per user: each goes to its own shard
        ps.execute(select.id, [(U64, user)])
        result = ps.read_result()
        assert {c.schema for c in result.columns} == {b"trade"}
        assert [as_tuple(r) for r in result.rows] == direct_orders(direct, user)
    update = ps.prepare("UPDATE orders SET note = ?, status = ? WHERE user_id = ? AND id = ?")
    ps.execute(update.id, [(STR, b"changed"), (I8, -3), (U64, USERS[0]), (U64, ids[USERS[0]])])
    assert ps.read_result().affected_rows == 1
    assert direct_orders(direct, USERS[0])[0][2:5] == (-3, Decimal("1.50"), "changed")
    # By order id alone (the gene routes it), and IN over parameters on both instances.
    by_id = ps.run("SELECT id, user_id, status, total, note, created_at FROM orders WHERE id = ?",
                   [(U64, ids[USERS[1]])])
    assert [as_tuple(r) for r in by_id.rows] == direct_orders(direct, USERS[1])
    some = ps.run("SELECT id, user_id, status, total, note, created_at FROM orders "
                  "WHERE user_id IN (?, ?, ?) ORDER BY id", [(U64, u) for u in USERS[:3]])
    expected = sorted(r for u in USERS[:3] for r in direct_orders(direct, u))
    assert [as_tuple(r) for r in some.rows] == expected
    # A scatter with an aggregate: merged by DAL, encoded as binary rows.
    agg = ps.run("SELECT COUNT(*), SUM(total), MAX(created_at) FROM orders WHERE user_id IN "
                 "(?, ?, ?, ?, ?, ?) AND status > ?", [*((U64, u) for u in USERS), (I8, -10)])
    assert agg.rows[0][0] == len(USERS) and Decimal(agg.rows[0][1].decode()) == Decimal("9.00")
    assert agg.rows[0][2] == WHEN
    delete = ps.prepare("DELETE FROM orders WHERE user_id = ? AND id = ?")
    for user, order_id in ids.items():
        ps.execute(delete.id, [(U64, user), (U64, order_id)])
        assert ps.read_result().affected_rows == 1
        assert direct_orders(direct, user) == []


def test_merchants_crud(ps, direct) -> None:
    name = f"ps-{time.time_ns()}"
    created = ps.run("INSERT INTO merchants (name, region_id, rating, created_at) "
                     "VALUES (?, ?, ?, ?)", [(STR, name.encode()), ((T.LONG, False), 7),
                                             (DEC, b"4.25"), (DT, WHEN)])
    merchant_id = created.insert_id
    assert merchant_id
    row = ps.run("SELECT id, name, region_id, rating, created_at FROM merchants WHERE id = ?",
                 [(U64, merchant_id)]).rows
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT id, name, region_id, rating, created_at FROM merchants WHERE id = %s",
                    (merchant_id,))
        expected = cur.fetchone()
    assert row == [[expected[0], name.encode(), 7, b"4.25", WHEN]]
    changed = ps.run("UPDATE merchants SET region_id = ? WHERE id = ?",
                     [((T.LONG, False), None), (U64, merchant_id)])
    assert changed.affected_rows == 1
    gone = ps.run("DELETE FROM merchants WHERE id = ?", [(U64, merchant_id)])
    assert gone.affected_rows == 1
    with direct("a", "trade").cursor() as cur:
        assert cur.execute("SELECT 1 FROM merchants WHERE id = %s", (merchant_id,)) == 0


def test_close_of_unknown_or_closed_ids_is_silent(ps) -> None:
    stmt = ps.prepare("SELECT 1")
    ps.close_statement(stmt.id)
    ps.close_statement(stmt.id)  # node mysql2 closes twice
    ps.close_statement(123456)
    seq, payload = ps.ping()  # the next reply is the ping's: nothing came in between
    assert seq == 1 and payload[:1] == b"\x00"
    ps.execute(stmt.id)
    with pytest.raises(ServerError) as info:
        ps.read_result()
    assert info.value.code == 1243


def test_last_prepared_id_runs_the_statement_just_prepared(ps, clean) -> None:
    from dal.wire.framing import frame

    user = USERS[2]
    packet = frame(b"\x16" + b"SELECT ? + 1, ?", 0)
    packet += ps.execute(0xFFFFFFFF, [(U64, 41), (STR, b"x")], send=False)
    ps.send(packet)  # back to back, as MariaDB Connector/C pipelines them
    stmt = ps.read_prepare()
    assert ps.read_result().rows == [[42, b"x"]]
    ps.close_statement(stmt.id)
    order_id = insert_order(ps, user)
    assert order_id


def test_cursor_fetch_in_batches(ps, clean) -> None:
    user = USERS[3]
    ids = sorted(insert_order(ps, user, f"c{i}") for i in range(5))
    for sql, params in [
        ("SELECT id FROM orders WHERE user_id = ? ORDER BY id", [(U64, user)]),  # one shard
        ("SELECT id FROM orders WHERE user_id IN (?, ?) ORDER BY id", [(U64, user),
                                                                      (U64, USERS[4])]),
    ]:
        stmt = ps.prepare(sql)
        ps.execute(stmt.id, params, flags=1)
        head = ps.read_result(cursor=True)
        assert head.status & Status.CURSOR_EXISTS
        got = []
        for _ in range(10):
            batch = ps.fetch(stmt.id, 2, head.columns)
            got += [r[0] for r in batch.rows]
            assert len(batch.rows) <= 2
            if batch.status & Status.LAST_ROW_SENT:
                break
        assert got == ids
        with pytest.raises(ServerError) as info:  # the cursor closed after its last row
            ps.fetch(stmt.id, 2, head.columns)
        assert info.value.code == 1421
        ps.close_statement(stmt.id)


def test_long_data_and_reset(ps, direct, clean) -> None:
    user = USERS[5]
    order_id = insert_order(ps, user)
    stmt = ps.prepare("UPDATE orders SET note = ? WHERE user_id = ? AND id = ?")
    ps.long_data(stmt.id, 0, b"discarded")
    assert ps.reset(stmt.id)[:1] == b"\x00"  # drops the long data sent so far
    ps.long_data(stmt.id, 0, b"first half, ")
    ps.long_data(stmt.id, 0, b"second half")
    ps.execute(stmt.id, [((T.BLOB, False), None), (U64, user), (U64, order_id)])
    assert ps.read_result().affected_rows == 1
    assert direct_orders(direct, user)[0][4] == "first half, second half"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_long_data_past_max_packet_is_not_kept(dal, ps) -> None:
    # 160 MiB of long data against server.max_packet's 64 MiB: DAL keeps at most the limit
    # (it used to keep every byte until the execution refused them), then refuses at execute.
    stmt = ps.prepare("SELECT LENGTH(?)")
    before = _rss_mib(dal.proc.pid)
    chunk = b"x" * (1 << 20)
    for _ in range(160):
        ps.long_data(stmt.id, 0, chunk)
    ps.execute(stmt.id, [((T.BLOB, False), None)])
    with pytest.raises(ServerError) as info:
        ps.read_result()
    assert info.value.code == 1210 and "server.max_packet" in info.value.message
    assert _rss_mib(dal.proc.pid) - before < 120
    ps.execute(stmt.id, [((T.VAR_STRING, False), b"abc")])  # the statement goes on
    assert ps.read_result().rows == [[3]]


def test_errors_keep_the_connection(ps) -> None:
    with pytest.raises(ServerError) as info:
        ps.prepare("SELEC nonsense")
    assert info.value.code == 1064
    with pytest.raises(ServerError) as info:
        ps.prepare("UPDATE orders SET note = ? WHERE status = 9")  # a scatter write: refused
    assert info.value.code == 1235
    stmt = ps.prepare("SELECT ?")
    ps.send(b"\x06\x00\x00\x00\x17" + stmt.id.to_bytes(4, "little") + b"\x00")  # truncated
    with pytest.raises(ServerError) as info:
        ps._check(ps.packet())
    assert info.value.code == 1210
    assert ps.run("SELECT ? * 2", [(U64, 21)]).rows == [[42]]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def small_dal(tmp_path_factory):
    """A DAL whose sessions may hold 50 prepared statements."""
    path = tmp_path_factory.mktemp("ps") / "dal.yaml"
    port = free_port()
    write_config(path, listen={"host": "127.0.0.1", "port": port},
                 metrics={"host": "127.0.0.1", "port": free_port()},
                 max_prepared_per_session=50)
    proc = DalProcess(path, port, ROOT / "var" / "test" / "dal-ps.log").start(metrics=False)
    yield proc
    assert proc.stop() == 0


def test_registry_limit_is_a_documented_error(small_dal) -> None:
    client = PsClient(small_dal.port)
    client.login()
    try:
        ids = [client.prepare(f"SELECT {i} + ?").id for i in range(50)]
        with pytest.raises(ServerError) as info:
            client.prepare("SELECT 'one too many'")
        assert info.value.code == 1461 and "max_prepared_per_session" in info.value.message
        client.close_statement(ids[0])
        assert client.run("SELECT ? - 1", [(U64, 1)]).rows == [[0]]
    finally:
        client.close()


@pytest.mark.timeout(600)
def test_100k_distinct_statements_do_not_grow_memory(dal, connect) -> None:
    """100,000 distinct statements in one session (closed), then a session that never closes
    its statements: DAL's RSS stays bounded (registry, metadata and backend caches)."""
    client = PsClient(dal.port)
    client.login()
    pid = dal.proc.pid
    marks = {}
    try:
        for i in range(100_000):
            # Distinct texts; every 10th a distinct shape too (a plan-cache miss).
            stmt = client.prepare(f"SELECT {i} + ? AS v" if i % 10 else f"SELECT ? AS v{i}")
            client.close_statement(stmt.id)
            if i + 1 in (20_000, 100_000):
                marks[i + 1] = rss_kb(pid)
        never_closed = PsClient(dal.port)
        never_closed.login()
        try:
            refused = 0
            for i in range(17_000):
                try:
                    never_closed.prepare(f"SELECT {i} * ? AS w")
                except ServerError as exc:
                    assert exc.code == 1461
                    refused += 1
            assert refused == 17_000 - 16382
            marks["open"] = rss_kb(pid)
        finally:
            never_closed.close()
    finally:
        client.close()
    growth_mb = (marks[100_000] - marks[20_000]) / 1024
    print(f"DAL RSS: {marks} kB; growth from 20k to 100k statements {growth_mb:.1f} MB")
    assert growth_mb < 40, marks
    assert (marks["open"] - marks[20_000]) / 1024 < 120, marks


def test_text_prepare_execute_deallocate(connect, direct) -> None:
    """Text PREPARE works on unsharded tables (it pins the session to its backend
    connection); on sharded tables DAL cannot see the statement, and refuses it."""
    conn = connect()
    with direct("a", "trade").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM merchants WHERE id > 0")
        expected = cur.fetchone()[0]
    with conn.cursor() as cur:
        cur.execute("PREPARE s FROM 'SELECT COUNT(*) FROM merchants WHERE id > ?'")
        cur.execute("SET @low = 0")
        cur.execute("EXECUTE s USING @low")
        assert cur.fetchone()[0] == expected
        cur.execute("DEALLOCATE PREPARE s")
        with pytest.raises(Exception) as info:
            cur.execute("PREPARE t FROM 'SELECT id FROM orders WHERE user_id = ?'")
        assert info.value.args[0] == 1235


def test_prepared_statements_inside_a_transaction_on_instance_b(ps, direct, clean) -> None:
    """In a transaction pinned to instance b, statements keyed to that shard and statements
    that touch no table run on its connection; ROLLBACK undoes the prepared writes."""
    user = next(u for u in USERS if u % 120 >= 60)
    begin = ps.prepare("BEGIN")
    ps.execute(begin.id)
    ps.read_result()
    order_id = insert_order(ps, user)
    assert ps.run("SELECT ? + 1", [(U64, 1)]).rows == [[2]]
    got = ps.run("SELECT id FROM orders WHERE user_id = ?", [(U64, user)])
    assert got.rows == [[order_id]]
    assert direct_orders(direct, user) == []  # not committed
    other = user + 1 if user % 120 < 119 else user - 1  # another shard, on instance b too
    with pytest.raises(ServerError) as info:
        ps.run("SELECT id FROM orders WHERE user_id = ?", [(U64, other)])
    assert info.value.code == 1235 and "refused inside it" in str(info.value)
    rollback = ps.prepare("ROLLBACK")
    ps.execute(rollback.id)
    assert not ps.read_result().status & Status.IN_TRANS
    assert ps.run("SELECT id FROM orders WHERE user_id = ?", [(U64, user)]).rows == []
