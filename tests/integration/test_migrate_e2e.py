"""The whole live migration through a running DAL (issue 21, first Done-when item): clients
insert, update and delete orders and items for the whole run while the phases go legacy ->
dual_legacy -> backfill (SIGKILLed once, resumed) -> shadow -> dual_sharded -> back to
dual_legacy (through shadow) -> dual_sharded -> sharded. Then: `dal migrate verify` (run at the
end of the last dual phase) finds 0 differences, every write a client saw acknowledged is on
the authoritative side, old ids are still found by id through DAL, and no shadow read
mismatched. Beside them a transactional client runs multi-statement transactions (BEGIN, or
autocommit=0 as PyMySQL and SQLAlchemy use) and rolls some back: what it rolled back is absent
everywhere at the end, and what it committed is on the authoritative side."""

from __future__ import annotations

import contextlib
import random
import re
import signal
import subprocess
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest

from tests.dal_process import ROOT, DalProcess, free_port, running_test_config
from tests.migrate_env import (
    DB,
    create,
    direct,
    legacy_rows,
    migrate,
    migrate_argv,
    prepare,
    user_rows,
    write_mt_config,
)

CLIENTS = 3
ORDERS = 1500
ORDER_COLS = ("user_id", "merchant_id", "status", "total", "note")
PHASE_SECONDS = 1.5  # of client writes in each phase


class Client(threading.Thread):
    """One application connection through DAL. It owns the orders of the users u with
    u % CLIENTS == its number, so that its model of them (the last acknowledged write of each
    row) is exact; a write that failed leaves its row uncertain (dropped from the model)."""

    def __init__(self, number: int, port: int, owned: dict[str, dict[int, tuple]],
                 stop: threading.Event, pause: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.port, self.stop, self.pause = number, port, stop, pause
        self.rng = random.Random(number)
        self.orders = dict(owned["orders"])  # id -> (user_id, merchant_id, status, total, note)
        self.items = dict(owned["order_items"])  # id -> (order_id, user_id, merchant_id, qty)
        self.deleted: set[tuple[str, int]] = set()
        self.acked = 0
        self.errors: list[str] = []
        self.paused = threading.Event()
        self.last_read: int | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="app", password="app",
                                   database=DB, autocommit=True, read_timeout=30)
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    if self.pause.is_set():
                        self.paused.set()
                        time.sleep(0.01)
                        continue
                    self.paused.clear()
                    self._step(cur)
            conn.close()
        except BaseException as exc:
            self.failure = exc

    def _step(self, cur) -> None:
        op = self.rng.choices(("insert", "update", "delete", "item", "read"), (3, 4, 1, 2, 3))[0]
        try:
            if op == "insert":
                self._insert(cur)
            elif op == "read":
                self.last_read = self._read(cur)
            elif self.orders:
                oid = self.rng.choice(list(self.orders))
                if oid == self.last_read:  # its shadow comparison may still be running
                    return
                if op == "update":
                    self._update(cur, oid)
                elif op == "delete":
                    self._delete_order(cur, oid)
                else:
                    self._item(cur, oid)
            self.acked += op != "read"
        except pymysql.err.MySQLError as exc:  # e.g. a write held past write_pause
            self.errors.append(f"{op}: {exc}")

    def _insert(self, cur) -> None:
        user = self.rng.randrange(1, 10_000) * CLIENTS + self.number
        merchant = self.rng.randrange(1, 500)
        row = (user, merchant, 1, Decimal(self.rng.randrange(100, 99999)) / 100, "new")
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                    "updated_at) VALUES (%s, %s, %s, %s, %s, NOW(6), NOW(6))", row)
        oid = int(cur.lastrowid)
        assert oid and oid not in self.orders
        self.orders[oid] = row
        cur.execute("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, price) "
                    "VALUES (%s, %s, %s, 'SKU-NEW', 1, 9.99)", (oid, user, merchant))
        self.items[int(cur.lastrowid)] = (oid, user, merchant, 1)

    def _update(self, cur, oid: int) -> None:
        user, merchant, _, _, _ = self.orders.pop(oid)  # uncertain until acknowledged
        status, total = self.rng.randrange(0, 6), Decimal(self.rng.randrange(100, 99999)) / 100
        note = f"c{self.number}-{self.acked}"
        cur.execute("UPDATE orders SET status = %s, total = %s, note = %s, updated_at = NOW(6) "
                    "WHERE id = %s", (status, total, note, oid))
        self.orders[oid] = (user, merchant, status, total, note)

    def _delete_order(self, cur, oid: int) -> None:
        del self.orders[oid]
        items = [i for i, item in self.items.items() if item[0] == oid]
        for i in items:
            del self.items[i]
        cur.execute("DELETE FROM order_items WHERE order_id = %s", (oid,))
        cur.execute("DELETE FROM orders WHERE id = %s", (oid,))
        self.deleted |= {("orders", oid)} | {("order_items", i) for i in items}

    def _item(self, cur, oid: int) -> None:
        items = [i for i, item in self.items.items() if item[0] == oid]
        if not items:
            return
        iid = self.rng.choice(items)
        order_id, user, merchant, qty = self.items.pop(iid)
        cur.execute("UPDATE order_items SET qty = qty + 1 WHERE id = %s", (iid,))
        self.items[iid] = (order_id, user, merchant, qty + 1)

    def _read(self, cur) -> int | None:
        if not self.orders:
            return None
        oid = self.rng.choice(list(self.orders))
        cur.execute("SELECT id, user_id, merchant_id, status, total, note FROM orders "
                    "WHERE id = %s", (oid,))
        rows = cur.fetchall()
        assert len(rows) == 1 and tuple(rows[0][1:]) == self.orders[oid], (oid, rows)
        return oid


class TxnClient(threading.Thread):
    """Multi-statement transactions on users of its own (none of the other clients'): a new
    order with an item, an update of one of its committed orders of the same user, then
    COMMIT, or ROLLBACK about a third of the time. Its model holds what it committed; the ids
    it rolled back must be nowhere at the end."""

    USERS = [1_000_003 + 7 * k for k in range(6)]

    def __init__(self, port: int, stop: threading.Event, pause: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.pause = port, stop, pause
        self.rng = random.Random(99)
        self.orders: dict[int, tuple] = {}  # id -> (user_id, merchant_id, status, total, note)
        self.items: dict[int, int] = {}  # committed item id -> its order id
        self.rolled_back: set[tuple[str, int]] = set()
        self.commits = self.rollbacks = 0
        self.errors: list[str] = []
        self.paused = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for autocommit in (True, False):  # BEGIN ... ; then autocommit=0
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="app",
                                       password="app", database=DB, autocommit=autocommit,
                                       read_timeout=30)
                deadline = time.monotonic() + 6
                while not self.stop.is_set() and (not autocommit or time.monotonic() < deadline):
                    if self.pause.is_set():
                        self.paused.set()
                        time.sleep(0.01)
                        continue
                    self.paused.clear()
                    self._transaction(conn, autocommit)
                conn.close()
        except BaseException as exc:
            self.failure = exc

    def _transaction(self, conn, autocommit: bool) -> None:
        user = self.rng.choice(self.USERS)
        merchant = 77
        row = (user, merchant, 2, Decimal(self.rng.randrange(100, 99999)) / 100, "txn")
        mine = [oid for oid, r in self.orders.items() if r[0] == user]
        touched: dict[int, tuple] = {}
        new: list[tuple[str, int]] = []
        try:
            with conn.cursor() as cur:
                if autocommit:
                    cur.execute("BEGIN")
                cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                            "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, NOW(6), "
                            "NOW(6))", row)
                oid = int(cur.lastrowid)
                new.append(("orders", oid))
                cur.execute("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, "
                            "price) VALUES (%s, %s, %s, 'SKU-TXN', 1, 1.50)",
                            (oid, user, merchant))
                new.append(("order_items", int(cur.lastrowid)))
                if mine:
                    old = self.rng.choice(mine)
                    total = Decimal(self.rng.randrange(100, 99999)) / 100
                    cur.execute("UPDATE orders SET total = %s WHERE id = %s", (total, old))
                    touched[old] = (*self.orders[old][:3], total, self.orders[old][4])
                cur.execute("SELECT total FROM orders WHERE id = %s", (oid,))
                assert cur.fetchall() == ((row[3],),), "a transaction misses its own write"
                if self.rng.random() < 0.35:
                    cur.execute("ROLLBACK")
                    self.rolled_back.update(new)
                    self.rollbacks += 1
                    return
                cur.execute("COMMIT")
        except pymysql.err.MySQLError as exc:  # e.g. held past write_pause by a switch
            self.errors.append(f"transaction: {exc}")
            for oid in touched:  # uncertain now
                self.orders.pop(oid, None)
            with contextlib.suppress(pymysql.err.MySQLError):
                conn.rollback()
            return
        self.commits += 1
        self.orders[oid] = row
        self.items[new[1][1]] = oid
        self.orders.update(touched)

    def check(self, raw: dict, shards: dict[str, dict[int, tuple]]) -> None:
        """Rolled back: on no user shard and not in legacy; committed: on the shards."""
        legacy = {t: legacy_rows(raw, t) for t in ("orders", "order_items")}
        for table, id_ in self.rolled_back:
            assert id_ not in shards[table] and id_ not in legacy[table], (table, id_)
        for oid, row in self.orders.items():
            assert tuple(shards["orders"][oid][1:6]) == row, ("orders", oid)
        for iid, oid in self.items.items():
            assert shards["order_items"][iid][1] == oid, ("order_items", iid)


def _owned(raw: dict) -> list[dict[str, dict[int, tuple]]]:
    orders = legacy_rows(raw, "orders")
    items = legacy_rows(raw, "order_items")
    out: list[dict[str, dict[int, tuple]]] = [{"orders": {}, "order_items": {}}
                                              for _ in range(CLIENTS)]
    for oid, r in orders.items():
        out[r[1] % CLIENTS]["orders"][oid] = (r[1], r[2], r[3], r[4], r[5])
    for iid, r in items.items():
        out[r[2] % CLIENTS]["order_items"][iid] = (r[1], r[2], r[3], r[5])
    return out


def _phase(path: Path, name: str) -> None:
    done = migrate(path, "phase", name, "--timeout", "20")
    assert done.returncode == 0, done.stdout + done.stderr


def _backfill_killed_once(path: Path, raw: dict) -> None:
    proc = subprocess.Popen(migrate_argv(path, "backfill", "--rows-per-second", "1500",
                                         "--chunk", "100"), cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            conn = direct(raw)
            with conn.cursor() as cur:
                cur.execute("SELECT rows_copied FROM dal_meta.migration_backfill "
                            "WHERE db = %s AND tbl = 'orders'", (DB,))
                row = cur.fetchone()
            conn.close()
            if row and row[0] >= 500:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the backfill ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = migrate(path, "backfill", "--rows-per-second", "0")
    assert done.returncode == 0, done.stdout + done.stderr


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(rf'^{name}\{{db="{DB}"\}} (\S+)$', text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found[0])


@pytest.fixture
def mt_dal(tmp_path: Path):
    running_test_config()
    path = tmp_path / "mt.yaml"
    raw = write_mt_config(path, listen={"host": "127.0.0.1", "port": free_port()},
                          metrics={"host": "127.0.0.1", "port": free_port()})
    create(path)
    prepare(path, ORDERS)
    proc = DalProcess(path, raw["server"]["listen"]["port"], tmp_path / "dal.log").start()
    yield path, raw, proc
    code = proc.stop()
    assert code == 0, proc.log()[-3000:]


def test_live_migration_through_dal_loses_nothing(mt_dal) -> None:
    path, raw, proc = mt_dal
    stop, pause = threading.Event(), threading.Event()
    clients = [Client(n, proc.port, owned, stop, pause) for n, owned in enumerate(_owned(raw))]
    txn = TxnClient(proc.port, stop, pause)
    for client in [*clients, txn]:
        client.start()
    try:
        time.sleep(PHASE_SECONDS)  # legacy
        _phase(path, "dual_legacy")
        _backfill_killed_once(path, raw)
        for name in ("shadow", "dual_sharded", "shadow", "dual_legacy", "shadow",
                     "dual_sharded"):
            time.sleep(PHASE_SECONDS)
            _phase(path, name)
        time.sleep(PHASE_SECONDS)
        pause.set()  # the comparison of the last dual phase, every client between writes
        for client in [*clients, txn]:
            assert client.paused.wait(30), "a client did not pause"
        verified = migrate(path, "verify", "--recheck", "0")
        pause.clear()
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "0 differences" in verified.stdout
        _phase(path, "sharded")
        time.sleep(PHASE_SECONDS)
    finally:
        stop.set()
        for client in [*clients, txn]:
            client.join(30)
    for client in clients:
        assert client.failure is None, repr(client.failure)
        assert client.acked > 20, f"client {client.number} hardly wrote"
    errors = [e for c in clients for e in c.errors]
    assert len(errors) <= 5, errors  # writes refused while a switch drained (write_pause)

    shards = {t: user_rows(raw, t) for t in ("orders", "order_items")}
    for client in clients:  # every acknowledged write is on the authoritative side (shards)
        for oid, row in client.orders.items():
            assert oid in shards["orders"], ("orders", oid)
            assert tuple(shards["orders"][oid][1:6]) == row, ("orders", oid)
        for iid, item in client.items.items():
            got = shards["order_items"].get(iid)
            assert got is not None and (got[1], got[2], got[3], got[5]) == item, iid
        for table, id_ in client.deleted:
            assert id_ not in shards[table], (table, id_)
    assert txn.failure is None, repr(txn.failure)
    assert txn.commits > 5 and txn.rollbacks > 2, (txn.commits, txn.rollbacks, txn.errors)
    assert len(txn.errors) <= 5, txn.errors
    txn.check(raw, shards)

    legacy_ids = sorted(i for c in clients for i in c.orders if i <= ORDERS)[:20]
    conn = pymysql.connect(host="127.0.0.1", port=proc.port, user="app", password="app",
                           database=DB, autocommit=True)
    try:
        with conn.cursor() as cur:
            for oid in legacy_ids[:10]:
                cur.execute("SELECT id FROM orders WHERE id = %s", (oid,))
                assert cur.fetchall() == ((oid,),), oid
            marks = ", ".join(["%s"] * len(legacy_ids))
            cur.execute(f"SELECT id FROM orders WHERE id IN ({marks}) ORDER BY id", legacy_ids)
            assert [r[0] for r in cur.fetchall()] == legacy_ids
            cur.execute("SELECT id FROM order_items WHERE order_id = %s", (legacy_ids[0],))
            found = {r[0] for r in cur.fetchall()}
            assert found and found >= {i for c in clients for i, it in c.items.items()
                                       if it[0] == legacy_ids[0]}
    finally:
        conn.close()
    metrics = raw["server"]["metrics"]["port"]
    assert _metric(metrics, "dal_migration_shadow_reads_total") > 0
    assert _metric(metrics, "dal_migration_shadow_mismatches_total") == 0
