"""Transaction mode xa through a real DAL and real MariaDB: a transaction over several shards
on both instances commits everywhere or nowhere, a failed prepare rolls every branch back, and
a DAL killed between its logged decision and XA COMMIT is completed by recovery."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql
import pytest

from tests.conftest import assert_pools_idle
from tests.dal_process import ROOT
from tests.own_dal import own_dal

U_A = 910_021        # shard 61, instance b
U_A2 = 910_022       # shard 62, instance b
U_DEFAULT = 909_965  # shard 5, instance a
USERS = (U_A, U_A2, U_DEFAULT)
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, created_at, updated_at) "
          "VALUES (%s, 7, 0, %s, NOW(), NOW())")


def shard_totals(direct, user: int) -> list[str]:
    """What the user's shard holds, read on the backend itself."""
    with direct("a" if user % 120 < 60 else "b").cursor() as cur:
        cur.execute(f"SELECT total FROM user_{user % 120:03d}.orders WHERE user_id = %s "
                    "ORDER BY id", (user,))
        return [str(r[0]) for r in cur.fetchall()]


def prepared_xids(direct, instance: str) -> list[str]:
    with direct(instance).cursor() as cur:
        cur.execute("XA RECOVER")
        return [bytes(r[3])[:r[1]].decode() for r in cur.fetchall()]


@pytest.fixture(scope="module")
def xa_dal(tmp_path_factory):
    directory = tmp_path_factory.mktemp("xa")
    with own_dal(directory, transactions={"mode": "xa",
                                          "decision_log": str(directory / "xa.log")}) as dal:
        yield dal


@pytest.fixture
def clean(direct):
    def wipe() -> None:
        for instance in ("a", "b"):  # what a failed test left prepared holds row locks
            with direct(instance).cursor() as cur:
                cur.execute("XA RECOVER")
                for _, length, _, data in cur.fetchall():
                    gtrid, bqual = bytes(data)[:length], bytes(data)[length:]
                    if gtrid.startswith(b"dal:"):
                        with contextlib.suppress(pymysql.MySQLError):  # owner still connected
                            cur.execute(f"XA ROLLBACK X'{gtrid.hex()}',X'{bqual.hex()}'")
        for user in USERS:
            with direct("a" if user % 120 < 60 else "b").cursor() as cur:
                cur.execute(f"DELETE FROM user_{user % 120:03d}.orders WHERE user_id = %s",
                            (user,))
    wipe()
    yield
    wipe()


def test_a_transaction_over_both_instances_commits_on_every_shard(xa_dal, direct,
                                                                  clean) -> None:
    before = xa_dal.metric("dal_xa_transactions_total", outcome="committed")
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        cur.execute(INSERT, (U_A2, "3.00"))
        # A scatter read inside the transaction sees the transaction's own rows...
        cur.execute("SELECT user_id, total FROM orders WHERE user_id IN %s ORDER BY user_id",
                    (USERS,))
        assert [(r[0], str(r[1])) for r in cur.fetchall()] == [
            (U_DEFAULT, "2.00"), (U_A, "1.00"), (U_A2, "3.00")]
        # ...which nobody else sees before COMMIT.
        assert shard_totals(direct, U_A) == [] and shard_totals(direct, U_DEFAULT) == []
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["1.00"]
    assert shard_totals(direct, U_A2) == ["3.00"]
    assert shard_totals(direct, U_DEFAULT) == ["2.00"]
    assert xa_dal.metric("dal_xa_transactions_total", outcome="committed") == before + 1
    assert prepared_xids(direct, "a") == [] and prepared_xids(direct, "b") == []
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_rollback_leaves_nothing_on_any_shard(xa_dal, direct, clean) -> None:
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        cur.execute("ROLLBACK")
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id IN %s", (USERS,))
        assert cur.fetchone() == (0,)
    assert shard_totals(direct, U_A) == [] and shard_totals(direct, U_DEFAULT) == []
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_autocommit_off_commits_each_transaction_on_every_shard(xa_dal, direct,
                                                                clean) -> None:
    conn = xa_dal.connect(autocommit=False)  # pymysql's default: SET autocommit = 0
    with conn.cursor() as cur:
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        conn.commit()
        cur.execute(INSERT, (U_A2, "5.00"))
        cur.execute(INSERT, (U_DEFAULT, "6.00"))
        conn.rollback()
    assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_A2) == []
    assert shard_totals(direct, U_DEFAULT) == ["2.00"]
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_one_instance_commits_in_one_phase(xa_dal, direct, clean) -> None:
    before = xa_dal.metric("dal_xa_transactions_total", outcome="one_phase")
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_A2, "2.00"))  # another shard of the same instance
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_A2) == ["2.00"]
    assert xa_dal.metric("dal_xa_transactions_total", outcome="one_phase") == before + 1
    conn.close()


def test_a_failed_prepare_rolls_back_every_branch(xa_dal, direct, clean) -> None:
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        cur.execute(INSERT, (U_A, "1.00"))
        # The branch on instance b loses its connection (the backend kills it) before COMMIT.
        with direct("b", account="root").cursor() as kill:
            kill.execute("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX")
            (thread,), = kill.fetchall()
            kill.execute(f"KILL CONNECTION {thread}")
        time.sleep(0.3)
        with pytest.raises(pymysql.MySQLError) as failure:
            cur.execute("COMMIT")
    code, message = failure.value.args
    assert code == 1402 and "backend b" in message and "rolled back" in message
    assert shard_totals(direct, U_DEFAULT) == [] and shard_totals(direct, U_A) == []
    assert prepared_xids(direct, "a") == [] and prepared_xids(direct, "b") == []
    with conn.cursor() as cur:  # the session goes on
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (U_A,))
        assert cur.fetchone() == (0,)
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_what_xa_cannot_do_is_refused_and_the_transaction_stays_usable(xa_dal, direct,
                                                                      clean) -> None:
    conn = xa_dal.connect(user="admin", password="admin")  # DDL reaches the backend
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SAVEPOINT s1")
        assert refused.value.args[0] == 1235 and "mode 'xa'" in refused.value.args[1]
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SET autocommit = 1")
        assert refused.value.args[0] == 1179 and "COMMIT or ROLLBACK first" in refused.value.args[1]
        with pytest.raises(pymysql.MySQLError) as refused:  # MariaDB's own refusal inside XA
            cur.execute("CREATE TABLE xa_refused (a INT)")
        assert refused.value.args[0] == 1399
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_DEFAULT) == ["2.00"]
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_a_streamed_scatter_in_a_transaction_reads_its_writes_and_survives_an_error(
        xa_dal, direct, clean) -> None:
    """A merge-free scatter read inside the transaction streams on its branches: it sees the
    transaction's rows; a read every shard refuses leaves the transaction usable."""
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
        cur.execute("SELECT user_id, total FROM orders WHERE total IN (1.00, 2.00) "
                    "AND user_id IN %s", (USERS,))  # no ORDER BY: streamed, shard order
        assert sorted((r[0], str(r[1])) for r in cur.fetchall()) == [
            (U_DEFAULT, "2.00"), (U_A, "1.00")]
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("SELECT no_such_column FROM orders")
        assert refused.value.args[0] == 1054
        cur.execute(INSERT, (U_A2, "3.00"))
        cur.execute("COMMIT")
    assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_A2) == ["3.00"]
    assert shard_totals(direct, U_DEFAULT) == ["2.00"]
    assert prepared_xids(direct, "a") == [] and prepared_xids(direct, "b") == []
    conn.close()
    assert_pools_idle(xa_dal.port)


def test_a_client_that_vanishes_mid_transaction_is_rolled_back(xa_dal, direct,
                                                               clean) -> None:
    conn = xa_dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
    conn._sock.shutdown(socket.SHUT_RDWR)  # no COM_QUIT, no ROLLBACK
    conn._sock.close()
    assert_pools_idle(xa_dal.port)
    assert shard_totals(direct, U_A) == [] and shard_totals(direct, U_DEFAULT) == []


def test_mode_single_still_refuses_a_second_shard(connect, clean) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute(INSERT, (U_DEFAULT, "2.00"))
        assert refused.value.args[0] == 1235
        cur.execute("ROLLBACK")


# -- recovery ----------------------------------------------------------------------------------


def _recover(config: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dal.cli", "xa", "recover", "--config",
                           str(config), *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def _two_branches(dal):
    """A connection whose open transaction wrote on both instances."""
    conn = dal.connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(INSERT, (U_A, "1.00"))
        cur.execute(INSERT, (U_DEFAULT, "2.00"))
    return conn


def _commit_then_crash(tmp_path: Path, monkeypatch) -> tuple:
    """A DAL that pauses after logging its decision is killed there: both branches stay
    prepared, the decision is on disk. Returns (config path, decision log path)."""
    monkeypatch.setenv("DAL_XA_PAUSE_AFTER_DECISION", "30")
    log = tmp_path / "xa.log"
    with own_dal(tmp_path, transactions={"mode": "xa", "decision_log": str(log)}) as dal:
        conn = _two_branches(dal)
        committer = threading.Thread(target=lambda: _ignore(conn.query, "COMMIT"), daemon=True)
        committer.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"decision"' not in (
                log.read_text() if log.exists() else ""):
            time.sleep(0.05)
        dal.proc.proc.kill()  # SIGKILL: no drain, no XA COMMIT
        dal.proc.proc.wait()
        config = dal.path
    monkeypatch.delenv("DAL_XA_PAUSE_AFTER_DECISION")
    return config, log


def _closing(backend: dict) -> contextlib.closing:
    """A direct connection of its own, closed at the end of the block."""
    return contextlib.closing(pymysql.connect(host=backend["host"], port=backend["port"],
                                              user=backend["user"],
                                              password=backend["password"], autocommit=True))


def _ignore(function, *args) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        function(*args)


def test_recover_completes_a_commit_decided_before_a_crash(tmp_path, monkeypatch, direct,
                                                           clean) -> None:
    config, log = _commit_then_crash(tmp_path, monkeypatch)
    gtrid = json.loads(log.read_text().splitlines()[0])["xid"]
    assert gtrid in prepared_xids(direct, "a") and gtrid in prepared_xids(direct, "b")
    assert shard_totals(direct, U_A) == []  # prepared, not yet visible

    dry = _recover(config)
    assert dry.returncode == 0, dry.stderr
    assert f"would commit {gtrid}" in dry.stdout and "would commit 2" in dry.stdout
    assert gtrid in prepared_xids(direct, "a"), "a dry run changed something"

    done = _recover(config, "--apply")
    assert done.returncode == 0, done.stderr
    assert "committed 2, rolled back 0" in done.stdout
    assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_DEFAULT) == ["2.00"]
    assert prepared_xids(direct, "a") == [] and prepared_xids(direct, "b") == []
    assert '"done":true' in log.read_text()


def test_startup_recovery_commits_decided_and_rolls_back_undecided(tmp_path, monkeypatch,
                                                                   direct, backends,
                                                                   clean) -> None:
    _, log = _commit_then_crash(tmp_path, monkeypatch)
    gtrid = json.loads(log.read_text().splitlines()[0])["xid"]
    # A branch DAL prepared but never decided (a crash before the decision), and one that is
    # not DAL's: the first is rolled back, the second left alone.
    # Each is prepared on a connection closed at once: MariaDB lets another connection
    # resolve a prepared branch only once its own connection has gone.
    undecided = "dal:0:0:test:1"
    with _closing(backends["a"]) as owner, owner.cursor() as cur:
        cur.execute(f"XA START '{undecided}','a'")
        gene = U_DEFAULT % 120 + 120 * 7 + 14_400 * 123_457  # id % 120, (id // 120) % 120
        cur.execute(f"INSERT INTO user_{U_DEFAULT % 120:03d}.orders (id, user_id, merchant_id, "
                    "status, total, created_at, updated_at) VALUES "
                    f"({gene}, {U_DEFAULT}, 7, 0, 9.00, NOW(), NOW())")
        cur.execute(f"XA END '{undecided}','a'")
        cur.execute(f"XA PREPARE '{undecided}','a'")
    foreign = "other-app:1"
    with _closing(backends["b"]) as owner, owner.cursor() as cur:
        cur.execute(f"XA START '{foreign}'")
        cur.execute(f"XA END '{foreign}'")
        cur.execute(f"XA PREPARE '{foreign}'")
    try:
        with own_dal(tmp_path, transactions={"mode": "xa", "decision_log": str(log)}) as dal:
            assert shard_totals(direct, U_A) == ["1.00"]
            assert shard_totals(direct, U_DEFAULT) == ["2.00"]  # not the undecided 9.00
            assert prepared_xids(direct, "a") == []
            assert prepared_xids(direct, "b") == [foreign]
            assert dal.metric("dal_xa_transactions_total", outcome="recovered_committed") == 2
            assert dal.metric("dal_xa_transactions_total",
                              outcome="recovered_rolled_back") == 1
            assert gtrid not in log.read_text()  # compacted: nothing left in doubt
    finally:  # (an empty branch answers its rollback with 1402, and is gone)
        with direct("b").cursor() as cur, contextlib.suppress(pymysql.MySQLError):
            cur.execute(f"XA ROLLBACK '{foreign}'")


def test_a_branch_connection_lost_after_the_decision_is_committed_anyway(
        tmp_path, monkeypatch, direct, clean) -> None:
    monkeypatch.setenv("DAL_XA_PAUSE_AFTER_DECISION", "1")
    log = tmp_path / "xa.log"
    with own_dal(tmp_path, transactions={"mode": "xa", "decision_log": str(log)}) as dal:
        conn = _two_branches(dal)
        outcome: list = []
        committer = threading.Thread(target=lambda: outcome.append(conn.query("COMMIT")))
        committer.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"decision"' not in (
                log.read_text() if log.exists() else ""):
            time.sleep(0.02)
        # During the pause the branch on b is prepared; its connection is killed.
        with direct("b", account="root").cursor() as cur:
            cur.execute("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX")
            threads = [row[0] for row in cur.fetchall()]
            for thread in threads:
                cur.execute(f"KILL CONNECTION {thread}")
        assert threads, "no prepared branch found on b"
        committer.join(15)
        assert outcome, "COMMIT did not answer"
        # The prepared branch survived its connection; DAL committed it from another one.
        assert shard_totals(direct, U_A) == ["1.00"] and shard_totals(direct, U_DEFAULT) == ["2.00"]
        assert prepared_xids(direct, "a") == [] and prepared_xids(direct, "b") == []
        assert dal.metric("dal_xa_transactions_total", outcome="committed") == 1
        conn.close()
        assert_pools_idle(dal.port)


def test_lock_wait_timeout_bounds_a_wait_for_another_instance(tmp_path, direct, clean) -> None:
    """A deadlock across instances is invisible to both: `transactions.lock_wait_timeout` ends
    the wait in seconds, only inside XA transactions; every connection gets the default back."""
    with own_dal(tmp_path, transactions={"mode": "xa", "lock_wait_timeout": 2,
                                         "decision_log": str(tmp_path / "xa.log")}) as dal:
        holder = direct("b")
        holder.autocommit(False)
        with holder.cursor() as cur:  # a row on instance b, locked by another client
            cur.execute(f"INSERT INTO user_{U_A % 120:03d}.orders (id, user_id, merchant_id, "
                        "status, total, created_at, updated_at) VALUES (%s, %s, 7, 0, 1, NOW(), "
                        "NOW())", (U_A % 120 + 120 * 7 + 14400 * 99, U_A))
        conn = dal.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@innodb_lock_wait_timeout")
                assert cur.fetchone()[0] == 50
                cur.execute("BEGIN")
                cur.execute(INSERT, (U_DEFAULT, "2.00"))  # a branch on instance a
                cur.execute("SELECT @@innodb_lock_wait_timeout")
                assert cur.fetchone()[0] == 2
                started = time.monotonic()
                with pytest.raises(pymysql.MySQLError) as info:
                    cur.execute("UPDATE orders SET total = 5 WHERE user_id = %s", (U_A,))
                waited = time.monotonic() - started
                assert info.value.args[0] == 1205
                assert 1.5 <= waited < 10
                cur.execute("ROLLBACK")
                for _ in range(4):  # whichever pooled connection serves it: the default
                    cur.execute("SELECT @@innodb_lock_wait_timeout")
                    assert cur.fetchone()[0] == 50
        finally:
            conn.close()
            holder.rollback()
        assert shard_totals(direct, U_DEFAULT) == []
        assert_pools_idle(dal.port)
