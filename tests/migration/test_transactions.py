"""Writes to migrated tables inside client transactions, and phase switches around them,
checked on every backend directly (issue 21: transactions; docs/migration.md).

- In each dual phase a transaction's writes to orders and order_items are part of it: its own
  reads see them, ROLLBACK leaves nothing on legacy nor on the shards, COMMIT leaves both sides
  equal (BEGIN and autocommit=0, as PyMySQL and SQLAlchemy use).
- A DAL SIGKILLed between the authoritative COMMIT and the mirror leaves the outbox entries,
  which the repairer of the next DAL applies.
- A phase switch waits for an open transaction that wrote under the old phase and completes
  after its COMMIT; one left open past the timeout puts the old phase back and names the
  session; a real failure inside the switch (a revoked grant) puts the old phase back too.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path

import pymysql
import pytest

from config.loader import load_config
from dal.migration import control
from dal.migration.switch import SwitchError, switch
from router.rows.types import ColumnType
from tests.migration.env import (
    DB,
    LEGACY,
    MigratingDal,
    MigrationEnv,
    copy_legacy,
    env_fixture,
    migrating_dal,
)
from tests.psclient import PsClient

USERS = range(9_200_000, 9_200_100)
LONG = (int(ColumnType.LONGLONG), False)
STR = (int(ColumnType.VAR_STRING), False)
MERCHANT = 4_091
INSERT_ORDER = ("INSERT INTO orders (user_id, merchant_id, status, total, created_at, updated_at)"
                " VALUES (%s, %s, 1, %s, NOW(6), NOW(6))")
INSERT_ITEM = ("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, price) "
               "VALUES (%s, %s, %s, %s, 1, 2.50)")


env = env_fixture(USERS)


def _switch(dal: MigratingDal, phase: str, timeout: float = 20) -> None:
    switch(load_config(dal.path), DB, phase, timeout=timeout)


def _prepare(env: MigrationEnv, dal: MigratingDal, user: int) -> int:
    """One legacy order of ``user`` with one item, copied to the shards; phase dual_legacy."""
    _, _, old = dal.run(INSERT_ORDER, (user, MERCHANT, "5.00"))
    dal.run(INSERT_ITEM, (old, user, MERCHANT, "old"))
    _switch(dal, "dual_legacy")
    copy_legacy(env)
    return old


def _sides(env: MigrationEnv, table: str, row_id: int, user: int) -> tuple[list, list, list]:
    """The row on legacy, on its user shard and on its merchant shard."""
    return (env.legacy_rows(table, "id = %s", (row_id,)),
            env.shard_rows(table, user, "id = %s", (row_id,)),
            env.shard_rows(table, user, "id = %s", (row_id,), dimension="merchant",
                           key=MERCHANT))


def _eventually(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _transaction(dal: MigratingDal, user: int, old: int, end: str,
                 autocommit_off: bool) -> tuple[int, int]:
    """One transaction: a new order with an item, an update of ``old`` and the delete of its
    item; its own reads see each; then ``end`` (COMMIT or ROLLBACK). The new ids."""
    conn = dal.connect(autocommit=not autocommit_off)
    try:
        with conn.cursor() as cur:
            if not autocommit_off:
                cur.execute("BEGIN")
            cur.execute(INSERT_ORDER, (user, MERCHANT, "7.00"))
            new = cur.lastrowid
            cur.execute(INSERT_ITEM, (new, user, MERCHANT, "new"))
            item = cur.lastrowid
            cur.execute("UPDATE orders SET total = 99.00 WHERE id = %s", (old,))
            cur.execute("DELETE FROM order_items WHERE order_id = %s", (old,))
            cur.execute("SELECT id, total FROM orders WHERE user_id = %s ORDER BY id", (user,))
            seen = {r[0]: f"{r[1]:.2f}" for r in cur.fetchall()}
            assert seen[old] == "99.00" and seen[new] == "7.00"
            cur.execute("SELECT id, sku FROM order_items WHERE user_id = %s", (user,))
            skus = dict(cur.fetchall())
            assert skus[item] == "new" and "old" not in skus.values()
            cur.execute(end)
        return new, item
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["single", "xa"])
@pytest.mark.parametrize("autocommit_off", [False, True], ids=["begin", "autocommit0"])
def test_transactions_in_each_dual_phase(env: MigrationEnv, tmp_path: Path,
                                         autocommit_off: bool, mode: str) -> None:
    """Mode xa: the write runs on the transaction's branch of legacy's instance (a), then of
    the user shard's (b); the mirror follows the XA COMMIT."""
    user = USERS[1] + autocommit_off
    # every shadow read compared
    with migrating_dal(tmp_path, env, mode=mode, shadow_rate=1.0) as dal:
        old = _prepare(env, dal, user)
        before = _sides(env, "orders", old, user)
        old_items = env.legacy_rows("order_items", "order_id = %s", (old,))
        for phase in ("dual_legacy", "shadow", "dual_sharded"):
            if phase != "dual_legacy":
                _switch(dal, phase)
            new, item = _transaction(dal, user, old, "ROLLBACK", autocommit_off)
            for table, row_id in (("orders", new), ("order_items", item)):  # nowhere
                assert env.everywhere(table, row_id) == [], (phase, table)
                assert env.legacy_rows(table, "id = %s", (row_id,)) == [], (phase, table)
            assert _sides(env, "orders", old, user) == before, phase
            assert env.legacy_rows("order_items", "order_id = %s", (old,)) == old_items
            assert env.shard_rows("order_items", user, "order_id = %s", (old,)) == old_items
            assert env.repair_depth() == 0
            new, item = _transaction(dal, user, old, "COMMIT", autocommit_off)
            for table, row_id in (("orders", new), ("orders", old), ("order_items", item)):
                legacy, by_user, by_merchant = _sides(env, table, row_id, user)
                assert legacy and legacy == by_user, (phase, table, row_id)
                if phase != "dual_sharded":  # the shards first: `dal sync` copies to merchant
                    assert legacy == by_merchant, (phase, table, row_id)
            assert env.legacy_rows("order_items", "order_id = %s", (old,)) == []
            assert env.shard_rows("order_items", user, "order_id = %s", (old,)) == []
            _no_outbox(env)  # cleared by the mirror right after the COMMIT
            before = _sides(env, "orders", old, user)
            old_items = []
        assert dal.metric("dal_migration_shadow_mismatches_total", db=DB) == 0


def _begin_order_with_item(cur, user: int, total: str, sku: str) -> tuple[int, int]:
    """BEGIN, then an order of ``user`` and one item of it: their ids."""
    cur.execute("BEGIN")
    cur.execute(INSERT_ORDER, (user, MERCHANT, total))
    order = cur.lastrowid
    cur.execute(INSERT_ITEM, (order, user, MERCHANT, sku))
    return order, cur.lastrowid


def _order_and_item(dal: MigratingDal, end: str, user: int,
                    other: int | None) -> tuple[int, int, int | None]:
    """One transaction: an order of ``user`` with an item (and an order of ``other``), then
    ``end``. The ids: order, item, other's order."""
    conn = dal.connect()
    try:
        with conn.cursor() as cur:
            order, item = _begin_order_with_item(cur, user, "3.00", "both")
            second = None
            if other is not None:
                cur.execute(INSERT_ORDER, (other, MERCHANT, "4.00"))
                second = cur.lastrowid
            cur.execute("SELECT COUNT(*) FROM order_items WHERE order_id = %s", (order,))
            assert cur.fetchone()[0] == 1
            cur.execute(end)
        return order, item, second
    finally:
        conn.close()


def test_xa_migrated_and_sharded_tables_commit_together(env: MigrationEnv,
                                                        tmp_path: Path) -> None:
    """Mode xa, only orders migrated (order_items stays a sharded table). In dual_legacy an
    order goes to legacy (instance a's branch), its item to the user's shard (instance b's);
    in dual_sharded orders of a user on b and of one on a go to both branches. ROLLBACK leaves
    nothing anywhere; COMMIT is one two-phase XA transaction over both instances, mirrored."""
    user, other = USERS[13], USERS[41]
    assert (env.instance_of(user % 120), env.instance_of(other % 120)) == ("b", "a")
    with migrating_dal(tmp_path, env, mode="xa", tables=["orders"]) as dal:
        for phase in ("dual_legacy", "shadow", "dual_sharded"):
            _switch(dal, phase)
            if phase == "shadow":
                continue
            second_user = other if phase == "dual_sharded" else None
            committed = dal.metric("dal_xa_transactions_total", outcome="committed")
            order, item, second = _order_and_item(dal, "ROLLBACK", user, second_user)
            for row_id in (order, second):
                if row_id is not None:
                    assert env.everywhere("orders", row_id) == [], phase
                    assert env.legacy_rows("orders", "id = %s", (row_id,)) == [], phase
            assert env.everywhere("order_items", item) == [], phase
            order, item, second = _order_and_item(dal, "COMMIT", user, second_user)
            assert dal.metric("dal_xa_transactions_total",
                              outcome="committed") == committed + 1, phase
            for row_id, owner in ((order, user), (second, other)):
                if row_id is not None:
                    legacy, by_user, by_merchant = _sides(env, "orders", row_id, owner)
                    assert legacy and legacy == by_user, (phase, row_id)
                    if phase == "dual_legacy":
                        assert legacy == by_merchant
            assert len(env.shard_rows("order_items", user, "id = %s", (item,))) == 1, phase
            assert env.legacy_rows("order_items", "id = %s", (item,)) == [], phase
            _no_outbox(env)


def _no_outbox(env: MigrationEnv) -> None:
    for instance in ("a", "b"):
        with contextlib.closing(env.connect(instance)) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM dal_meta.migration_repair WHERE db = %s", (DB,))
            assert cur.fetchone()[0] == 0, instance


@pytest.mark.parametrize("mode", ["single", "xa"])
def test_transaction_ended_by_a_prepared_commit(env: MigrationEnv, tmp_path: Path,
                                                mode: str) -> None:
    """BEGIN, the write and COMMIT (or ROLLBACK) all sent as prepared statements, as a
    binary-protocol client may: the end runs the same mirror as a text COMMIT."""
    user = USERS[9]
    with migrating_dal(tmp_path, env, mode=mode) as dal:
        old = _prepare(env, dal, user)
        client = PsClient(dal.port)
        client.login(database=DB)
        try:
            update = client.prepare("UPDATE orders SET total = ? WHERE id = ?")
            for end, total in (("ROLLBACK", "11.00"), ("COMMIT", "12.00")):
                begin, finish = client.prepare("BEGIN"), client.prepare(end)
                client.execute(begin.id)
                client.read_result()
                client.execute(update.id, [(STR, total.encode()), (LONG, old)])
                assert client.read_result().affected_rows == 1
                client.execute(finish.id)
                client.read_result()
                legacy, by_user, by_merchant = _sides(env, "orders", old, user)
                assert legacy == by_user == by_merchant, end
                assert f"{legacy[0][4]:.2f}" == ("5.00" if end == "ROLLBACK" else total)
                _no_outbox(env)
        finally:
            client.close()


@pytest.mark.parametrize("mode", ["single", "xa"])
def test_client_lost_mid_transaction_leaves_nothing(env: MigrationEnv, tmp_path: Path,
                                                    mode: str) -> None:
    """A client whose connection drops after it wrote to a migrated table, before COMMIT: on
    every side nothing of its transaction stays, no outbox entry, no XA branch, no row lock and
    no backend connection lent out. In mode xa only orders is migrated, so the transaction
    also holds a branch on the user's shard (order_items, sharded) on the other instance."""
    user = USERS[21]
    assert env.instance_of(user % 120) == "b"
    options = {"tables": ["orders"]} if mode == "xa" else {}
    with migrating_dal(tmp_path, env, mode=mode, **options) as dal:
        if mode == "xa":  # a legacy order without items: order_items is sharded here
            _, _, old = dal.run(INSERT_ORDER, (user, MERCHANT, "5.00"))
            _switch(dal, "dual_legacy")
            copy_legacy(env)
        else:
            old = _prepare(env, dal, user)
        for phase, total in (("dual_legacy", "8.00"), ("dual_sharded", "9.00")):
            if phase == "dual_sharded":
                _switch(dal, "shadow")
                _switch(dal, "dual_sharded")
            before = _sides(env, "orders", old, user)
            conn = dal.connect()
            with conn.cursor() as cur:
                new, item = _begin_order_with_item(cur, user, "6.00", "lost")
                cur.execute("UPDATE orders SET total = 77.00 WHERE id = %s", (old,))
            # Open where it wrote: the authoritative side (legacy on a, then the user's shard on
            # b; the other side gets the mirror after COMMIT), and in mode xa the item's shard.
            expected = ({"a": 1, "b": 1 if mode == "xa" else 0} if phase == "dual_legacy"
                        else {"a": 0, "b": 1})
            assert _open_transactions(env) == expected, phase
            conn._sock.shutdown(socket.SHUT_RDWR)  # no COM_QUIT, no COMMIT: the client is gone
            conn._sock.close()

            def released() -> None:
                assert dal.metric("dal_client_connections") == 0
                for instance in ("a", "b"):
                    assert dal.metric("dal_pool_in_use", instance=instance) == 0, instance

            _eventually(released)
            # information_schema.innodb_trx is a cache InnoDB refreshes every 0.1 s at most
            _eventually(lambda: _no_open_transactions(env), timeout=2)
            assert env.everywhere("orders", new) == [], phase
            assert env.legacy_rows("orders", "id = %s", (new,)) == [], phase
            assert env.everywhere("order_items", item) == [], phase
            assert env.legacy_rows("order_items", "id = %s", (item,)) == [], phase
            assert _sides(env, "orders", old, user) == before, phase
            _no_outbox(env)
            for instance in ("a", "b"):
                with contextlib.closing(env.connect(instance)) as direct, \
                        direct.cursor() as cur:
                    cur.execute("XA RECOVER")
                    assert cur.fetchall() == (), (phase, instance)
            # Its row locks are gone: another client updates the row at once, on every side.
            started = time.monotonic()
            _, affected, _ = dal.run("UPDATE orders SET total = %s WHERE id = %s", (total, old))
            assert affected == 1 and time.monotonic() - started < 3, phase
            legacy, by_user, _ = _sides(env, "orders", old, user)
            assert legacy == by_user and f"{legacy[0][4]:.2f}" == total, phase


@pytest.mark.parametrize(("reading", "default"), [
    ("sql_mode = 'NO_BACKSLASH_ESCAPES'", "sql_mode = DEFAULT"),
    ("NAMES latin1", "NAMES utf8mb4"),
    ("character_set_client = cp1251", "character_set_client = utf8mb4"),
    ("collation_connection = latin1_swedish_ci", "collation_connection = utf8mb4_general_ci")])
def test_migrated_statements_need_the_default_reading(env: MigrationEnv, tmp_path: Path,
                                                       reading: str, default: str) -> None:
    """The legacy side runs the client's literals on DAL's own connections, which read text in
    the default sql_mode (as the copies do) and as utf8mb4: under NO_BACKSLASH_ESCAPES '\\'
    would end a string there and not here, and a latin1 'é' would be another character. So a
    write to a migrated table is refused and changes nothing; in the default reading the same
    session's statement runs and is mirrored."""
    user = USERS[27]
    with migrating_dal(tmp_path, env) as dal:
        old = _prepare(env, dal, user)
        before = _sides(env, "orders", old, user)
        conn = dal.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET {reading}")
                with pytest.raises(pymysql.MySQLError) as caught:
                    cur.execute("UPDATE orders SET total = 6.00 WHERE id = %s", (old,))
                assert caught.value.args[0] == 1235
                assert _sides(env, "orders", old, user) == before
                cur.execute(f"SET {default}")
                cur.execute("UPDATE orders SET total = 7.00 WHERE id = %s", (old,))
        finally:
            conn.close()
        assert _sides(env, "orders", old, user) != before
        legacy, by_user, _ = _sides(env, "orders", old, user)
        assert legacy == by_user


def _open_transactions(env: MigrationEnv) -> dict[str, int]:
    """Transactions that hold locks, per instance."""
    counts = {}
    for instance in ("a", "b"):
        with contextlib.closing(env.root(instance)) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx "
                        "WHERE trx_rows_locked > 0 OR trx_rows_modified > 0")
            counts[instance] = cur.fetchone()[0]
    return counts


def _no_open_transactions(env: MigrationEnv) -> None:
    assert _open_transactions(env) == {"a": 0, "b": 0}


def test_two_transactions_on_one_row_converge(env: MigrationEnv, tmp_path: Path) -> None:
    user = USERS[3]
    with migrating_dal(tmp_path, env) as dal:
        old = _prepare(env, dal, user)
        for phase in ("dual_legacy", "dual_sharded"):
            if phase == "dual_sharded":
                _switch(dal, "shadow")
                _switch(dal, "dual_sharded")
            errors: list[BaseException] = []

            def bump(times: int, errors: list[BaseException] = errors) -> None:
                try:
                    conn = dal.connect(autocommit=False)
                    with conn.cursor() as cur:
                        for _ in range(times):
                            cur.execute("UPDATE orders SET total = total + 1 WHERE id = %s",
                                        (old,))
                            conn.commit()
                    conn.close()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=bump, args=(20,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, errors
            legacy, by_user, by_merchant = _sides(env, "orders", old, user)
            assert legacy == by_user, phase
            if phase == "dual_legacy":
                assert legacy == by_merchant
        assert f"{legacy[0][4]:.2f}" == "125.00"


def test_kill9_between_commit_and_mirror(env: MigrationEnv, tmp_path: Path) -> None:
    user = USERS[5]
    with migrating_dal(tmp_path, env, name="first") as dal:
        old = _prepare(env, dal, user)
        client = dal.connect(read_timeout=60)
        with client.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE orders SET total = 42.00 WHERE id = %s", (old,))
        # A direct reader queues for the row's lock on legacy: after the COMMIT it gets it
        # first, so DAL's mirror (which reads the row under that lock) waits behind it.
        blocker = env.connect("a", LEGACY)
        blocker.begin()
        queued = threading.Thread(target=lambda: blocker.cursor().execute(
            "SELECT * FROM orders WHERE id = %s FOR UPDATE", (old,)))
        queued.start()
        time.sleep(1)
        client._execute_command(3, "COMMIT")  # sent; its answer is never read
        _eventually(lambda: _outbox_holds(env, old))  # committed on legacy with its outbox
        queued.join(10)
        assert f"{env.legacy_rows('orders', 'id = %s', (old,))[0][4]:.2f}" == "42.00"
        dal.proc.proc.send_signal(signal.SIGKILL)
        dal.proc.proc.wait()
        blocker.rollback()
        blocker.close()
        with contextlib.suppress(Exception):
            client.close()
        time.sleep(1)
        assert f"{env.shard_rows('orders', user, 'id = %s', (old,))[0][4]:.2f}" == "5.00"
        _outbox_holds(env, old)
    with migrating_dal(tmp_path, env, name="second"):
        def repaired() -> None:
            legacy, by_user, by_merchant = _sides(env, "orders", old, user)
            assert legacy == by_user == by_merchant
            _no_outbox(env)

        _eventually(repaired, 20)


def _outbox_holds(env: MigrationEnv, row_id: int) -> None:
    with contextlib.closing(env.connect("a")) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dal_meta.migration_repair WHERE db = %s AND id = %s",
                    (DB, row_id))
        assert cur.fetchone()[0] == 1


@pytest.mark.parametrize("mode", ["single", "xa"])
def test_switch_waits_for_an_open_transaction(env: MigrationEnv, tmp_path: Path,
                                              mode: str) -> None:
    user = USERS[7]
    with migrating_dal(tmp_path, env, mode=mode) as dal:
        old = _prepare(env, dal, user)
        client, _ = _open_transaction(dal, old, "8.00")
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(_try_switch(dal, "shadow")))
        thread.start()
        time.sleep(3)
        assert thread.is_alive() and env.phase().state == control.DRAIN
        with client.cursor() as cur:  # the transaction's own writes still run meanwhile
            cur.execute("UPDATE orders SET total = 9.00 WHERE id = %s", (old,))
            cur.execute("COMMIT")
        thread.join(30)
        assert outcome == [None]
        assert env.phase().phase == "shadow"
        legacy, by_user, by_merchant = _sides(env, "orders", old, user)
        assert f"{legacy[0][4]:.2f}" == "9.00" and legacy == by_user == by_merchant
        client.close()


def _open_transaction(dal: MigratingDal, row_id: int, total: str):
    """A client (and its DAL connection id) whose open transaction updated ``row_id``."""
    client = dal.connect()
    with client.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        session = cur.fetchone()[0]
        cur.execute("BEGIN")
        cur.execute("UPDATE orders SET total = %s WHERE id = %s", (total, row_id))
    return client, session


def _try_switch(dal: MigratingDal, phase: str, timeout: float = 20) -> SwitchError | None:
    try:
        _switch(dal, phase, timeout)
    except SwitchError as exc:
        return exc
    return None


def test_switch_timeout_names_the_open_transaction(env: MigrationEnv, tmp_path: Path) -> None:
    user = USERS[9]
    with migrating_dal(tmp_path, env) as dal:
        old = _prepare(env, dal, user)
        client, session = _open_transaction(dal, old, "6.00")
        failed = _try_switch(dal, "shadow", timeout=3)
        assert failed is not None and f"DAL connection ids {session}" in str(failed), failed
        row = env.phase()
        assert (row.phase, row.state) == ("dual_legacy", control.ACTIVE)
        with client.cursor() as cur:  # the transaction goes on under the old phase
            cur.execute("COMMIT")
        legacy, by_user, by_merchant = _sides(env, "orders", old, user)
        assert f"{legacy[0][4]:.2f}" == "6.00" and legacy == by_user == by_merchant
        _, affected, _ = dal.run("UPDATE orders SET total = 7.00 WHERE id = %s", (old,))
        assert affected == 1
        _switch(dal, "shadow")  # nothing holds it now
        client.close()


def test_switch_failure_puts_the_old_phase_back(env: MigrationEnv, tmp_path: Path) -> None:
    """A real failure between the drain and the new phase: DAL's account loses SELECT on the
    legacy database, so reading the highest legacy id fails."""
    user = USERS[11]
    with migrating_dal(tmp_path, env) as dal:
        dal.run(INSERT_ORDER, (user, MERCHANT, "1.00"))
        root = env.root()
        try:
            with root.cursor() as cur:
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"REVOKE SELECT ON `{LEGACY.replace('_', chr(92) + '_')}`.* "
                                f"FROM %s@'{host}'", (env.config.instances["a"].user,))
            with pytest.raises(SwitchError, match="back in phase legacy"):
                _switch(dal, "dual_legacy")
            row = env.phase()
            assert (row.phase, row.state) == ("legacy", control.ACTIVE)
        finally:
            with root.cursor() as cur:
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"GRANT SELECT ON `{LEGACY.replace('_', chr(92) + '_')}`.* "
                                f"TO %s@'{host}'", (env.config.instances["a"].user,))
            root.close()
        _, affected, _ = dal.run(INSERT_ORDER, (user, MERCHANT, "2.00"))  # writes go on
        assert affected == 1
        _switch(dal, "dual_legacy")
        assert env.phase().phase == "dual_legacy"
