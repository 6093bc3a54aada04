"""`dal migrate demo|backfill|verify` against the test instances, without a DAL: verify finds
and repairs each kind of difference on either side; a backfill killed with SIGKILL resumes and
copies every row exactly once; a backfill racing writes that follow the mirror protocol (the
legacy row locked while its copy is written, as DAL's dual writes do) never resurrects a
deleted row or overwrites a newer version."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.dal_process import ROOT, running_test_config
from tests.migrate_env import (
    DIFF,
    LEGACY,
    SHARDS,
    create,
    dal,
    direct,
    legacy_rows,
    migrate,
    migrate_argv,
    prepare,
    set_phase,
    shard_of,
    user_rows,
    write_mt_config,
)


@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    running_test_config()
    path = tmp_path_factory.mktemp("migrate") / "mt.yaml"
    raw = write_mt_config(path)
    create(path)
    return path, raw


def _checkpoint(raw: dict, table: str) -> tuple[int, int, int] | None:
    conn = direct(raw)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT last_id, rows_copied, done FROM dal_meta.migration_backfill "
                        "WHERE db = 'mt' AND tbl = %s", (table,))
            return cur.fetchone()
    finally:
        conn.close()


def _assert_equal(raw: dict) -> None:
    for table in ("orders", "order_items"):
        legacy, shards = legacy_rows(raw, table), user_rows(raw, table)
        assert shards.keys() == legacy.keys(), table
        assert shards == legacy, table


def _backfilled(path: Path, raw: dict, rows: int) -> None:
    prepare(path, rows)
    set_phase(raw, "dual_legacy")
    done = migrate(path, "backfill", "--rows-per-second", "0")
    assert done.returncode == 0, done.stdout + done.stderr


def test_backfill_refuses_outside_dual_legacy_and_shadow(mt: tuple[Path, dict]) -> None:
    path, raw = mt
    prepare(path, 50)
    done = migrate(path, "backfill")
    assert done.returncode == 3
    assert "phase is legacy" in done.stderr and "dal migrate phase dual_legacy" in done.stderr
    set_phase(raw, "dual_sharded")
    done = migrate(path, "backfill")
    assert done.returncode == 3 and "shards are authoritative" in done.stderr
    assert _checkpoint(raw, "orders") is None


def _on_shard(raw: dict, user_id: int, sql: str, args: tuple = ()) -> None:
    instance, database = shard_of(user_id)
    conn = direct(raw, instance, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    finally:
        conn.close()


def _inject_into_shards(raw: dict) -> set[tuple[str, str, int]]:
    orders = legacy_rows(raw, "orders")
    items = legacy_rows(raw, "order_items")
    (o1, o2, o3), i1 = random.Random(5).sample(sorted(orders), 3), min(items)
    _on_shard(raw, orders[o1][1], "DELETE FROM orders WHERE id = %s", (o1,))
    _on_shard(raw, items[i1][2], "UPDATE order_items SET qty = qty + 7 WHERE id = %s", (i1,))
    _on_shard(raw, orders[o2][1], "UPDATE orders SET total = %s WHERE id = %s",
              (orders[o3][4], o2))
    _on_shard(raw, orders[o3][1], "UPDATE orders SET total = %s WHERE id = %s",
              (orders[o2][4], o3))
    extra = max(items) + 1000
    _on_shard(raw, 5, "INSERT INTO order_items VALUES (%s, 1, 5, 5, 'SKU-X', 1, 1.00)", (extra,))
    expected = {("missing", "orders", o1), ("changed", "order_items", i1),
                ("extra", "order_items", extra)}
    if orders[o2][4] != orders[o3][4]:  # the swap of two equal totals is no difference
        expected |= {("changed", "orders", o2), ("changed", "orders", o3)}
    return expected


def _inject_into_legacy(raw: dict) -> set[tuple[str, str, int]]:
    orders = legacy_rows(raw, "orders")
    items = legacy_rows(raw, "order_items")
    (o1, o2, o3), i1 = random.Random(6).sample(sorted(orders), 3), max(items)
    conn = direct(raw, database=LEGACY)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM orders WHERE id = %s", (o1,))
            cur.execute("UPDATE order_items SET sku = 'SKU-CHANGED' WHERE id = %s", (i1,))
            cur.execute("UPDATE orders a JOIN orders b ON a.id = %s AND b.id = %s "
                        "SET a.note = b.note, b.note = a.note, a.status = b.status, "
                        "b.status = a.status", (o2, o3))
            cur.execute("INSERT INTO orders VALUES (%s, 3, 3, 1, 1.00, NULL, NOW(6), NOW(6))",
                        (max(orders) + 500,))
    finally:
        conn.close()
    expected = {("missing", "orders", o1), ("changed", "order_items", i1),
                ("extra", "orders", max(orders) + 500)}
    if orders[o2][5:3:-1] != orders[o3][5:3:-1] or orders[o2][3] != orders[o3][3]:
        expected |= {("changed", "orders", o2), ("changed", "orders", o3)}
    return expected


@pytest.mark.parametrize("phase", ["dual_legacy", "dual_sharded"])
def test_verify_finds_and_repairs_each_kind_of_difference(mt: tuple[Path, dict],
                                                          phase: str) -> None:
    path, raw = mt
    _backfilled(path, raw, 1500)
    clean = migrate(path, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 differences" in clean.stdout
    set_phase(raw, phase)
    expected = _inject_into_shards(raw) if phase == "dual_legacy" else _inject_into_legacy(raw)

    found = migrate(path, "verify", "--recheck", "0")
    assert found.returncode == 4, found.stdout + found.stderr
    reported = {(k, t, int(i)) for k, t, i in DIFF.findall(found.stdout)}
    assert reported == expected, found.stdout

    repaired = migrate(path, "verify", "--repair", "--recheck", "0")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"{len({i for _, _, i in expected})} ids repaired, 0 left" in repaired.stdout
    again = migrate(path, "verify")
    assert again.returncode == 0 and "0 differences" in again.stdout, again.stdout
    _assert_equal(raw)
    copy = dal("verify", "dimensions", "--config", str(path), "--recheck", "0", "--no-progress",
               "--state", str(path.with_name("verify-dimensions.json")))
    assert copy.returncode == 0, copy.stdout + copy.stderr  # the merchant copy was kept too


def test_backfill_killed_with_sigkill_resumes_and_copies_each_row_once(
        mt: tuple[Path, dict]) -> None:
    path, raw = mt
    prepare(path, 3000)
    set_phase(raw, "dual_legacy")
    proc = subprocess.Popen(migrate_argv(path, "backfill", "--rows-per-second", "2500",
                                         "--chunk", "100"), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while (cp := _checkpoint(raw, "orders")) is None or cp[1] < 1000:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the backfill copied nothing in 30 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _checkpoint(raw, "orders")
    assert killed_at is not None and not killed_at[2] and killed_at[1] < 3000

    done = migrate(path, "backfill", "--rows-per-second", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    for table in ("orders", "order_items"):
        count = len(legacy_rows(raw, table))
        _, copied, finished = _checkpoint(raw, table)
        assert finished and copied == count, (table, copied, count)
    _assert_equal(raw)
    assert migrate(path, "verify").returncode == 0


class MirrorWriter(threading.Thread):
    """Writes the way DAL's dual writes do in dual_legacy: lock the legacy row, change it,
    copy its current state (or its absence) to its user and merchant shard, commit legacy.
    Aims at ids just ahead of the backfill's checkpoint, where the races are."""

    def __init__(self, raw: dict, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.raw, self.rng, self.stop = raw, random.Random(seed), stop
        self.deleted: set[tuple[str, int]] = set()
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            legacy = direct(self.raw, database=LEGACY, autocommit=False)
            shards = {i: direct(self.raw, i) for i in ("a", "b")}
            while not self.stop.is_set():
                table = "orders"
                cp = _checkpoint(self.raw, table)
                if cp is not None and cp[2]:
                    table = "order_items"
                    cp = _checkpoint(self.raw, table)
                target = (cp[0] if cp else 0) + self.rng.randrange(-20, 120)
                self._write(legacy, shards, table, max(target, 1))
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _write(self, legacy, shards, table: str, id_: int) -> None:
        with legacy.cursor() as cur:
            cur.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", (id_,))
            if cur.fetchone() is None:
                legacy.rollback()
                return
            if self.rng.random() < 0.3:
                cur.execute(f"DELETE FROM {table} WHERE id = %s", (id_,))
            elif table == "orders":
                cur.execute("UPDATE orders SET total = total + 1, note = %s, "
                            "updated_at = NOW(6) WHERE id = %s", (f"v{self.writes}", id_))
            else:
                cur.execute("UPDATE order_items SET qty = qty + 1 WHERE id = %s", (id_,))
            cur.execute(f"SELECT * FROM {table} WHERE id = %s", (id_,))
            row = cur.fetchone()
            before = legacy_row_key(table, id_, row)
        for instance, database in _places(table, before):
            with shards[instance].cursor() as cur:
                if row is None:
                    cur.execute(f"DELETE FROM {database}.{table} WHERE id = %s", (id_,))
                else:
                    marks = ", ".join(["%s"] * len(row))
                    cur.execute(f"REPLACE INTO {database}.{table} VALUES ({marks})", row)
        legacy.commit()
        self.writes += 1
        if row is None:
            self.deleted.add((table, id_))


_KEYS: dict[tuple[str, int], tuple[int, int]] = {}


def legacy_row_key(table: str, id_: int, row: tuple | None) -> tuple[int, int]:
    """(user_id, merchant_id) of a row, remembered for its deletion."""
    if row is not None:
        _KEYS[(table, id_)] = (row[1], row[2]) if table == "orders" else (row[2], row[3])
    return _KEYS[(table, id_)]


def _places(table: str, keys: tuple[int, int]) -> list[tuple[str, str]]:
    user, merchant = keys
    m = merchant % SHARDS
    return [shard_of(user), ("a" if m < SHARDS // 2 else "b", f"merchant_mt_{m:03d}")]


def test_backfill_under_concurrent_writes_never_resurrects_or_overwrites(
        mt: tuple[Path, dict]) -> None:
    path, raw = mt
    prepare(path, 3000)
    set_phase(raw, "dual_legacy")
    for table in ("orders", "order_items"):
        for id_, row in legacy_rows(raw, table).items():
            legacy_row_key(table, id_, row)
    stop = threading.Event()
    writers = [MirrorWriter(raw, seed, stop) for seed in (1, 2)]
    for writer in writers:
        writer.start()
    try:
        done = migrate(path, "backfill", "--rows-per-second", "4000", "--chunk", "50")
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    for writer in writers:
        assert writer.error is None, repr(writer.error)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(w.writes for w in writers) > 50, "the writers hardly ran during the backfill"
    deleted = set().union(*(w.deleted for w in writers))
    assert deleted
    for table in ("orders", "order_items"):
        shards = user_rows(raw, table)
        assert not {i for t, i in deleted if t == table} & shards.keys()
    _assert_equal(raw)
    check = migrate(path, "verify", "--recheck", "0")
    assert check.returncode == 0, check.stdout
