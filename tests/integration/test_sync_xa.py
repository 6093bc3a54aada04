"""`dal sync` under transaction mode xa, against the real test instances: the merchant copy gets
the rows of an XA transaction only once it is committed. A DAL killed with -9 between XA
PREPARE and its decision leaves branches that its restart rolls back: their rows never reach
the copy. Branches whose commit was decided before the kill are committed by that restart and
do reach it, also when the follower itself was killed between the PREPARE and the decision."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest

from tests.dal_process import ROOT, running_test_config
from tests.own_dal import own_dal
from tests.sync_process import (
    SHARDS,
    SyncProcess,
    backend,
    compare_dimensions,
    instance_of,
    read_all,
    run_verify,
    sync_config,
)

FIRST_USER = 930_000  # this file's users: FIRST_USER + 120 * n + shard
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
          "updated_at) VALUES (%s, %s, 1, %s, %s, NOW(6), NOW(6))")


def user_on(instance: str, rng: random.Random) -> int:
    """A user of this file whose shard is on ``instance`` (a: shards 0-59, b: 60-119)."""
    shard = rng.randrange(60) + (60 if instance == "b" else 0)
    return FIRST_USER + SHARDS * rng.randrange(500) + shard


@pytest.fixture(scope="module")
def sync_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    running_test_config()
    path = tmp_path_factory.mktemp("syncxa") / "sync.yaml"
    return path, sync_config(path)


def _rollback_dal_branches(raw: dict) -> None:
    """What a failed run left prepared holds row locks: roll back every DAL branch."""
    for inst in raw["instances"].values():
        with backend(inst) as conn, conn.cursor() as cur:
            cur.execute("XA RECOVER")
            for _, length, _, data in cur.fetchall():
                gtrid, bqual = bytes(data)[:length], bytes(data)[length:]
                if gtrid.startswith(b"dal:"):
                    with contextlib.suppress(pymysql.MySQLError):
                        cur.execute(f"XA ROLLBACK X'{gtrid.hex()}',X'{bqual.hex()}'")


@pytest.fixture
def follower(sync_setup: tuple[Path, dict]):
    """A fresh `dal sync` over a copy made equal by `dal verify dimensions --repair`."""
    path, raw = sync_setup
    _rollback_dal_branches(raw)
    proc = SyncProcess(path, raw).start("--reset")
    baseline = run_verify(path, "--repair", "--recheck", "0")
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    yield proc
    assert proc.stop() in (0, -9), proc.log()[-3000:]
    _rollback_dal_branches(raw)


def prepared(raw: dict, instance: str) -> set[str]:
    """The gtrids of the DAL branches prepared on ``instance``."""
    with backend(raw["instances"][instance]) as conn, conn.cursor() as cur:
        cur.execute("XA RECOVER")
        return {bytes(r[3])[:r[1]].decode() for r in cur.fetchall()
                if bytes(r[3]).startswith(b"dal:")}


def orders_of(raw: dict, prefix: str) -> dict[int, tuple]:
    """This file's orders in one dimension, read directly: {id: row}."""
    return {id_: row for rows in read_all(raw, prefix, "orders").values()
            for id_, row in rows.items() if row[1] >= FIRST_USER}


def assert_copy_equal(path: Path, raw: dict, sync: SyncProcess) -> None:
    """The follower caught up; verify and a direct read of every shard find no difference."""
    status = sync.wait_caught_up()
    for name, source in status["sources"].items():
        assert source["xa_prepared"] == 0 and source["lag_events"] == 0, (name, status)
    result = run_verify(path, "--recheck", "0")
    assert result.returncode == 0 and " 0 differences" in result.stdout, \
        result.stdout + result.stderr
    for table, col in (("orders", 2), ("order_items", 3)):
        problems = compare_dimensions(raw, table, shard_of=col)
        assert not problems, problems[:20]


def _xa_dal(directory: Path):
    return own_dal(directory, transactions={"mode": "xa",
                                            "decision_log": str(directory / "xa.log")})


def _kill(dal) -> None:
    dal.proc.proc.kill()  # SIGKILL: no drain, no XA COMMIT or ROLLBACK
    dal.proc.proc.wait()


@contextlib.contextmanager
def stopped_instance(raw: dict, name: str):
    """SIGSTOP the test instance's mariadbd (ours: started by `dal localdb up`), SIGCONT after."""
    datadir = ROOT / raw["instances"][name]["datadir"]
    pid = int(datadir.with_name(datadir.name + ".pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _commit_quietly(conn: pymysql.connections.Connection) -> None:
    """COMMIT whose answer never comes (the DAL is killed before it)."""
    with contextlib.suppress(pymysql.MySQLError):
        conn.query("COMMIT")


def _writer(dal, seed: int, stop: threading.Event, committed: list[int]) -> None:
    """Cross-instance (two-phase) and one-instance (one-phase) transactions until the DAL
    goes away; ``committed`` gets the order ids whose COMMIT answered OK."""
    rng = random.Random(seed)
    try:
        conn = dal.connect()
        with conn.cursor() as cur:
            while not stop.is_set():
                ids = []
                cur.execute("BEGIN")
                for instance in ("a", "b") if rng.random() < 0.7 else ("a", "a"):
                    cur.execute(INSERT, (user_on(instance, rng), rng.randrange(1, 10**6),
                                         Decimal(rng.randrange(100, 99999)) / 100, f"w{seed}"))
                    ids.append(cur.lastrowid)
                cur.execute("COMMIT")
                committed.extend(ids)
    except pymysql.MySQLError:
        return  # the DAL was killed: this transaction's outcome is recovery's


def test_undecided_branches_of_a_killed_dal_never_reach_the_copy(sync_setup, follower,
                                                                 tmp_path) -> None:
    path, raw = sync_setup
    rng = random.Random()
    committed: list[int] = []
    stop = threading.Event()
    with _xa_dal(tmp_path) as dal:
        writers = [threading.Thread(target=_writer, args=(dal, n, stop, committed), daemon=True)
                   for n in range(3)]
        for w in writers:
            w.start()
        time.sleep(2.0)
        # Four transactions with a branch on each instance, written, not committed.
        victims = []
        for n in range(4):
            conn = dal.connect()
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(INSERT, (user_on("b", rng), rng.randrange(1, 10**6), 1, f"v{n}"))
                cur.execute(INSERT, (user_on("a", rng), rng.randrange(1, 10**6), 1, f"v{n}"))
            victims.append(conn)
        before = prepared(raw, "a")
        with stopped_instance(raw, "b"):
            # COMMIT: XA PREPARE answers on a; on b it waits, and so does the decision.
            for conn in victims:
                threading.Thread(target=_commit_quietly, args=(conn,), daemon=True).start()
            deadline = time.monotonic() + 15
            while len(prepared(raw, "a") - before) < len(victims):
                assert time.monotonic() < deadline, prepared(raw, "a")
                time.sleep(0.05)
            time.sleep(0.3)
            _kill(dal)
        stop.set()
        for w in writers:
            w.join(30)
    assert committed, "no transaction committed before the kill"
    # The follower has read the prepared branches: it holds them, the copy has only what the
    # user shards show as committed.
    sync = follower
    status = sync.wait_caught_up()
    assert sum(s["xa_prepared"] for s in status["sources"].values()) >= 1, status
    port = raw["sync"]["metrics"]["port"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert re.search(r'^dal_sync_xa_prepared\{source="a"\} [1-9]', body, re.M), body
    users, merchants = orders_of(raw, "user_"), orders_of(raw, "merchant_")
    assert merchants == users

    with _xa_dal(tmp_path) as dal:  # start-up recovery: undecided branches rolled back
        rolled_back = dal.metric("dal_xa_transactions_total", outcome="recovered_rolled_back")
    assert rolled_back >= 1
    assert prepared(raw, "a") == set() and prepared(raw, "b") == set()
    assert_copy_equal(path, raw, sync)
    users, merchants = orders_of(raw, "user_"), orders_of(raw, "merchant_")
    assert merchants == users  # exactly the committed rows, values included
    assert set(committed) <= set(merchants)


def _prepare_directly(raw: dict, instance: str, gtrid: str, order_id: int, user: int,
                      merchant: int) -> None:
    """A DAL-named branch prepared and left undecided (its connection closed at once, as a
    killed DAL's would be)."""
    with backend(raw["instances"][instance]) as conn, conn.cursor() as cur:
        x = f"X'{gtrid.encode().hex()}',X'{instance.encode().hex()}'"
        cur.execute(f"XA START {x}")
        cur.execute(f"INSERT INTO user_{user % SHARDS:03d}.orders (id, user_id, merchant_id, "
                    "status, total, note, created_at, updated_at) VALUES (%s, %s, %s, 0, 9, "
                    "'undecided', NOW(6), NOW(6))", (order_id, user, merchant))
        cur.execute(f"XA END {x}")
        cur.execute(f"XA PREPARE {x}")


def _insert_directly(raw: dict, user: int, merchant: int, note: str) -> int:
    """A committed row written on the user shard itself (moves the follower's checkpoints)."""
    shard = user % SHARDS
    order_id = shard + SHARDS * (merchant % SHARDS) + SHARDS * SHARDS * random.randrange(10**6)
    with backend(instance_of(raw, "user", shard)) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO user_{shard:03d}.orders (id, user_id, merchant_id, status, "
                    "total, note, created_at, updated_at) VALUES (%s, %s, %s, 0, 1, %s, NOW(6), "
                    "NOW(6))", (order_id, user, merchant, note))
    return order_id


def _held_rows(raw: dict, gtrid: str) -> int:
    """Rows of ``gtrid``'s branches the follower saved beside its checkpoints, all targets."""
    like = f"%:{gtrid.encode().hex()}:%"
    total = 0
    for inst in raw["instances"].values():
        with backend(inst) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM dal_meta.sync_xa WHERE xid LIKE %s", (like,))
            total += cur.fetchone()[0]
    return total


@pytest.mark.parametrize("restart_follower", [False, True], ids=["follower-running",
                                                                 "follower-killed"])
def test_decided_branches_reach_the_copy_and_undecided_do_not(
        sync_setup, follower, tmp_path, monkeypatch, restart_follower: bool) -> None:
    path, raw = sync_setup
    rng = random.Random(11 + restart_follower)
    ua, ub = user_on("a", rng), user_on("b", rng)
    # A DAL that pauses after logging its commit decision is killed there: both branches stay
    # prepared, the decision is on disk.
    monkeypatch.setenv("DAL_XA_PAUSE_AFTER_DECISION", "30")
    log = tmp_path / "xa.log"
    with _xa_dal(tmp_path) as dal:
        conn = dal.connect()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(INSERT, (ua, 1001, 1, "decided"))
            decided = [cur.lastrowid]
            cur.execute(INSERT, (ub, 1002, 2, "decided"))
            decided.append(cur.lastrowid)
        threading.Thread(target=_commit_quietly, args=(conn,), daemon=True).start()
        deadline = time.monotonic() + 10
        while '"decision"' not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "no decision logged"
            time.sleep(0.05)
        _kill(dal)
    monkeypatch.delenv("DAL_XA_PAUSE_AFTER_DECISION")
    (gtrid,) = prepared(raw, "a")
    assert prepared(raw, "b") == {gtrid}
    # Two branches of a transaction whose decision was never logged.
    undecided_gtrid = f"dal:0:0:syncxa:{rng.randrange(10**9)}"
    undecided = [ua % SHARDS + SHARDS * 5 + SHARDS * SHARDS * rng.randrange(10**6),
                 ub % SHARDS + SHARDS * 6 + SHARDS * SHARDS * rng.randrange(10**6)]
    _prepare_directly(raw, "a", undecided_gtrid, undecided[0], ua, 5)
    _prepare_directly(raw, "b", undecided_gtrid, undecided[1], ub, 6)
    # Committed rows after the prepares on both sources: every checkpoint moves past them.
    later = [_insert_directly(raw, user_on(i, rng), rng.randrange(1000), "later")
             for i in ("a", "b")]
    sync = follower
    sync.wait_caught_up()
    merchants = orders_of(raw, "merchant_")
    assert set(later) <= set(merchants)
    assert not set(decided + undecided) & set(merchants), "a prepared XA reached the copy"
    if restart_follower:
        # Its checkpoints are past the prepares: the held rows are saved with them.
        assert _held_rows(raw, gtrid) >= 2 and _held_rows(raw, undecided_gtrid) >= 2
        sync.kill()

    with _xa_dal(tmp_path) as dal:  # commits the decided branches, rolls back the others
        assert dal.metric("dal_xa_transactions_total", outcome="recovered_committed") == 2
        assert dal.metric("dal_xa_transactions_total", outcome="recovered_rolled_back") == 2
    if restart_follower:
        sync.start()
    assert_copy_equal(path, raw, sync)
    users, merchants = orders_of(raw, "user_"), orders_of(raw, "merchant_")
    assert merchants == users
    assert set(decided) <= set(merchants)
    assert not set(undecided) & set(users) and not set(undecided) & set(merchants)
    for order_id, merchant in zip(decided, (1001, 1002), strict=True):
        row = read_all(raw, "merchant_", "orders")[merchant % SHARDS][order_id]
        assert row[2] == merchant and row[5] == "decided"
    # Decided, their saved rows go with the next checkpoints (at most 5 s when idle).
    deadline = time.monotonic() + 15
    while _held_rows(raw, gtrid) or _held_rows(raw, undecided_gtrid):
        assert time.monotonic() < deadline, "rows of decided XA transactions still saved"
        time.sleep(0.2)


def test_xa_statements_name_one_xid_and_held_rows_survive_their_json() -> None:
    """How the binlog spells an XID (MariaDB writes hex) and what DAL sends name one XA; a
    held row comes back from its saved form with every value type intact."""
    import datetime as dt

    from tools.sync_follow import Change
    from tools.sync_xa import decode_change, encode_change, parse_xa, xa_id

    dal_xid = xa_id(1, b"dal:0:1:2:3", b"b")
    assert parse_xa("XA COMMIT X'64616c3a303a313a323a33',X'62',1") == ("commit", dal_xid)
    assert parse_xa("xa rollback 'dal:0:1:2:3','b'") == ("rollback", dal_xid)
    assert parse_xa("XA COMMIT 'x' ONE PHASE") == ("commit", xa_id(1, b"x", b""))
    assert parse_xa("XA END X'78',X'',7") == ("end", xa_id(7, b"x", b""))
    assert parse_xa("XA RECOVER") == ("recover", None)
    assert parse_xa("COMMIT") is None
    row = {"id": 1, "total": Decimal("12.30"), "note": None, "raw": b"\x00\xff'",
           "at": dt.datetime(2026, 1, 2, 3, 4, 5, 6), "day": dt.date(2026, 1, 2),
           "span": dt.timedelta(hours=-3, microseconds=5), "tags": {"a", "b"}, "ratio": 0.5}
    change = Change("user_005", "orders", ("id",), dict(row, note="old"), row)
    assert Change(*decode_change(encode_change(change))) == change
