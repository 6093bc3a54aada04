"""Fault test: kill -9 one backend instance under load, then restart it.

Uses a DAL process of its own (breaker window 2 s, cool-down 1 s) and the running test
instances. Statements for the live instance must keep succeeding; those for the dead one
must fail within 1 s, with the breaker's error once it opened; after the restart DAL must
recover by itself and give every backend connection back to its pool. The killed instance
is always restarted, so the rest of the suite finds it running.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import pymysql
import pytest

from tests.conftest import assert_pools_idle
from tests.dal_process import ROOT, running_test_config
from tests.own_dal import own_dal
from tools import localdb

USERS = {"a": 1, "b": 61}  # user shards 1 (instance a) and 61 (instance b)
BREAKER = {"window": 2.0, "min_calls": 5, "error_rate": 0.5, "cool_down": 1.0}


@dataclass
class Outcome:
    instance: str
    started: float
    seconds: float
    code: int = 0
    message: str = ""


@dataclass
class Load:
    """Client threads alternating point reads on instance a and instance b."""

    port: int
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        conn = None
        turn = 0
        while not self.stop.is_set():
            instance = "ab"[turn % 2]
            turn += 1
            started = time.monotonic()
            outcome = Outcome(instance, started, 0.0)
            try:
                if conn is None:
                    conn = pymysql.connect(host="127.0.0.1", port=self.port, user="app",
                                           password="app", database="trade", autocommit=True,
                                           connect_timeout=5, read_timeout=10)
                with conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s",
                                (USERS[instance],))
                    cur.fetchall()
            except pymysql.MySQLError as exc:
                outcome.code = exc.args[0] if exc.args else -1
                outcome.message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
                if outcome.code >= 2000:  # the client connection itself broke: reconnect
                    conn = None
            outcome.seconds = time.monotonic() - started
            with self.lock:
                self.outcomes.append(outcome)
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def since(self, t: float, instance: str) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.instance == instance and o.started >= t]


def _managed_b(monkeypatch: pytest.MonkeyPatch) -> localdb.Managed:
    monkeypatch.chdir(ROOT)
    cfg = running_test_config()
    return next(m for m in localdb.managed(cfg) if m.name == "b")


def _ensure_running(m: localdb.Managed) -> None:
    if localdb.server_pid(m) is None:
        localdb.up_one(m, lambda line: None)


def test_dead_instance_fails_fast_and_recovers(tmp_path, monkeypatch) -> None:
    b = _managed_b(monkeypatch)
    with own_dal(tmp_path, breaker=BREAKER, pool={"max_size": 4, "connect_timeout": 2.0}) as dal:
        load = Load(dal.port)
        threads = [threading.Thread(target=load.run, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        try:
            _kill_and_restart(dal, load, b)
        finally:
            load.stop.set()
            for t in threads:
                t.join(10)
            _ensure_running(b)
        assert_pools_idle(dal.port)
        rows = {r["instance"]: r for r in dal.admin("SHOW DAL POOLS")}
        assert rows["b"]["in_use"] == 0 and rows["b"]["idle"] >= 1
        assert dal.metric("dal_pool_in_use", instance="b") == 0


def _kill_and_restart(dal, load: Load, b: localdb.Managed) -> None:
    time.sleep(1.0)
    assert all(o.code == 0 for o in load.outcomes), load.outcomes[:5]
    pid = localdb.server_pid(b)
    assert pid is not None
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    # The breaker opens, and the metric shows it.
    state = 0.0
    while time.monotonic() < killed + 5 and state != 2:
        state = dal.metric("dal_breaker_state", instance="b")
        time.sleep(0.05)
    assert state == 2, "breaker of instance b did not open within 5 s of the kill"
    opened = time.monotonic()
    time.sleep(2.0)  # a few cool-downs: probes fail, the breaker reopens
    assert dal.metric("dal_breaker_transitions_total", instance="b", to="open") >= 1
    rows = {r["instance"]: r for r in dal.admin("SHOW DAL BREAKERS")}
    assert rows["b"]["state"] in ("open", "half_open") and rows["a"]["state"] == "closed"

    dead_b = load.since(killed, "b")
    assert dead_b and all(o.code for o in dead_b)
    slow = [o for o in dead_b if o.seconds >= 1.0]
    assert not slow, f"statements for the dead instance took >= 1 s: {slow[:3]}"
    after_open = load.since(opened, "b")
    assert after_open
    assert all(o.code == 1105 for o in after_open), {o.message for o in after_open}
    # Only the half-open probes (one per cool-down) try to connect and get the connect error.
    probes = [o for o in after_open if "circuit breaker for backend instance b" not in o.message]
    assert len(probes) <= 4, {o.message for o in probes}
    live_a = load.since(killed, "a")
    assert live_a and all(o.code == 0 for o in live_a), [o for o in live_a if o.code][:3]

    _ensure_running(b)
    restarted = time.monotonic()
    deadline = restarted + 15
    recovered = False
    while time.monotonic() < deadline and not recovered:
        time.sleep(0.2)
        recent = load.since(time.monotonic() - 0.5, "b")
        recovered = (bool(recent) and all(o.code == 0 for o in recent)
                     and dal.metric("dal_breaker_state", instance="b") == 0)
    assert recovered, "DAL did not recover by itself within 15 s of the restart"
    assert dal.metric("dal_breaker_transitions_total", instance="b", to="closed") >= 1
    assert all(o.code == 0 for o in load.since(time.monotonic() - 0.5, "a"))
    print(f"breaker open {opened - killed:.2f} s after the kill (metric polled); "
          f"{len(dead_b)} statements for b while dead, slowest {max(o.seconds for o in dead_b):.3f}"
          f" s; {len(live_a)} for a, all ok; recovered {time.monotonic() - restarted:.1f} s "
          "after the restart returned")
