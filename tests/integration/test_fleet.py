"""A DAL of two workers adds up: /metrics and SHOW DAL count what the clients did on both,
connection ids are unique across workers and KILL reaches another worker's connection, SET DAL
changes every worker, each worker holds its own gene worker id."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from router.genes import worker_of_id
from tests.dal_process import ROOT, DalProcess, free_port, write_config
from tests.metrics_scrape import scrape, value

WORKERS = 2
PROBE = "SELECT COUNT(*) AS fleet_probe FROM orders WHERE user_id = %s"
PROBE_SHAPE = "SELECT COUNT(*) AS fleet_probe FROM orders WHERE user_id = ?"


class Fleet:
    """The running two-worker DAL: its port, metrics port and first process."""

    def __init__(self, proc: DalProcess, metrics_port: int) -> None:
        self.proc = proc
        self.port = proc.port
        self.metrics_port = metrics_port

    def connect(self, user: str = "app", password: str = "app", **kwargs: object):
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               database="trade", autocommit=True, read_timeout=30, **kwargs)

    def admin(self, sql: str) -> list[dict]:
        conn = self.connect("admin", "admin", cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def clients_on_both(self, count: int) -> list[pymysql.connections.Connection]:
        """``count`` app connections or more, until both workers have at least two."""
        conns = []
        while len(conns) < count or min(sum(1 for c in conns if worker(c.thread_id()) == w)
                                        for w in range(WORKERS)) < 2:
            conns.append(self.connect())
            assert len(conns) < 200, "the kernel never spread clients over both workers"
        return conns


def worker(connection_id: int) -> int:
    """The worker that gave out a connection id (worker i counts i + 1, i + 1 + WORKERS, ...)."""
    return (connection_id - 1) % WORKERS


def close_all(conns: list) -> None:
    for conn in conns:
        conn.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("fleet")
    path, port, metrics = directory / "dal.yaml", free_port(), free_port()
    write_config(path, workers=WORKERS, listen={"host": "127.0.0.1", "port": port},
                 metrics={"host": "127.0.0.1", "port": metrics})
    proc = DalProcess(path, port, directory / "dal.log").start()
    deadline = time.monotonic() + 20
    while value(scrape(metrics), "dal_workers", state="answering") < WORKERS:
        assert time.monotonic() < deadline, "the second worker never answered"
        time.sleep(0.2)
    try:
        yield Fleet(proc, metrics)
    finally:
        assert proc.stop() == 0


def test_metrics_and_show_dal_count_the_statements_of_both_workers(fleet: Fleet) -> None:
    before = scrape(fleet.metrics_port)
    shown_before = {r["fingerprint"]: r["count"] for r in fleet.admin("SHOW DAL STATEMENTS")}
    conns = fleet.clients_on_both(6)
    sent = 0
    try:
        for i, conn in enumerate(conns):
            with conn.cursor() as cur:
                for _ in range(3 + i % 4):
                    cur.execute(PROBE, (random.randrange(10**6),))
                    sent += 1
        during = scrape(fleet.metrics_port)
        pools = fleet.admin("SHOW DAL POOLS")
        counters = {(r["counter"], r["label"]): r["value"]
                    for r in fleet.admin("SHOW DAL COUNTERS")}
    finally:
        close_all(conns)
    after = scrape(fleet.metrics_port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dal_statements_total", plan="shard", kind="select", result="ok") == sent
    assert delta("dal_statement_latency_seconds_count", plan="shard", kind="select") == sent
    assert delta("dal_statement_latency_seconds_bucket", plan="shard", kind="select",
                 le="+Inf") == sent
    assert delta("dal_logins_total", result="ok") >= len(conns)
    assert value(during, "dal_client_connections") == len(conns)
    assert value(after, "dal_workers", state="answering") == WORKERS
    assert value(after, "dal_workers", state="missing") == 0
    # Each worker has half of pool.max_size (16); the gauge sums them.
    assert value(after, "dal_pool_max", instance="a") == 16
    # SHOW DAL: statements summed per fingerprint, pools per worker, counters summed.
    shown = {r["fingerprint"]: r for r in fleet.admin("SHOW DAL STATEMENTS")}
    assert int(shown[PROBE_SHAPE]["count"]) - int(shown_before.get(PROBE_SHAPE, 0)) == sent
    assert {(r["worker"], r["instance"]) for r in pools} == {(w, i) for w in range(WORKERS)
                                                             for i in ("a", "b")}
    assert sum(r["max"] for r in pools if r["instance"] == "a") == 16
    assert counters[("workers", "answered")] == WORKERS
    assert counters[("sessions", "connected")] == len(conns) + 1  # and the admin's own
    assert counters[("statements", "shard:select:ok")] == value(
        during, "dal_statements_total", plan="shard", kind="select", result="ok")


def test_connection_ids_are_unique_and_kill_reaches_another_workers_connection(
        fleet: Fleet) -> None:
    conns = fleet.clients_on_both(20)
    admins = [fleet.connect("admin", "admin")]
    try:
        ids = [c.thread_id() for c in conns]
        assert len(set(ids)) == len(ids)
        assert {worker(i) for i in ids} == set(range(WORKERS))
        admin = admins[0]
        here = worker(admin.thread_id())
        victims = [c for c in conns if worker(c.thread_id()) != here]
        with admin.cursor() as cur:
            cur.execute("SHOW PROCESSLIST")
            assert set(ids) | {admin.thread_id()} <= {int(row[0]) for row in cur.fetchall()}
            # KILL QUERY of a statement running on the other worker ends it; the connection
            # stays.
            sleeper, outcome = victims[0], {}

            def sleep() -> None:
                started = time.monotonic()
                try:
                    with sleeper.cursor() as sc:
                        sc.execute("SELECT SLEEP(20)")
                        outcome["rows"] = sc.fetchall()
                except pymysql.MySQLError as exc:
                    outcome["error"] = exc.args[0]
                outcome["seconds"] = time.monotonic() - started

            thread = threading.Thread(target=sleep)
            thread.start()
            deadline = time.monotonic() + 5
            while not busy(cur, sleeper.thread_id()):
                assert time.monotonic() < deadline, "the other worker's statement never showed"
                time.sleep(0.1)
            cur.execute(f"KILL QUERY {sleeper.thread_id()}")
            thread.join(15)
            assert outcome["seconds"] < 10, outcome
            with sleeper.cursor() as sc:
                sc.execute("SELECT 1")
                assert sc.fetchone() == (1,)
            # KILL CONNECTION of the other worker's connection closes it.
            cur.execute(f"KILL {victims[1].thread_id()}")
            with pytest.raises(pymysql.MySQLError), victims[1].cursor() as vc:
                vc.execute("SELECT 1")
            # An id no worker gave out, whichever worker it would belong to: 1094.
            for unknown in (10**6 + 1, 10**6 + 2):
                with pytest.raises(pymysql.MySQLError) as refused:
                    cur.execute(f"KILL {unknown}")
                assert refused.value.args[0] == 1094
        # An app user may not kill another user's connection on the other worker: 1095.
        killer = conns[0]
        while worker(admins[-1].thread_id()) == worker(killer.thread_id()):
            admins.append(fleet.connect("admin", "admin"))
        with killer.cursor() as cur, pytest.raises(pymysql.MySQLError) as denied:
            cur.execute(f"KILL {admins[-1].thread_id()}")
        assert denied.value.args[0] == 1095
    finally:
        close_all(admins)
        for conn in conns:
            with contextlib.suppress(pymysql.MySQLError):
                conn.close()


def busy(cur, connection_id: int) -> bool:
    """Whether SHOW PROCESSLIST shows ``connection_id`` running a statement."""
    cur.execute("SHOW PROCESSLIST")
    return any(int(row[0]) == connection_id and row[4] == "Query" for row in cur.fetchall())


def test_set_dal_changes_every_worker(fleet: Fleet) -> None:
    try:
        fleet.admin("SET DAL rules.max_rows = 4321")
        rows = [r for r in fleet.admin("SHOW DAL RULES") if r["rule"] == "rules.max_rows"]
        # The rows are merged by (rule, value): a worker left behind would show its own row.
        assert [r["value"] for r in rows] == ["4321"]
    finally:
        fleet.admin("SET DAL rules.max_rows = DEFAULT")
    rows = [r for r in fleet.admin("SHOW DAL RULES") if r["rule"] == "rules.max_rows"]
    assert [r["value"] for r in rows] == ["0"]


def test_each_worker_issues_ids_under_its_own_gene_worker_id(fleet: Fleet) -> None:
    genes = {r["worker"]: r["worker_id"] for r in fleet.admin("SHOW DAL GENES")
             if r["worker"] is not None}
    assert set(genes) == set(range(WORKERS))
    assert len(set(genes.values())) == WORKERS
    user = random.randrange(10**9, 10**12)
    conns = fleet.clients_on_both(2)
    issued: dict[int, set[int]] = {}
    try:
        for conn in conns:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, created_at, "
                            "updated_at) VALUES (%s, 5, 1, 1.00, NOW(6), NOW(6))", (user,))
                issued.setdefault(worker(conn.thread_id()), set()).add(
                    worker_of_id(cur.lastrowid))
        with conns[0].cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id = %s", (user,))
    finally:
        close_all(conns)
    assert issued == {w: {genes[w]} for w in range(WORKERS)}


def test_a_dead_workers_counts_stay_in_the_totals(fleet: Fleet) -> None:
    """Last (it kills worker 1): totals never go backwards when a worker is gone."""
    before = scrape(fleet.metrics_port)
    assert fleet.proc.proc is not None
    found = subprocess.run(["pgrep", "-P", str(fleet.proc.proc.pid), "-f", "--",
                            "--worker-index 1"], capture_output=True, text=True, cwd=ROOT,
                           check=False)
    pid = int(found.stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while value(after := scrape(fleet.metrics_port), "dal_workers", state="missing") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for name, labels in (("dal_statements_total", {"plan": "shard", "kind": "select",
                                                   "result": "ok"}),
                         ("dal_logins_total", {"result": "ok"})):
        assert value(after, name, **labels) >= value(before, name, **labels)
    assert value(after, "dal_workers", state="answering") == 1
    assert value(after, "dal_pool_max", instance="a") == 8  # the dead worker's gauges are gone
    rows = fleet.admin("SHOW DAL POOLS")
    assert {r["worker"] for r in rows} == {0}
