"""Fault test: kill -9 one backend instance under load from 32 clients, then restart it.

Uses a DAL process of its own with the default breaker settings and the running test
instances. The breaker of the dead instance must open within 1 s of the kill (measured to the
first `open` in SHOW DAL BREAKERS or the first fast-fail error, whichever comes first);
statements for the live instance must keep succeeding; no client may ever see 1105 "DAL
internal error"; after the restart DAL must recover by itself and give every backend
connection back to its pool. The killed instance is always restarted, so the rest of the
suite finds it running.
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
CLIENTS = 32
BREAKER_REFUSAL = "circuit breaker for backend instance b"
LOST_B = "Lost connection to backend instance 'b' during query"
CANNOT_CONNECT_B = "cannot connect to backend b"


@dataclass
class Outcome:
    instance: str
    started: float
    seconds: float
    code: int = 0
    message: str = ""

    @property
    def ended(self) -> float:
        return self.started + self.seconds


@dataclass
class Load:
    """Client threads alternating point reads on instance a and instance b."""

    port: int
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, first: int) -> None:
        conn = None
        turn = first
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
                if conn is not None and not conn.open:  # DAL closed the client connection
                    conn = None
            outcome.seconds = time.monotonic() - started
            with self.lock:
                self.outcomes.append(outcome)
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def since(self, t: float, instance: str | None = None) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes
                    if (instance is None or o.instance == instance) and o.started >= t]


class BreakerWatch:
    """Polls SHOW DAL BREAKERS on one admin connection; notes when b is first seen open."""

    def __init__(self, port: int) -> None:
        self.conn = pymysql.connect(host="127.0.0.1", port=port, user="admin",
                                    password="admin", cursorclass=pymysql.cursors.DictCursor)
        self.opened: float | None = None
        self.reason = ""
        self.armed = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.conn.cursor() as cur:
                cur.execute("SHOW DAL BREAKERS")
                row = next(r for r in cur.fetchall() if r["instance"] == "b")
            if self.armed.is_set() and row["state"] == "open" and self.opened is None:
                self.opened, self.reason = time.monotonic(), row["reason"]
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.conn.close()


def _managed_b(monkeypatch: pytest.MonkeyPatch) -> localdb.Managed:
    monkeypatch.chdir(ROOT)
    cfg = running_test_config()
    return next(m for m in localdb.managed(cfg) if m.name == "b")


def _ensure_running(m: localdb.Managed) -> None:
    if localdb.server_pid(m) is None:
        localdb.up_one(m, lambda line: None)


def test_dead_instance_fails_fast_and_recovers(tmp_path, monkeypatch) -> None:
    b = _managed_b(monkeypatch)
    with own_dal(tmp_path, pool={"connect_timeout": 2.0}) as dal:
        load = Load(dal.port)
        threads = [threading.Thread(target=load.run, args=(i,), daemon=True)
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        watch = BreakerWatch(dal.port)
        try:
            _kill_and_restart(dal, load, watch, b)
        finally:
            load.stop.set()
            watch.close()
            for t in threads:
                t.join(10)
            _ensure_running(b)
        internal = [o for o in load.outcomes if "internal error" in o.message]
        assert not internal, internal[:3]
        assert_pools_idle(dal.port)
        rows = {r["instance"]: r for r in dal.admin("SHOW DAL POOLS")}
        assert rows["b"]["in_use"] == 0 and rows["b"]["idle"] >= 1
        assert dal.metric("dal_pool_in_use", instance="b") == 0
        assert "DAL internal error" not in dal.proc.log()


def _kill_and_restart(dal, load: Load, watch: BreakerWatch, b: localdb.Managed) -> None:
    time.sleep(1.5)
    warm = load.since(0)
    assert len(warm) > CLIENTS and all(o.code == 0 for o in warm), warm[:5]
    pid = localdb.server_pid(b)
    assert pid is not None
    watch.armed.set()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    # The breaker opens within 1 s: seen in SHOW DAL BREAKERS, or refusing statements.
    deadline = killed + 5
    while time.monotonic() < deadline and watch.opened is None:
        time.sleep(0.01)
    fast_fails = [o.ended for o in load.since(killed, "b") if BREAKER_REFUSAL in o.message]
    seen = [t for t in (watch.opened, min(fast_fails, default=None)) if t is not None]
    assert seen, "breaker of instance b did not open within 5 s of the kill"
    opened = min(seen)
    open_after = opened - killed
    failures_before = [o for o in load.since(killed, "b") if o.code and o.ended <= opened]
    assert open_after < 1.0, f"breaker opened {open_after:.2f} s after the kill"
    assert "in a row" in watch.reason, watch.reason

    time.sleep(2.5)  # past one cool-down: a probe fails, the breaker reopens
    assert dal.metric("dal_breaker_transitions_total", instance="b", to="open") >= 1
    rows = {r["instance"]: r for r in dal.admin("SHOW DAL BREAKERS")}
    assert rows["b"]["state"] in ("open", "half_open") and rows["a"]["state"] == "closed"

    dead_b = load.since(killed, "b")
    assert dead_b and all(o.code for o in dead_b)
    kinds = {o.message.split(";")[0] if LOST_B in o.message else o.message[:40]
             for o in dead_b}
    unexpected = [o for o in dead_b if o.code not in (1105, 2013)
                  or not any(text in o.message for text in
                             (BREAKER_REFUSAL, LOST_B, CANNOT_CONNECT_B))]
    assert not unexpected, (unexpected[:3], kinds)
    slow = [o for o in dead_b if o.seconds >= 1.0]
    assert not slow, f"statements for the dead instance took >= 1 s: {slow[:3]}"
    after_open = [o for o in dead_b if o.started >= opened + 0.05]
    assert after_open
    # Only the half-open probes (one per cool-down) try to connect and get the connect error.
    probes = [o for o in after_open if BREAKER_REFUSAL not in o.message]
    assert len(probes) <= 3, {o.message for o in probes}
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
    print(f"\nbreaker open {open_after:.3f} s after the kill "
          f"(SHOW DAL BREAKERS {'%.3f' % (watch.opened - killed) if watch.opened else '-'} s, "
          f"first fast-fail {'%.3f' % (min(fast_fails) - killed) if fast_fails else '-'} s), "
          f"after {len(failures_before)} failed statements; reason: {watch.reason}; "
          f"{len(dead_b)} statements for b while dead, slowest "
          f"{max(o.seconds for o in dead_b):.3f} s; {len(live_a)} for a, all ok; recovered "
          f"{time.monotonic() - restarted:.1f} s after the restart returned")
