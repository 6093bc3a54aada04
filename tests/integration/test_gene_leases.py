"""Order ids never repeat across restarts and across DAL processes: worker ids are leased from
``dal_meta.gene_workers`` on the default instance, each with a persisted high-water mark."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql
import pytest

from config.loader import load_config
from dal.worker_lease import TABLE, LeaseError, WorkerLease
from router.genes import tick_of_id, worker_of_id
from tests.dal_process import ROOT, TEST_CONFIG, DalProcess, free_port, write_config
from tests.own_dal import OwnDal, own_dal

BURST = 50_000


def control_instance():
    config = load_config(TEST_CONFIG)
    return config.instances[next(iter(config.databases.values())).default_instance]


def burst(worker: int, out: Path, ending: str) -> list[int]:
    """Run tests/gene_burst.py in a process of its own; the ids it issued."""
    subprocess.run([sys.executable, "-m", "tests.gene_burst", str(TEST_CONFIG), str(worker),
                    str(BURST), str(out), ending], cwd=ROOT, check=True, timeout=60)
    return [int(line) for line in out.read_text().split()]


@pytest.mark.parametrize("ending", ["crash", "clean"])
def test_a_restarted_worker_issues_only_larger_ids(tmp_path: Path, ending: str) -> None:
    """A burst runs the generator ahead of the clock; the restarted process (same configured
    worker id, taken over at once because its holder's pid is gone) starts above it."""
    first = burst(31, tmp_path / "first", ending)
    second = burst(31, tmp_path / "second", "clean")
    assert len(set(first)) == len(set(second)) == BURST
    assert not set(first) & set(second)
    assert min(second) > max(first)
    assert {worker_of_id(i) for i in first + second} == {31}


def test_a_configured_worker_id_held_elsewhere_is_refused_until_its_lease_expires(
        tmp_path: Path, direct) -> None:
    elsewhere = WorkerLease(control_instance(), holder="otherhost:1:test")
    grant = elsewhere.acquire(28)
    assert grant.worker_id == 28
    try:
        with pytest.raises(LeaseError, match=r"server\.worker_id 28 is leased by otherhost"):
            WorkerLease(control_instance()).acquire(28)
        port = free_port()
        path = tmp_path / "dal.yaml"
        write_config(path, worker_id=28, listen={"host": "127.0.0.1", "port": port},
                     metrics={"host": "127.0.0.1", "port": free_port()})
        with pytest.raises(RuntimeError, match="exited with 1"):
            DalProcess(path, port, tmp_path / "dal.log").start()
        assert "server.worker_id 28 is leased by otherhost" in (tmp_path / "dal.log").read_text()
        # The holder stops renewing (a crash on another host): once its lease has expired, a
        # new process takes the id over, starting at the holder's high-water mark ...
        with direct().cursor() as cur:
            cur.execute(f"UPDATE {TABLE} SET lease_until = NOW(3) - INTERVAL 1 SECOND "
                        "WHERE worker_id = 28")
        successor = WorkerLease(control_instance())
        taken = successor.acquire(28)
        assert taken.start >= grant.ceiling
        # ... and the old holder, should it come back, learns it lost the id and stops.
        with pytest.raises(LeaseError, match="lost"):
            elsewhere.reserve(grant.ceiling)
        successor.release(taken.start)
    finally:
        elsewhere.close()


def test_two_dal_workers_lease_different_ids_and_never_repeat_one(tmp_path: Path,
                                                                 direct) -> None:
    """`dal serve` with `server.workers: 2` (two processes on one port, one config file):
    clients insert orders concurrently for a bounded time, many rows per statement so that the
    generators borrow ahead; every insert succeeds and no id appears twice."""
    port = free_port()
    path = tmp_path / "dal.yaml"
    raw = write_config(path, workers=2, listen={"host": "127.0.0.1", "port": port},
                       metrics={"host": "127.0.0.1", "port": free_port()})
    proc = DalProcess(path, port, tmp_path / "dal.log").start()
    assert proc.proc is not None
    # All users on user shard 7 and merchants on merchant shard 9: ids differ only by base,
    # so a repeated base would be a duplicate key.
    first_user = random.randrange(10**9, 10**12) * 120 + 7
    users = [first_user + 120 * k for k in range(8)]
    inserted: list[int] = []
    errors: list[str] = []
    try:
        pids = {proc.proc.pid, *held_by_children(proc.proc.pid)}
        wait_for(lambda: len(leases_of(direct, pids)) == 2)
        deadline = time.monotonic() + 4

        def client(user: int) -> None:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="app", password="app",
                                   database="trade", autocommit=True)
            try:
                with conn.cursor() as cur:
                    while time.monotonic() < deadline:
                        rows = random.randint(1, 200)
                        values = ", ".join([f"({user}, {120 * user + 9}, 1, 2.50, NOW(6), "
                                            "NOW(6))"] * rows)
                        try:
                            inserted.append(cur.execute(
                                "INSERT INTO orders (user_id, merchant_id, status, total, "
                                f"created_at, updated_at) VALUES {values}"))
                        except pymysql.MySQLError as exc:
                            errors.append(str(exc))
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        leases = leases_of(direct, pids)
        shown = OwnDal(proc, path, raw).admin("SHOW DAL GENES")
    finally:
        code = proc.stop()
    assert code == 0
    assert errors == []
    where = f"WHERE user_id IN ({', '.join(map(str, users))})"
    with direct().cursor() as cur:
        cur.execute(f"SELECT id FROM user_007.orders {where}")
        ids = [row[0] for row in cur.fetchall()]
        cur.execute(f"DELETE FROM user_007.orders {where}")
    assert len(ids) == sum(inserted) > 1000
    assert len(set(ids)) == len(ids)
    workers = set(leases.values())
    assert len(workers) == 2, f"the two processes hold worker ids {leases}"
    assert {worker_of_id(i) for i in ids} == workers, "both processes generated ids"
    assert {r["worker_id"] for r in shown if int(r["holder"].split(":")[1]) in pids} == workers
    # Stopped cleanly, each gave its id back with a high-water mark above all it issued.
    with direct().cursor() as cur:
        cur.execute(f"SELECT worker_id, ceiling, lease_until <= NOW(3) FROM {TABLE} "
                    f"WHERE worker_id IN ({', '.join(map(str, workers))})")
        for worker, ceiling, expired in cur.fetchall():
            assert expired == 1
            assert ceiling > max(tick_of_id(i) for i in ids if worker_of_id(i) == worker)


def test_show_dal_genes_and_the_borrowed_seconds_metric(tmp_path: Path) -> None:
    with own_dal(tmp_path) as dal:
        conn = dal.connect()
        user = random.randrange(10**9, 10**12)
        values = ", ".join([f"({user}, 5, 1, 1.00, NOW(6), NOW(6))"] * 2000)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, "
                            f"created_at, updated_at) VALUES {values}")
                first = cur.lastrowid
                cur.execute(f"DELETE FROM orders WHERE user_id = {user}")
        finally:
            conn.close()
        rows = [r for r in dal.admin("SHOW DAL GENES") if r["this_process"] == "yes"]
        assert len(rows) == 1
        mine = rows[0]
        assert mine["worker_id"] == worker_of_id(first)
        assert float(mine["lease_seconds_left"]) > 20
        assert mine["ids_below"] > first  # the persisted high-water mark covers the ids issued
        assert int(mine["borrowed_ms"]) > 0  # 2000 ids in one statement outrun 32 per millisecond
        assert dal.metric("dal_gene_borrowed_seconds_total") == int(mine["borrowed_ms"]) / 1000


def held_by_children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                           check=False)
    return {int(p) for p in found.stdout.split()}


def leases_of(direct, pids: set[int]) -> dict[int, int]:
    """Live leases held by these processes: pid -> worker id."""
    with direct().cursor() as cur:
        cur.execute(f"SELECT worker_id, holder FROM {TABLE} WHERE lease_until > NOW(3)")
        rows = cur.fetchall()
    found = {int(holder.split(":")[1]): worker for worker, holder in rows}
    return {pid: worker for pid, worker in found.items() if pid in pids}


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)
