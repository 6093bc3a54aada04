"""A phase switch with two DAL processes on the same backends completes only after both
acknowledged it, and writes through the lagging one are not lost; a failed mirror lands in
the durable repair log and is repaired (issue 21)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pymysql

from config.loader import load_config
from dal.migration import control
from dal.migration.switch import switch
from tests.migration.env import DB, MigrationEnv, copy_legacy, env_fixture, migrating_dal

USERS = range(9_100_100, 9_100_200)
MERCHANT = 4_077  # shard 117: instance b


env = env_fixture(USERS)


def _sample(env: MigrationEnv, stop: threading.Event, seen: list) -> None:
    """(phase row, live acks) every 50 ms, read in one transaction."""
    with contextlib.closing(env.connect("a")) as conn:
        while not stop.is_set():
            conn.begin()
            with conn.cursor() as cur:
                seen.append((control.read_phase(cur, DB),
                             [a for a in control.read_acks(cur, DB) if a.live]))
            conn.commit()
            time.sleep(0.05)


def _increment(dal, row_id: int, stop: threading.Event, done: list[int]) -> None:
    conn = dal.connect()
    try:
        while not stop.is_set():
            try:
                with conn.cursor() as cur:
                    cur.execute("UPDATE orders SET total = total + 1 WHERE id = %s", (row_id,))
                done.append(1)
            except pymysql.err.OperationalError as exc:
                assert exc.args[0] == 1205, exc  # held longer than write_pause: not applied
            time.sleep(0.01)
    finally:
        conn.close()


def test_switch_waits_for_the_lagging_process(env: MigrationEnv, tmp_path: Path) -> None:
    user = USERS[1]
    with migrating_dal(tmp_path, env, "fast") as fast, \
            migrating_dal(tmp_path, env, "slow", poll_interval=4.0) as slow:
        config = load_config(fast.path)
        fast.run("INSERT INTO orders (user_id, merchant_id, status, total, created_at, "
                 "updated_at) VALUES (%s, %s, 1, 0, NOW(6), NOW(6))", (user, MERCHANT))
        row_id = env.legacy_rows("orders")[0][0]
        switch(config, DB, "dual_legacy", timeout=20)
        copy_legacy(env)
        switch(config, DB, "shadow", timeout=20)
        assert len(env.acks()) == 2
        stop, writers_stop = threading.Event(), threading.Event()
        seen: list = []
        done: list[int] = []
        threads = [threading.Thread(target=_sample, args=(env, stop, seen)),
                   *(threading.Thread(target=_increment, args=(dal, row_id, writers_stop, done))
                     for dal in (fast, slow))]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        final = switch(config, DB, "dual_sharded", timeout=20)  # shards become authoritative
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        writers_stop.set()
        stop.set()
        for thread in threads:
            thread.join(30)
    drain = final.version - 1
    for row, acks in seen:
        if row.version >= final.version:  # active in the new phase: only after both drained
            assert len(acks) == 2
            assert all(a.version >= drain for a in acks), acks
    lagging = [acks for row, acks in seen if row.version == drain
               and sorted((a.version, a.state) for a in acks) ==
               sorted([(drain, control.DRAINED), (drain - 1, control.ACTIVE)])]
    if lagging:  # one process drained, the other not yet: the switch waited for it
        assert elapsed > 1.0
    legacy = float(env.legacy_rows("orders", "id = %s", (row_id,))[0][4])
    shard = float(env.shard_rows("orders", user, "id = %s", (row_id,))[0][4])
    assert done and legacy == shard == len(done)


def test_failed_mirror_is_repaired(env: MigrationEnv, tmp_path: Path) -> None:
    from tools import localdb

    user = USERS[70]  # user shard 110: instance b, as the merchant shard
    b = next(m for m in localdb.managed(env.config) if m.name == "b")
    with migrating_dal(tmp_path, env) as dal:
        switch(load_config(dal.path), DB, "dual_legacy", timeout=20)
        localdb.down_one(b, lambda line: None)
        try:
            _, affected, new_id = dal.run(
                "INSERT INTO orders (user_id, merchant_id, status, total, created_at, "
                "updated_at) VALUES (%s, %s, 1, 5.00, NOW(6), NOW(6))", (user, MERCHANT))
            assert affected == 1
            assert env.legacy_rows("orders", "id = %s", (new_id,))
            assert env.repair_depth() == 1
        finally:
            localdb.up_one(b, lambda line: None)
        deadline = time.monotonic() + 30
        while env.repair_depth() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert env.repair_depth() == 0
        assert [r[0] for r in env.shard_rows("orders", user, "id = %s", (new_id,))] == [new_id]
        assert [r[0] for r in env.shard_rows("orders", user, "id = %s", (new_id,),
                                             dimension="merchant", key=MERCHANT)] == [new_id]
