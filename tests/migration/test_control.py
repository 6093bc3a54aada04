"""The operator's side of a live migration: SET DAL MIGRATION PHASE and SHOW DAL MIGRATION
(admins), `dal migrate phase|status`, refused moves; and clients of every kind through the
phases: prepared statements and autocommit-off sessions (issue 21)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from dal.migration import control
from router.rows.types import ColumnType
from tests.migration.env import DB, ROOT, MigrationEnv, copy_legacy, env_fixture, migrating_dal
from tests.psclient import PsClient

USERS = range(9_100_200, 9_100_300)
LONG = (int(ColumnType.LONGLONG), False)


env = env_fixture(USERS)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dal.cli", "migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_admin_statements_and_cli(env: MigrationEnv, tmp_path: Path) -> None:
    with migrating_dal(tmp_path, env) as dal:
        rows, _, _ = dal.run("SHOW DAL MIGRATION", user="admin")
        assert rows[0][:3] == (DB, "legacy", "active")
        with pytest.raises(pymysql.MySQLError, match="one step at a time"):
            dal.run("SET DAL MIGRATION PHASE = 'shadow'", user="admin")
        with pytest.raises(pymysql.MySQLError, match="admin privilege"):
            dal.run("SET DAL MIGRATION PHASE = 'dual_legacy'")
        dal.run("SET DAL MIGRATION PHASE = 'dual_legacy'", user="admin")
        assert env.phase().phase == "dual_legacy"
        rows, _, _ = dal.run("SHOW DAL MIGRATION", user="admin")
        assert rows[0][1] == "dual_legacy" and "active dual_legacy" in rows[0][-1]
        done = _cli("phase", "shadow", "--config", str(dal.path))
        assert done.returncode == 0, done.stderr
        assert "acked by every live process" in done.stdout
        refused = _cli("phase", "sharded", "--config", str(dal.path))
        assert refused.returncode == 1 and "one step at a time" in refused.stderr
        status = _cli("status", "--config", str(dal.path))
        assert status.returncode == 0
        assert " shadow " in status.stdout and ":0 " in status.stdout
        assert dal.metric("dal_migration_phase", db=DB, phase="shadow") == 1


def test_status_counts_the_outboxes_of_every_instance(env: MigrationEnv,
                                                     tmp_path: Path) -> None:
    """A transaction's pending mirror waits in the outbox of the instance it wrote on; the
    operator's repair depth counts those of every instance, not only the control one's."""
    with migrating_dal(tmp_path, env) as dal:  # creates the outboxes
        path = dal.path
    # no DAL runs now: nothing repairs the entries below
    with contextlib.closing(env.connect("b")) as conn, conn.cursor() as cur:
        control.enqueue_repair(cur, DB, "orders", [USERS[9], USERS[9] + 1], control.TO_SHARDS,
                               None)
        conn.commit()
        try:
            status = _cli("status", "--config", str(path))
            assert status.returncode == 0, status.stderr
            lines = status.stdout.splitlines()
            row = next(line for line in lines if line.startswith(DB + " "))
            at = lines[0].index("repair_depth")  # the columns are aligned under the header
            assert row[at:].split()[0] == "2", status.stdout
        finally:
            cur.execute("DELETE FROM dal_meta.migration_repair WHERE db = %s", (DB,))
            conn.commit()


def test_prepared_and_autocommit_off_clients(env: MigrationEnv, tmp_path: Path) -> None:
    user = USERS[5]
    insert = ("INSERT INTO orders (user_id, merchant_id, status, total, created_at, updated_at) "
              "VALUES (?, 7, 1, 3.00, NOW(6), NOW(6))")
    with migrating_dal(tmp_path, env) as dal:
        client = PsClient(dal.port)
        client.login()
        try:
            old = client.run(insert, [(LONG, user)]).insert_id
            for phase in ("dual_legacy", "shadow", "dual_sharded", "sharded"):
                dal.run(f"SET DAL MIGRATION PHASE = '{phase}'", user="admin")
                if phase == "dual_legacy":
                    copy_legacy(env)
                new = client.run(insert, [(LONG, user)]).insert_id
                assert new > old
                got = client.run("SELECT id FROM orders WHERE id IN (?, ?) ORDER BY id",
                                 [(LONG, old), (LONG, new)])
                assert [r[0] for r in got.rows] == [old, new], phase
                if phase != "sharded":
                    assert env.legacy_rows("orders", "id = %s", (new,))
                assert env.shard_rows("orders", user, "id = %s", (new,)) or phase == "legacy"
            # an autocommit-off session: each write to a migrated table commits on its own
            conn = dal.connect(autocommit=False)
            with conn.cursor() as cur:
                cur.execute("UPDATE orders SET total = 9.00 WHERE id = %s", (old,))
                cur.execute("SELECT total FROM orders WHERE id = %s", (old,))
                assert float(cur.fetchone()[0]) == 9.0
            conn.commit()
            conn.close()
            assert float(env.shard_rows("orders", user, "id = %s", (old,))[0][4]) == 9.0
        finally:
            client.close()
