"""`dal sync` and `dal verify dimensions` against the real test instances: the merchant copy
follows writes made through DAL, survives SIGKILL, replays harmlessly, moves rows whose
merchant_id a DBA changes, and verify finds and repairs every kind of difference."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest

from tests.dal_process import ROOT, DalProcess, free_port, running_test_config
from tests.sync_process import (
    SHARDS,
    SyncProcess,
    backend,
    compare_dimensions,
    instance_of,
    master_status,
    read_all,
    run_verify,
    sync_config,
)

DIFF = re.compile(r"^(missing|extra|changed) (\w+) id=(\d+) in (\w+)", re.M)


@pytest.fixture(scope="module")
def sync_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    running_test_config()
    path = tmp_path_factory.mktemp("sync") / "sync.yaml"
    return path, sync_config(path)


@pytest.fixture
def follower(sync_setup: tuple[Path, dict]):
    """A fresh `dal sync` (positions reset to the binlogs' ends) over a copy made equal by
    `dal verify dimensions --repair`, so that rows left by other tests do not count."""
    path, raw = sync_setup
    proc = SyncProcess(path, raw).start("--reset")
    baseline = run_verify(path, "--repair", "--recheck", "0")
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    yield proc
    assert proc.stop() in (0, -9), proc.log()[-3000:]


def _insert_order(cur, user_id: int, merchant_id: int, items: int, tag: str) -> int:
    cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                "updated_at) VALUES (%s, %s, 1, %s, %s, NOW(6), NOW(6))",
                (user_id, merchant_id, Decimal(random.randint(100, 99999)) / 100, tag))
    order_id = cur.lastrowid
    for n in range(items):
        cur.execute("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, price) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (order_id, user_id, merchant_id, f"sku-{n}", n + 1, Decimal("9.99")))
    return order_id


def _writer(connect, seed: int, stop: threading.Event, errors: list, counts: list) -> None:
    rng = random.Random(seed)
    conn = connect()
    cur = conn.cursor()
    mine: list[tuple[int, int]] = []  # (order id, user id)
    try:
        while not stop.is_set():
            op = rng.random()
            if op < 0.5 or len(mine) < 5:
                user, merchant = rng.randint(1, 100000), rng.randint(1, 100000)
                if rng.random() < 0.3:  # a transaction on one user shard
                    cur.execute("BEGIN")
                    mine.append((_insert_order(cur, user, merchant, rng.randint(1, 3),
                                               f"w{seed}"), user))
                    cur.execute("COMMIT")
                else:
                    mine.append((_insert_order(cur, user, merchant, rng.randint(0, 2),
                                               f"w{seed}"), user))
            elif op < 0.8:
                order, user = rng.choice(mine)
                cur.execute("UPDATE orders SET status = status + 1, total = total + 1, "
                            "note = %s, updated_at = NOW(6) WHERE id = %s AND user_id = %s",
                            (f"u{rng.random()}", order, user))
                cur.execute("UPDATE order_items SET qty = qty + 1 WHERE order_id = %s AND "
                            "user_id = %s", (order, user))
            else:
                order, user = mine.pop(rng.randrange(len(mine)))
                cur.execute("DELETE FROM order_items WHERE order_id = %s AND user_id = %s",
                            (order, user))
                cur.execute("DELETE FROM orders WHERE id = %s AND user_id = %s", (order, user))
            counts[seed] += 1
    except Exception as exc:  # reported by the test
        errors.append(exc)


def test_concurrent_writers_with_sigkilled_follower(sync_setup, follower, connect) -> None:
    path, raw = sync_setup
    stop = threading.Event()
    errors: list = []
    counts = [0] * 4
    writers = [threading.Thread(target=_writer, args=(connect, i, stop, errors, counts))
               for i in range(4)]
    for w in writers:
        w.start()
    kills = sorted(random.uniform(2, 16) for _ in range(2))
    started = time.monotonic()
    proc = follower
    for at in kills:
        time.sleep(max(at - (time.monotonic() - started), 0))
        proc.kill()
        proc.start()  # resumes from its checkpoints
    time.sleep(max(20 - (time.monotonic() - started), 0))
    stop.set()
    for w in writers:
        w.join(30)
    assert not errors, errors
    assert sum(counts) > 200, counts
    status = proc.wait_caught_up()
    assert all(s["lag_events"] == 0 for s in status["sources"].values()), status
    result = run_verify(path, "--recheck", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 differences" in result.stdout
    assert not DIFF.search(result.stdout)
    for table in ("orders", "order_items"):
        problems = compare_dimensions(raw, table, shard_of=2 if table == "orders" else 3)
        assert not problems, problems[:20]
    assert "following 60 schemas" in proc.log()


def _rows(raw: dict) -> tuple[dict, dict]:
    return read_all(raw, "merchant_", "orders"), read_all(raw, "merchant_", "order_items")


def test_replay_changes_nothing_and_merchant_update_moves_the_row(sync_setup, follower,
                                                                  connect) -> None:
    _, raw = sync_setup
    before = {name: master_status(inst) for name, inst in raw["instances"].items()}
    cur = connect().cursor()
    ids = [(_insert_order(cur, u, u * 7, 2, "replay"), u) for u in range(5000, 5060)]
    for order, user in ids[:20]:
        cur.execute("UPDATE orders SET total = total * 2 WHERE id = %s AND user_id = %s",
                    (order, user))
    for order, user in ids[20:30]:
        cur.execute("DELETE FROM order_items WHERE order_id = %s AND user_id = %s",
                    (order, user))
        cur.execute("DELETE FROM orders WHERE id = %s AND user_id = %s", (order, user))
    follower.wait_caught_up()
    first = _rows(raw)
    assert follower.stop() == 0
    for inst in raw["instances"].values():  # rewind every checkpoint: the batch runs again
        with backend(inst) as conn, conn.cursor() as c:
            for source, pos in before.items():
                c.execute("UPDATE dal_meta.sync_checkpoint SET log_file = %s, log_pos = %s "
                          "WHERE source = %s", (pos[0], pos[1], source))
    follower.start()
    status = follower.wait_caught_up()
    assert sum(s["events_applied"] for s in status["sources"].values()) >= 60 * 3
    assert _rows(raw) == first
    assert not compare_dimensions(raw, "orders")

    # A DBA changes merchant_id directly on the user shard: the copy moves the row.
    order, user = ids[40]
    old_m, new_m = (user * 7) % SHARDS, (user * 7 + 1) % SHARDS
    with backend(instance_of(raw, "user", user % SHARDS)) as conn, conn.cursor() as c:
        c.execute(f"UPDATE user_{user % SHARDS:03d}.orders SET merchant_id = merchant_id + 1 "
                  "WHERE id = %s", (order,))
        c.execute(f"UPDATE user_{user % SHARDS:03d}.order_items SET merchant_id = "
                  "merchant_id + 1 WHERE order_id = %s", (order,))
    follower.wait_caught_up()
    merchants = read_all(raw, "merchant_", "orders")
    assert order not in merchants[old_m]
    assert merchants[new_m][order][2] == user * 7 + 1
    items = read_all(raw, "merchant_", "order_items")
    assert not [i for i in items[old_m].values() if i[1] == order]
    assert len([i for i in items[new_m].values() if i[1] == order]) == 2
    for table, col in (("orders", 2), ("order_items", 3)):
        assert not compare_dimensions(raw, table, shard_of=col)


def test_schema_change_and_truncate_do_not_break_the_follower(sync_setup, follower,
                                                              connect) -> None:
    path, raw = sync_setup
    applied = subprocess.run([sys.executable, "-m", "dal.cli", "schema", "apply", "--config",
                              str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    user, merchant = 5017, 5021  # user_097 (instance b), merchant_101
    u, m = user % SHARDS, merchant % SHARDS
    ua, ma = instance_of(raw, "user", u), instance_of(raw, "merchant", m)
    try:
        with backend(ma) as conn, conn.cursor() as c:
            c.execute(f"ALTER TABLE merchant_{m:03d}.orders ADD COLUMN extra INT NULL")
        with backend(ua) as conn, conn.cursor() as c:
            c.execute(f"ALTER TABLE user_{u:03d}.orders ADD COLUMN extra INT NULL")
            c.execute(f"INSERT INTO user_{u:03d}.orders (id, user_id, merchant_id, status, "
                      "total, created_at, updated_at, extra) VALUES (%s, %s, %s, 1, 1, NOW(), "
                      "NOW(), 42)", (999_000_000 + u, user, merchant))
        follower.wait_caught_up()
        with backend(ma) as conn, conn.cursor() as c:
            c.execute(f"SELECT extra FROM merchant_{m:03d}.orders WHERE id = %s",
                      (999_000_000 + u,))
            assert c.fetchone() == (42,)
    finally:
        for inst, db in ((ua, f"user_{u:03d}"), (ma, f"merchant_{m:03d}")):
            with backend(inst) as conn, conn.cursor() as c:
                c.execute(f"DELETE FROM {db}.orders WHERE id = %s", (999_000_000 + u,))
                c.execute(f"ALTER TABLE {db}.orders DROP COLUMN extra")
    # After the DDL the follower still copies writes made through DAL.
    cur = connect().cursor()
    order = _insert_order(cur, user, merchant, 1, "after-ddl")
    # TRUNCATE of one user shard's table empties that shard's rows out of every copy shard.
    with backend(ua) as conn, conn.cursor() as c:
        c.execute(f"TRUNCATE TABLE user_{u:03d}.order_items")
    follower.wait_caught_up()
    assert order in read_all(raw, "merchant_", "orders")[m]
    items = read_all(raw, "merchant_", "order_items")
    assert not [r for rows in items.values() for r in rows.values() if r[2] % SHARDS == u]
    for table, col in (("orders", 2), ("order_items", 3)):
        assert not compare_dimensions(raw, table, shard_of=col)


def test_verify_finds_and_repairs_each_kind(sync_setup, follower, connect) -> None:
    path, raw = sync_setup
    cur = connect().cursor()
    # Four orders of one merchant shard with distinct totals.
    orders = [_insert_order(cur, 7000 + n, 240 + 13, 0, f"v{n}") for n in range(4)]
    follower.wait_caught_up()
    assert follower.stop() == 0  # injected differences must stay until verify sees them
    m = (240 + 13) % SHARDS
    inst = instance_of(raw, "merchant", m)
    db = f"merchant_{m:03d}"
    with backend(inst) as conn, conn.cursor() as c:
        c.execute(f"SELECT id, total FROM {db}.orders WHERE id IN %s", (orders[2:],))
        totals = dict(c.fetchall())
        assert totals[orders[2]] != totals[orders[3]]
        c.execute(f"DELETE FROM {db}.orders WHERE id = %s", (orders[0],))           # missing
        c.execute(f"UPDATE {db}.orders SET note = 'tampered' WHERE id = %s", (orders[1],))
        c.execute(f"UPDATE {db}.orders SET total = %s WHERE id = %s",               # swapped
                  (totals[orders[3]], orders[2]))
        c.execute(f"UPDATE {db}.orders SET total = %s WHERE id = %s",
                  (totals[orders[2]], orders[3]))
        c.execute(f"INSERT INTO {db}.orders (id, user_id, merchant_id, status, total, "  # extra
                  "created_at, updated_at) VALUES (123456789, 1, %s, 1, 5, NOW(), NOW())",
                  (m,))
    result = run_verify(path, "--recheck", "0", "--chunk", "500")
    assert result.returncode == 4, result.stdout + result.stderr
    found = {(kind, int(id_)) for kind, table, id_, where in DIFF.findall(result.stdout)
             if table == "orders"}
    assert found == {("missing", orders[0]), ("changed", orders[1]), ("changed", orders[2]),
                     ("changed", orders[3]), ("extra", 123456789)}, result.stdout
    assert all(where == db for _, _, _, where in DIFF.findall(result.stdout))
    repaired = run_verify(path, "--recheck", "0", "--repair")
    assert repaired.returncode == 0 and "5 repaired" in repaired.stdout, repaired.stdout
    again = run_verify(path, "--recheck", "0")
    assert again.returncode == 0 and " 0 differences" in again.stdout, again.stdout
    assert not compare_dimensions(raw, "orders")


def _user_rows(stdout: str) -> int:
    match = re.search(r"verify dimensions: (\d+) user rows", stdout)
    assert match, stdout
    return int(match.group(1))


def test_verify_resumes_after_the_last_chunk(sync_setup, follower, connect) -> None:
    path, raw = sync_setup
    cur = connect().cursor()
    for n in range(30):
        _insert_order(cur, 8000 + n, 8000 + n, 1, "resume")
    follower.wait_caught_up()
    state = path.with_name("verify.json")
    full = run_verify(path, "--recheck", "0", "--chunk", "300", "--table", "orders")
    assert full.returncode == 0, full.stdout + full.stderr
    assert json.loads(state.read_text())["done"] == ["trade.orders/merchant"]
    ids = sorted(i for rows in read_all(raw, "user_", "orders").values() for i in rows)
    assert _user_rows(full.stdout) == len(ids)
    # A run stopped in the middle of the table: --resume continues from its saved chunk.
    middle = ids[len(ids) // 2]
    state.write_text(json.dumps({"done": [], "current": "trade.orders/merchant",
                                 "next": middle, "width": 1000}))
    resumed = run_verify(path, "--recheck", "0", "--chunk", "300", "--resume", "--table",
                         "orders")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _user_rows(resumed.stdout) == len([i for i in ids if i >= middle])
    finished = run_verify(path, "--recheck", "0", "--resume", "--table", "orders")
    assert _user_rows(finished.stdout) == 0


def test_lag_in_metrics_and_show_dal_shards(sync_setup, follower) -> None:
    path, raw = sync_setup
    port = raw["sync"]["metrics"]["port"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for source in raw["instances"]:
        assert f'dal_sync_lag_seconds{{source="{source}"}}' in body
        assert f'dal_sync_lag_events{{source="{source}"}}' in body
        assert f'dal_sync_lag_bytes{{source="{source}"}}' in body
    # A DAL with the same config reads the follower's status file for SHOW DAL SHARDS.
    listen = free_port()
    proc = DalProcess(path, listen, path.with_name("dal.log")).start(metrics=False)
    try:
        admin = pymysql.connect(host="127.0.0.1", port=listen, user="admin", password="admin",
                                cursorclass=pymysql.cursors.DictCursor)
        with admin, admin.cursor() as c:
            c.execute("SHOW DAL SHARDS")
            rows = c.fetchall()
    finally:
        assert proc.stop() == 0
    assert len(rows) == 4
    for row in rows:
        assert row["sync_lag_seconds"] is not None and float(row["sync_lag_seconds"]) < 5, row
        assert row["sync_lag_events"] is not None and int(row["sync_lag_events"]) >= 0, row


def test_read_after_write_latency(sync_setup, follower, dal, capsys) -> None:
    """INSERT acknowledged by DAL -> row visible by merchant_id through DAL, under load."""
    from tools.sync_latency import measure, parser

    args = parser().parse_args(["--port", str(dal.port), "--seconds", "8", "--rate", "100",
                                "--writers", "2", "--timeout", "5"])
    result = measure(args)
    with capsys.disabled():
        print(f"\nread-after-write through the merchant copy: {json.dumps(result)}")
    assert result["timeouts"] == 0 and result["probes"] >= 50, result
    assert result["p99_ms"] < 2000, result
