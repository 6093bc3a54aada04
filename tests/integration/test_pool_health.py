"""Pool health: killed connections replaced, idle timeout, max lifetime, min_idle warm-up; and
every pin reason counted in dal_pins_total."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pymysql
import pytest

from tests.conftest import HOST, pool_rows
from tests.dal_process import dal_with_pool
from tests.metrics_scrape import scrape, value

USER_ON_B = 910_041  # shard 81, instance b


def pools(port: int) -> dict[str, dict]:
    return {r["instance"]: r for r in pool_rows(port)}


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_connections_killed_by_the_backend_are_replaced(dal, connect, direct) -> None:
    clients = [connect() for _ in range(4)]
    for conn in clients:  # a few pooled connections to instance b, some of them idle now
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
    for conn in clients:
        conn.commit()
    before = pools(dal.port)["b"]
    assert before["idle"] >= 1
    killer = direct("b")
    with killer.cursor() as cur:
        cur.execute("SHOW PROCESSLIST")
        victims = [row[0] for row in cur.fetchall()
                   if row[1] == "dal" and row[0] != killer.thread_id()]
        for victim in victims:
            cur.execute(f"KILL {victim}")
    assert len(victims) >= before["idle"]
    time.sleep(1.0)  # the kills reach DAL as closed sockets (a busy box may take a while)
    for conn in clients:
        with conn.cursor() as cur:
            for _ in range(5):
                cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
                assert cur.fetchone() == (0,)
    after = pools(dal.port)["b"]
    assert after["closed"] >= before["closed"] + before["idle"]
    assert after["opened"] > before["opened"]


@pytest.fixture
def lively_dal(tmp_path: Path):
    """Short idle timeout and lifetime, fast sweeps, two connections kept warm."""
    proc, _ = dal_with_pool(tmp_path, {"max_size": 4, "min_idle": 2, "idle_timeout": 0.6,
                                       "max_lifetime": 2.0, "sweep_interval": 0.2})
    yield proc
    assert proc.stop() == 0


def test_min_idle_warm_up_idle_timeout_and_max_lifetime(lively_dal, direct) -> None:
    port = lively_dal.port
    assert wait_for(lambda: all(p["idle"] == 2 for p in pools(port).values()), 5), \
        "min_idle connections were not opened at start"
    conns = [pymysql.connect(host=HOST, port=port, user="app", password="app",
                             database="trade") for _ in range(4)]
    try:
        for conn in conns:  # four transactions at once: the pool grows to its maximum
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
        assert pools(port)["b"]["in_use"] == 4
        for conn in conns:
            conn.commit()
        assert pools(port)["b"]["idle"] == 4
        # Idle past idle_timeout: closed, down to min_idle, never below it.
        assert wait_for(lambda: pools(port)["b"]["idle"] == 2, 3)
        time.sleep(0.8)
        assert pools(port)["b"]["idle"] == 2
        # Past max_lifetime even the warm ones are replaced by new connections.
        opened = pools(port)["b"]["opened"]
        assert wait_for(lambda: pools(port)["b"]["opened"] >= opened + 2, 4)
        with conns[0].cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
            assert cur.fetchone() == (0,)
        conns[0].commit()
    finally:
        for conn in conns:
            conn.close()


PINS = [
    ("transaction", "app", ["BEGIN", "SELECT COUNT(*) FROM merchants", "COMMIT"]),
    ("diagnostics", "app", ["SELECT CAST('x1' AS SIGNED)", "SELECT 1"]),
    ("get_lock", "app", ["SELECT GET_LOCK('dal_pin_test', 1)",
                         "SELECT RELEASE_LOCK('dal_pin_test')"]),
    ("lock_tables", "app", ["LOCK TABLES merchants READ", "UNLOCK TABLES"]),
    ("temporary_table", "admin", ["CREATE TEMPORARY TABLE pin_tmp (a INT)",
                                  "DROP TEMPORARY TABLE pin_tmp"]),
    ("found_rows", "app", ["SELECT SQL_CALC_FOUND_ROWS id FROM merchants LIMIT 1",
                           "SELECT FOUND_ROWS()"]),
    ("user_variable", "app", ["SELECT @pin_v := 1", "SELECT @pin_v"]),
    ("text_prepare", "app", ["PREPARE pin_s FROM 'SELECT 1'", "DEALLOCATE PREPARE pin_s"]),
    ("call", "app", ["CALL no_such_procedure_for_pins()"]),
    ("set_expression", "app", ["SET @pin_x = 1 + 1", "SELECT @pin_x"]),
    # SET GLOBAL is refused for every user (tests/integration/test_access.py): no pin
    ("set_other", "app", ["SET TRANSACTION ISOLATION LEVEL READ COMMITTED"]),
]


@pytest.mark.parametrize("reason, user, statements", PINS, ids=[p[0] for p in PINS])
def test_each_pin_reason_is_counted(dal_config, connect, reason: str, user: str,
                                    statements: list[str]) -> None:
    metrics = dal_config[1]["server"]["metrics"]["port"]
    before = value(scrape(metrics), "dal_pins_total", reason=reason)
    with connect(user, user).cursor() as cur:
        for statement in statements:
            try:
                cur.execute(statement)
            except pymysql.MySQLError as exc:  # the backend may refuse (no such procedure,
                # SET GLOBAL without SUPER: docs/security.md)... but DAL must route it
                assert exc.args[0] not in (1227, 1235) or "SUPER" in exc.args[1], exc
    assert value(scrape(metrics), "dal_pins_total", reason=reason) == before + 1


@pytest.fixture
def tiny_dal(tmp_path: Path):
    """One connection per instance, one waiter, a short acquire timeout."""
    proc, raw = dal_with_pool(tmp_path, {"max_size": 1, "max_waiters": 1,
                                         "acquire_timeout": 1.5})
    yield proc, raw["server"]["metrics"]["port"]
    assert proc.stop() == 0


def test_a_full_wait_queue_is_refused_at_once_and_a_long_wait_times_out(tiny_dal) -> None:
    proc, metrics = tiny_dal
    port = proc.port

    def client(**kwargs) -> pymysql.connections.Connection:
        return pymysql.connect(host=HOST, port=port, user="app", password="app",
                               database="trade", autocommit=True, **kwargs)

    holder, waiter, third = client(), client(read_timeout=10), client()
    try:
        with holder.cursor() as cur:  # holds instance b's only connection
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
        outcome: list = []

        def wait() -> None:
            started = time.monotonic()
            try:
                with waiter.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
            except pymysql.MySQLError as exc:
                outcome.append((exc.args, time.monotonic() - started))

        thread = threading.Thread(target=wait)
        thread.start()
        assert wait_for(lambda: pools(port)["b"]["waiting"] == 1, 3)
        started = time.monotonic()
        with third.cursor() as cur, pytest.raises(pymysql.MySQLError) as full:
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
        assert time.monotonic() - started < 0.5, "a full queue must refuse at once"
        assert full.value.args[0] == 1105 and "wait queue is full" in full.value.args[1]
        thread.join(10)
        (code, message), waited = outcome[0]
        assert code == 1105 and "became free within 1.5 s" in message
        assert 1.3 <= waited < 5
        with third.cursor() as cur:  # instance a is unaffected
            cur.execute("SELECT COUNT(*) FROM merchants")
        holder.commit()
        with waiter.cursor() as cur:  # and b serves again once the transaction ends
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (USER_ON_B,))
            assert cur.fetchone() == (0,)
        samples = scrape(metrics)
        assert value(samples, "dal_pool_queue_full_total", instance="b") == 1
        assert value(samples, "dal_pool_acquire_timeouts_total", instance="b") == 1
        assert value(samples, "dal_errors_total", code="1105") == 2
    finally:
        for conn in (holder, waiter, third):
            conn.close()
