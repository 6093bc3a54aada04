"""Dual writes and reads in each phase of a live migration, checked on every backend directly:
the right rows on legacy and in exactly the right shards; legacy ids through the lookup; a
rollback one step at each phase loses nothing (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest

from config.loader import load_config
from dal.migration.switch import switch
from router.rows.columns import ColumnDefinition
from tests.migration.env import (
    DB,
    MigratingDal,
    MigrationEnv,
    copy_legacy,
    env_fixture,
    migrating_dal,
)
from tests.rawclient import RawClient

USERS = range(9_100_000, 9_100_100)
MERCHANT = 4_077


env = env_fixture(USERS)


def _order(dal: MigratingDal, user: int, total: str) -> int:
    _, affected, new_id = dal.run("INSERT INTO orders (user_id, merchant_id, status, total, "
                                  "created_at, updated_at) VALUES (%s, %s, 1, %s, NOW(6), NOW(6))",
                                  (user, MERCHANT, total))
    assert affected == 1 and new_id
    return new_id


def _item(dal: MigratingDal, user: int, order_id: int, sku: str) -> int:
    _, affected, new_id = dal.run("INSERT INTO order_items (order_id, user_id, merchant_id, sku, "
                                  "qty, price) VALUES (%s, %s, %s, %s, 1, 2.50)",
                                  (order_id, user, MERCHANT, sku))
    assert affected == 1
    return new_id


def _total(rows: list[tuple], row_id: int) -> str | None:
    found = [r for r in rows if r[0] == row_id]
    return str(found[0][4]) if found else None


def _assert_placed(env: MigrationEnv, table: str, row_id: int, user: int) -> None:
    """The row is on its user shard and its merchant shard, nowhere else."""
    assert env.everywhere(table, row_id) == sorted(
        [f"user_{user % 120:03d}", f"merchant_{MERCHANT % 120:03d}"])


def _switch(dal: MigratingDal, phase: str) -> None:
    switch(load_config(dal.path), DB, phase, timeout=20)


def test_dual_writes_in_each_phase(env: MigrationEnv, tmp_path: Path) -> None:
    u1, u2 = USERS[1], USERS[2]
    with migrating_dal(tmp_path, env) as dal:
        # legacy: DAL relays to legacy_trade; AUTO_INCREMENT ids
        old = _order(dal, u1, "10.00")
        old_item = _item(dal, u1, old, "old-sku")
        assert old < 1000 and env.legacy_rows("orders", "id = %s", (old,))
        assert env.everywhere("orders", old) == []
        _switch(dal, "dual_legacy")
        assert env.phase().max_legacy_id == max(old, old_item)
        copy_legacy(env)
        # dual_legacy: legacy first, mirrored by id; new rows get gene ids written to legacy
        new = _order(dal, u2, "20.00")
        assert new > 1 << 40
        assert _total(env.legacy_rows("orders"), new) == "20.00"
        _assert_placed(env, "orders", new, u2)
        dal.run("UPDATE orders SET total = 11.00 WHERE id = %s", (old,))
        assert _total(env.shard_rows("orders", u1), old) == "11.00"
        assert _total(env.shard_rows("orders", MERCHANT, dimension="merchant"), old) == "11.00"
        assert dal.run("SELECT total FROM orders WHERE id = %s", (old,))[0] == [(11,)]
        _switch(dal, "shadow")
        dal.run("UPDATE orders SET total = total + 1 WHERE user_id = %s", (u2,))
        assert _total(env.shard_rows("orders", u2), new) == "21.00"
        new_item = _item(dal, u2, new, "new-sku")
        _assert_placed(env, "order_items", new_item, u2)
        _switch(dal, "dual_sharded")
        # dual_sharded: shards first, mirrored to legacy; legacy ids through the lookup
        dal.run("UPDATE orders SET total = 12.00 WHERE id = %s", (old,))
        assert _total(env.legacy_rows("orders"), old) == "12.00"
        assert _total(env.shard_rows("orders", u1), old) == "12.00"
        assert dal.run("SELECT total FROM orders WHERE id = %s", (old,))[0] == [(12,)]
        assert dal.run("SELECT sku FROM order_items WHERE order_id = %s", (old,))[0] == [
            ("old-sku",)]
        third = _order(dal, u1, "30.00")
        assert _total(env.legacy_rows("orders"), third) == "30.00"
        assert _total(env.shard_rows("orders", u1), third) == "30.00"
        dal.run("DELETE FROM order_items WHERE id = %s", (old_item,))
        assert env.legacy_rows("order_items", "id = %s", (old_item,)) == []
        assert env.shard_rows("order_items", u1, "id = %s", (old_item,)) == []
        _switch(dal, "sharded")
        # sharded: legacy is no longer written; old ids still found
        dal.run("UPDATE orders SET total = 13.00 WHERE id = %s", (old,))
        assert _total(env.legacy_rows("orders"), old) == "12.00"
        assert dal.run("SELECT total FROM orders WHERE id IN (%s, %s) ORDER BY id",
                       (old, new))[0] == [(13,), (21,)]
        assert env.repair_depth() == 0
        assert dal.metric("dal_migration_phase", db=DB, phase="sharded") == 1


def _model_check(env: MigrationEnv, dal: MigratingDal, expected: dict[int, str],
                 authority: str, stale: set[int] = frozenset()) -> None:
    """Every order written has its last total on the authoritative side, on the other side
    in dual phases, and as DAL reads it. ``stale``: rows written in phase sharded, which legacy
    no longer follows (`dal migrate verify --repair` brings them back after such a rollback)."""
    for row_id, total in expected.items():
        user = USERS[3]
        legacy = _total(env.legacy_rows("orders", "id = %s", (row_id,)), row_id)
        shard = _total(env.shard_rows("orders", user, "id = %s", (row_id,)), row_id)
        if authority != "sharded" and row_id not in stale:  # legacy: all phases but the last
            assert legacy == total, (row_id, authority)
        if authority != "legacy":  # the shards, from dual_legacy on
            assert shard == total, (row_id, authority)
        got = dal.run("SELECT total FROM orders WHERE id = %s", (row_id,))[0]
        assert got and f"{got[0][0]:.2f}" == total


def test_rollback_one_step_at_each_phase_loses_nothing(env: MigrationEnv,
                                                       tmp_path: Path) -> None:
    user = USERS[3]
    phases = ["legacy", "dual_legacy", "shadow", "dual_sharded", "sharded"]
    expected: dict[int, str] = {}
    with migrating_dal(tmp_path, env, shadow_rate=1.0) as dal:
        for _ in range(2):
            expected[_order(dal, user, "1.00")] = "1.00"
        for step in range(1, len(phases)):
            forward, back = phases[step], phases[step - 1]
            _switch(dal, forward)
            if forward == "dual_legacy":
                copy_legacy(env)
            new = _order(dal, user, f"{step}.50")
            expected[new] = f"{step}.50"
            touched = [new, *list(expected)[:2]]
            for row_id in touched[1:]:
                dal.run("UPDATE orders SET total = total + 1 WHERE id = %s", (row_id,))
                expected[row_id] = f"{float(expected[row_id]) + 1:.2f}"
            stale = set(touched) if forward == "sharded" else set()
            _model_check(env, dal, expected, forward)
            _switch(dal, back)  # one step back: nothing written in `forward` is lost
            expected[_order(dal, user, f"{step}.75")] = f"{step}.75"
            _model_check(env, dal, expected, back, stale)
            if back == "legacy":  # rows written in legacy since: copied again, as a DBA does
                _switch(dal, forward)
                copy_legacy(env)
            else:
                _switch(dal, forward)
            _model_check(env, dal, expected, forward)
        assert dal.metric("dal_migration_shadow_mismatches_total", db=DB) == 0
        assert env.repair_depth() == 0


def test_legacy_reads_name_the_logical_database(env: MigrationEnv, tmp_path: Path) -> None:
    """A read relayed from the legacy database (phases legacy and dual_legacy) shows `trade`
    in its column definitions, as a shard's read does, never `legacy_trade`."""
    user = USERS[5]
    with migrating_dal(tmp_path, env) as dal:
        row_id = _order(dal, user, "4.00")
        for phase in ("legacy", "dual_legacy"):
            if phase != "legacy":
                _switch(dal, phase)
            client = RawClient(dal.port)
            try:
                assert client.login()[0] == 0
                for _ in range(2):  # the second answer reuses the renamed header
                    packets = client.query(f"SELECT id, total FROM orders WHERE id = {row_id}"
                                           .encode())
                    columns = [ColumnDefinition.decode(p) for p in packets[1:3]]
                    assert [c.name for c in columns] == [b"id", b"total"]
                    assert {c.schema for c in columns} == {b"trade"}, phase
                    assert {c.table for c in columns} == {b"orders"}
            finally:
                client.close()


def _gene(user: int, merchant: int, serial: int) -> int:
    """An order id whose gene names this user's and this merchant's shard."""
    return ((10**9 + serial) * 120 + merchant % 120) * 120 + user % 120


def test_inserts_that_give_their_own_id(env: MigrationEnv, tmp_path: Path) -> None:
    """In the dual phases an INSERT may give a gene id of its row's user and merchant (written
    on both sides); an id at or below the highest legacy id, or one whose gene names other
    shards, is refused with 1235 naming why; a write naming another table too, likewise."""
    user = USERS[7]
    insert = ("INSERT INTO orders (id, user_id, merchant_id, status, total, created_at, "
              "updated_at) VALUES (%s, %s, %s, 1, %s, NOW(6), NOW(6))")
    with migrating_dal(tmp_path, env) as dal:
        old = _order(dal, user, "1.00")
        _switch(dal, "dual_legacy")
        copy_legacy(env)
        for serial, phase in enumerate(("dual_legacy", "shadow", "dual_sharded")):
            if phase != "dual_legacy":
                _switch(dal, phase)
            given = _gene(user, MERCHANT, serial)
            _, affected, _ = dal.run(insert, (given, user, MERCHANT, f"{serial}.25"))
            assert affected == 1
            assert _total(env.legacy_rows("orders", "id = %s", (given,)), given) == \
                f"{serial}.25", phase
            assert _total(env.shard_rows("orders", user, "id = %s", (given,)), given) == \
                f"{serial}.25", phase
            for bad, why in ((old, "highest legacy id"),
                             (_gene(user + 1, MERCHANT, 50 + serial), "not a gene id")):
                with pytest.raises(pymysql.err.MySQLError) as caught:
                    dal.run(insert, (bad, user, MERCHANT, "9.99"))
                code, message = caught.value.args
                assert code == 1235 and why in message and str(bad) in message, message
                assert env.everywhere("orders", bad) == ([] if bad != old else
                                                         sorted([f"user_{user % 120:03d}",
                                                                 f"merchant_{MERCHANT % 120:03d}"]))
            with pytest.raises(pymysql.err.MySQLError) as caught:
                dal.run("UPDATE orders, merchants SET orders.total = 1 WHERE orders.id = %s",
                        (old,))
            code, message = caught.value.args
            assert code == 1235 and "merchants" in message, message
