"""Protection rules, rate limits, the wait-queue bound and the admin statements that change
them, against a DAL of this module's own (small pool) and the real test instances.

Each refusal is checked three ways: the error code the client gets, the counter on
/metrics, and the backend itself (read directly) showing that nothing was applied.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pymysql
import pytest
import yaml

from tests.conftest import assert_pools_idle
from tests.dal_process import running_test_config
from tests.own_dal import OwnDal, own_dal

MARK = f"protect-{uuid.uuid4().hex[:8]}"
USER = 5  # user shard 5: database user_005 on instance a
LIMITS = {
    "users": {"limited": {"rate": 0.5, "burst": 3}},
    "tables": {"regions": {"rate": 5, "burst": 1, "action": "delay", "max_delay": 0.5}},
    "fingerprints": {"SELECT name FROM merchants WHERE id = 1": {"rate": 0.2, "burst": 1}},
}


@pytest.fixture(scope="module")
def pdal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnDal]:
    running_test_config()
    tmp = tmp_path_factory.mktemp("protect")
    with own_dal(tmp, pool={"max_size": 2, "max_waiters": 200, "acquire_timeout": 3.0},
                 limits=LIMITS, breaker={"slow_call_seconds": 30.0},
                 users={"limited": {"password": "limited", "role": "app"}}) as proc:
        yield proc


@pytest.fixture
def app(pdal: OwnDal) -> Iterator[pymysql.connections.Connection]:
    conn = pdal.connect()
    yield conn
    conn.close()
    assert_pools_idle(pdal.port)


@pytest.fixture(scope="module")
def shard() -> Iterator[pymysql.connections.Connection]:
    """A direct connection to instance a, where user shard 5 and `trade` live."""
    cfg = running_test_config().instances["a"]
    conn = pymysql.connect(host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password,
                           autocommit=True)
    yield conn
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM user_{USER:03d}.orders WHERE note LIKE %s", (MARK + "%",))
        cur.execute("DELETE FROM trade.merchants WHERE name LIKE %s", (MARK + "%",))
    conn.close()


def scalar(conn, sql: str, args: tuple = ()) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
        return row[0] if row else None


def refused(conn, sql: str, args: tuple = ()) -> tuple[int, str]:
    with pytest.raises(pymysql.MySQLError) as info, conn.cursor() as cur:
        cur.execute(sql, args)
        cur.fetchall()
    return info.value.args[0], info.value.args[1]


def merchant(shard, suffix: str) -> int:
    with shard.cursor() as cur:
        cur.execute("INSERT INTO trade.merchants (name, rating) VALUES (%s, 1.00)",
                    (f"{MARK}-{suffix}",))
        return cur.lastrowid


# -- statement rules ---------------------------------------------------------------------------

def test_update_and_delete_without_where_are_refused(pdal, app, shard) -> None:
    kept = merchant(shard, "unbounded")
    with app.cursor() as cur:
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                    "updated_at) VALUES (%s, 7, 1, 1.00, %s, NOW(), NOW())",
                    (USER, f"{MARK}-unbounded"))
    before = pdal.metric("dal_rule_refusals_total", rule="unbounded_write")
    assert refused(app, "UPDATE merchants SET rating = 4.5")[0] == 1175
    code, message = refused(app, "DELETE FROM orders")
    assert code == 1175 and "deny_unbounded_writes" in message
    assert pdal.metric("dal_rule_refusals_total", rule="unbounded_write") == before + 2
    assert scalar(shard, "SELECT rating FROM trade.merchants WHERE id = %s", (kept,)) == 1
    assert scalar(shard, f"SELECT COUNT(*) FROM user_{USER:03d}.orders WHERE note = %s",
                  (f"{MARK}-unbounded",)) == 1
    with app.cursor() as cur:  # with a WHERE it passes
        assert cur.execute("UPDATE merchants SET rating = 2 WHERE id = %s", (kept,)) == 1


def test_scatter_write_is_refused(pdal, app, shard) -> None:
    with app.cursor() as cur:
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                    "updated_at) VALUES (%s, 7, 3, 1.00, %s, NOW(), NOW())",
                    (USER, f"{MARK}-scatter"))
    before = pdal.metric("dal_rule_refusals_total", rule="scatter_write")
    code, _ = refused(app, "UPDATE orders SET note = 'changed' WHERE note = %s",
                      (f"{MARK}-scatter",))
    assert code == 1235
    assert pdal.metric("dal_rule_refusals_total", rule="scatter_write") == before + 1
    assert scalar(shard, f"SELECT COUNT(*) FROM user_{USER:03d}.orders WHERE note = %s",
                  (f"{MARK}-scatter",)) == 1


def test_scatter_reads_can_be_denied_live(pdal, app) -> None:
    sql = "SELECT COUNT(*) FROM orders WHERE status = 99"
    assert scalar(app, sql) == 0
    pdal.admin("SET DAL rules.deny_scatter_reads = true")
    try:
        before = pdal.metric("dal_rule_refusals_total", rule="scatter_read")
        code, message = refused(app, sql)
        assert code == 1235 and "deny_scatter_reads" in message
        assert pdal.metric("dal_rule_refusals_total", rule="scatter_read") == before + 1
        assert scalar(app, "SELECT COUNT(*) FROM orders WHERE user_id = 5 AND status = 99") == 0
    finally:
        pdal.admin("SET DAL rules.deny_scatter_reads = DEFAULT")
    assert scalar(app, sql) == 0


def test_ddl_is_refused_for_app_users(pdal, app, shard) -> None:
    before = pdal.metric("dal_rule_refusals_total", rule="ddl")
    table = f"t_{MARK.replace('-', '_')}"
    assert refused(app, f"CREATE TABLE {table} (id INT)")[0] == 1227
    assert pdal.metric("dal_rule_refusals_total", rule="ddl") == before + 1
    assert scalar(shard, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = %s",
                  (table,)) == 0


def test_max_rows_of_a_merged_result(pdal, app) -> None:
    with app.cursor() as cur:
        for user in range(20, 28):  # eight users, on both instances
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 7, 1, 1.00, %s, NOW(), NOW())",
                        (user * 7, f"{MARK}-rows"))
    sql = "SELECT id FROM orders WHERE note = %s"
    pdal.admin("SET DAL rules.max_rows = 5")
    try:
        before = pdal.metric("dal_rule_refusals_total", rule="max_rows")
        code, message = refused(app, sql, (f"{MARK}-rows",))
        assert code == 1104 and "max_rows" in message
        assert pdal.metric("dal_rule_refusals_total", rule="max_rows") == before + 1
        with app.cursor() as cur:
            assert cur.execute(sql + " LIMIT 5", (f"{MARK}-rows",)) == 5
    finally:
        pdal.admin("SET DAL rules.max_rows = 0")
        with app.cursor() as cur:
            for user in range(20, 28):
                cur.execute("DELETE FROM orders WHERE user_id = %s AND note = %s",
                            (user * 7, f"{MARK}-rows"))


def test_statement_timeout_kills_on_the_backend(pdal, app, shard) -> None:
    kept = merchant(shard, "timeout")
    pdal.admin("SET DAL rules.statement_timeout = 0.5")
    try:
        before = pdal.metric("dal_rule_refusals_total", rule="statement_timeout")
        started = time.monotonic()
        code, message = refused(app, "UPDATE merchants SET rating = 3 WHERE id = %s AND "
                                "SLEEP(3) = 0", (kept,))
        took = time.monotonic() - started
        assert code == 1969 and "statement_timeout" in message, message
        assert took < 2.0
        # Killed, not applied, and no longer running on the backend.
        assert scalar(shard, "SELECT rating FROM trade.merchants WHERE id = %s", (kept,)) == 1
        assert scalar(shard, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "
                      "INFO LIKE 'UPDATE merchants SET rating = 3%%'") == 0
        code, _ = refused(app, "INSERT INTO orders (user_id, merchant_id, status, total, note, "
                          "created_at, updated_at) VALUES (%s, 7, SLEEP(3), 1, %s, NOW(), NOW())",
                          (USER, f"{MARK}-timeout"))
        assert code == 1969  # a sharded INSERT runs on the slow path: timed there too
        assert scalar(shard, f"SELECT COUNT(*) FROM user_{USER:03d}.orders WHERE note = %s",
                      (f"{MARK}-timeout",)) == 0
        assert pdal.metric("dal_rule_refusals_total", rule="statement_timeout") == before + 2
        assert scalar(app, "SELECT 1") == 1  # the session and its pool carry on
        assert scalar(app, "SELECT SLEEP(0.1)") == 0  # fast statements are left alone
    finally:
        pdal.admin("SET DAL rules.statement_timeout = 0")


def test_sql_errors_do_not_trip_the_breaker(pdal, app) -> None:
    pdal.admin("SET DAL breaker = {min_calls: 2, error_rate: 0.1, window: 5}")
    try:
        for _ in range(10):
            assert refused(app, "SELECT * FROM no_such_table_protect")[0] == 1146
            assert refused(app, "SELECT 1 +")[0] == 1064  # the backend's syntax error
        rows = {r["instance"]: r for r in pdal.admin("SHOW DAL BREAKERS")}
        assert rows["a"]["state"] == "closed" and rows["a"]["failures"] == 0
        assert rows["a"]["calls"] >= 20 and rows["a"]["min_calls"] == 2
        assert pdal.metric("dal_breaker_state", instance="a") == 0
    finally:
        pdal.admin("SET DAL breaker = {slow_call_seconds: 30}")


def test_statement_timeout_on_a_multi_shard_read(pdal, app) -> None:
    with app.cursor() as cur:
        for user in (USER, USER + 60):  # one row on each instance
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 7, 1, 1.00, %s, NOW(), NOW())",
                        (user, f"{MARK}-slow"))
    pdal.admin("SET DAL rules.statement_timeout = 0.5")
    try:
        before = pdal.metric("dal_rule_refusals_total", rule="statement_timeout")
        started = time.monotonic()
        code, message = refused(app, "SELECT id FROM orders WHERE user_id IN (%s, %s) AND "
                                "note = %s AND SLEEP(3) = 0", (USER, USER + 60, f"{MARK}-slow"))
        assert code == 1969 and "statement_timeout" in message, message
        assert time.monotonic() - started < 2.0
        assert pdal.metric("dal_rule_refusals_total", rule="statement_timeout") == before + 1
        assert scalar(app, "SELECT COUNT(*) FROM orders WHERE user_id IN (%s, %s) AND note = %s",
                      (USER, USER + 60, f"{MARK}-slow")) == 2
    finally:
        pdal.admin("SET DAL rules.statement_timeout = 0")
        with app.cursor() as cur:
            cur.execute("DELETE FROM orders WHERE user_id IN (%s, %s) AND note = %s",
                        (USER, USER + 60, f"{MARK}-slow"))


def test_breaker_opens_on_slow_calls_and_a_probe_closes_it(pdal, app) -> None:
    """Slow calls open instance a's breaker: its statements then fail at once while b's
    run; after the cool-down one probe succeeds and closes it."""
    pdal.admin("SET DAL breaker = {min_calls: 3, slow_call_seconds: 0.2, slow_call_rate: 0.5, "
              "cool_down: 0.5, window: 5}")
    try:
        opened = pdal.metric("dal_breaker_transitions_total", instance="a", to="open")
        for _ in range(3):
            scalar(app, "SELECT SLEEP(0.25)")
        assert pdal.metric("dal_breaker_state", instance="a") == 2
        assert pdal.metric("dal_breaker_transitions_total", instance="a", to="open") == opened + 1
        started = time.monotonic()
        code, message = refused(app, "SELECT name FROM merchants WHERE id = 0")
        assert code == 1105 and "circuit breaker for backend instance a is open" in message
        assert time.monotonic() - started < 0.5
        assert scalar(app, "SELECT COUNT(*) FROM orders WHERE user_id = 65") is not None  # b
        time.sleep(0.6)
        assert scalar(app, "SELECT 1") == 1  # the half-open probe
        rows = {r["instance"]: r for r in pdal.admin("SHOW DAL BREAKERS")}
        assert rows["a"]["state"] == "closed" and rows["a"]["rejected"] >= 1
        assert pdal.metric("dal_breaker_state", instance="a") == 0
    finally:
        pdal.admin("SET DAL breaker = {slow_call_seconds: 30}")


# -- rate limits -------------------------------------------------------------------------------

def test_user_rate_limit_rejects(pdal, shard) -> None:
    conn = pdal.connect("limited", "limited")
    try:
        before = pdal.metric("dal_throttled_total", rule="user:limited")
        passed = 0  # pymysql's connect already used a token (SET NAMES)
        for _ in range(4):
            try:
                scalar(conn, "SELECT 1")
            except pymysql.MySQLError as exc:
                assert exc.args[0] == 1226
                break
            passed += 1
        assert 1 <= passed <= 2, passed
        code, message = refused(conn, "INSERT INTO merchants (name) VALUES (%s)",
                                (f"{MARK}-throttled",))
        assert code == 1226 and "user:limited" in message
        assert pdal.metric("dal_throttled_total", rule="user:limited") == before + 2
        assert scalar(shard, "SELECT COUNT(*) FROM trade.merchants WHERE name = %s",
                      (f"{MARK}-throttled",)) == 0
        time.sleep(2.1)  # a token comes back (0.5/s)
        assert scalar(conn, "SELECT 3") == 3
    finally:
        conn.close()


def test_table_rate_limit_delays_within_its_bound(pdal, app) -> None:
    time.sleep(0.3)
    started = time.monotonic()
    for _ in range(3):  # burst 1 at 5/s: the 2nd and 3rd wait about 0.2 s each
        scalar(app, "SELECT COUNT(*) FROM regions")
    took = time.monotonic() - started
    assert 0.3 <= took < 1.5, took
    pdal.admin("SET DAL limits.tables.regions = {rate: 1, burst: 1, action: delay, "
              "max_delay: 0.1}")
    try:
        before = pdal.metric("dal_throttled_total", rule="table:regions")
        scalar(app, "SELECT COUNT(*) FROM regions")
        code, _ = refused(app, "SELECT COUNT(*) FROM regions")  # would wait ~1 s > 0.1 s
        assert code == 1226
        assert pdal.metric("dal_throttled_total", rule="table:regions") == before + 1
    finally:
        pdal.admin("SET DAL limits.tables.regions = {rate: 5, burst: 1, action: delay, "
                  "max_delay: 0.5}")


def test_fingerprint_rate_limit(pdal, app) -> None:
    before = pdal.metric("dal_throttled_total",
                        rule="fingerprint:SELECT name FROM merchants WHERE id = 1")
    scalar(app, "SELECT name FROM merchants WHERE id = 123456789")
    code, message = refused(app, "SELECT name FROM merchants WHERE id = 987654321")
    assert code == 1226 and "fingerprint" in message
    assert pdal.metric("dal_throttled_total",
                      rule="fingerprint:SELECT name FROM merchants WHERE id = 1") == before + 1
    assert scalar(app, "SELECT id FROM merchants WHERE id = 1 OR 1 = 0") in (None, 1)


# -- wait queue ---------------------------------------------------------------------------------

def test_wait_queue_is_bounded_and_the_pool_never_exceeds_its_max(pdal, shard) -> None:
    """Pool max 2, max_waiters 2, no pipelining: of 6 concurrent slow statements on one
    instance, 2 run, 2 wait, and 2 are refused at once; the backend never runs more than 2
    of them."""
    pdal.admin("SET DAL pool.max_waiters = 2")
    pdal.admin("SET DAL pool.pipeline_depth = 0")
    try:
        results, peak = _wait_queue(pdal, shard)
    finally:
        pdal.admin("SET DAL pool.max_waiters = 200")
        pdal.admin("SET DAL pool.pipeline_depth = 8")
    codes = sorted(code for code, _ in results)
    assert codes.count(0) >= 4 - 1 and codes.count(1105) >= 1, results
    assert all(took < 0.5 for code, took in results if code == 1105), results
    assert peak <= 2, f"the backend ran {peak} of DAL's statements at once; pool max is 2"
    assert_pools_idle(pdal.port)


def test_pipelined_statements_wait_in_no_queue_and_the_pool_never_exceeds_its_max(
        pdal, shard) -> None:
    """Pool max 2, max_waiters 2, pipeline depth 3: the 4 statements past the pool's 2 are
    written behind the 2 running ones instead of queued or refused; all 6 answer, and the
    backend still never runs more than 2 of them at once."""
    pdal.admin("SET DAL pool.max_waiters = 2")
    pdal.admin("SET DAL pool.pipeline_depth = 3")
    try:
        results, peak = _wait_queue(pdal, shard)
    finally:
        pdal.admin("SET DAL pool.max_waiters = 200")
        pdal.admin("SET DAL pool.pipeline_depth = 8")
    assert sorted(code for code, _ in results) == [0] * 6, results
    assert max(took for _, took in results) < 3 * 0.8 + 1.5, results  # 3 deep on each
    assert peak <= 2, f"the backend ran {peak} of DAL's statements at once; pool max is 2"
    assert_pools_idle(pdal.port)


def _wait_queue(pdal: OwnDal, shard) -> tuple[list[tuple[int, float]], int]:
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    peak = 0
    stop = threading.Event()

    conns = [pdal.connect() for _ in range(6)]
    go = threading.Barrier(6)

    def client(conn) -> None:
        go.wait(5)
        started = time.monotonic()
        try:
            scalar(conn, "SELECT SLEEP(0.8), 'protect-wait'")
            code = 0
        except pymysql.MySQLError as exc:
            code = exc.args[0]
        with lock:
            results.append((code, time.monotonic() - started))
        conn.close()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            n = scalar(shard, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "
                       "INFO LIKE 'SELECT SLEEP(0.8), %%'")
            peak = max(peak, int(n))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=client, args=(conn,)) for conn in conns]
    for t in clients:
        t.start()
    for t in clients:
        t.join(15)
    stop.set()
    watcher.join(5)
    return results, peak


# -- admin statements ---------------------------------------------------------------------------

def test_admin_statements_are_for_admins_only(pdal, app) -> None:
    for sql in ("SHOW DAL BREAKERS", "SHOW DAL LIMITS", "SHOW DAL RULES",
                "SET DAL rules.max_rows = 1", "RELOAD DAL CONFIG"):
        assert refused(app, sql)[0] == 1227, sql
    rules = {r["rule"]: r["value"] for r in pdal.admin("SHOW DAL RULES")}
    assert rules["rules.max_rows"] == "0" and rules["rules.deny_unbounded_writes"] == "true"


def test_set_dal_refuses_bad_keys_and_values(pdal) -> None:
    admin = pdal.connect("admin", "admin")
    try:
        assert refused(admin, "SET DAL rules.max_rowz = 3")[0] == 1231
        assert refused(admin, "SET DAL breaker.error_rate = 2")[0] == 1231
        assert refused(admin, "SET DAL instances.a.port = 1")[0] == 1193
        assert refused(admin, "SET DAL limits.users.app = {rate: -1}")[0] == 1231
        assert refused(admin, "SET DAL pool.pipeline_spread = -1")[0] == 1231
        assert refused(admin, "SET DAL pool.pipeline_spread = true")[0] == 1231
        assert refused(admin, "SET DAL pool.max_size = 4")[0] == 1193  # needs a restart
    finally:
        admin.close()
    pdal.admin("SET DAL breaker.error_rate = 0.25")
    try:
        rows = {r["instance"]: r for r in pdal.admin("SHOW DAL BREAKERS")}
        assert rows["a"]["error_rate"] == "0.25" and rows["a"]["state"] == "closed"
    finally:
        pdal.admin("SET DAL breaker.error_rate = DEFAULT")
    limits = {r["rule"]: r for r in pdal.admin("SHOW DAL LIMITS")}
    assert limits["user:limited"]["rate"] == "0.5" and limits["table:regions"]["action"] == "delay"


def test_reload_refuses_a_bad_file_and_applies_a_good_one(pdal) -> None:
    good = pdal.path.read_text()
    try:
        pdal.path.write_text(good.replace("limits:", "limits:\n  userz: {}\n", 1))
        admin = pdal.connect("admin", "admin")
        try:
            code, message = refused(admin, "RELOAD DAL CONFIG")
        finally:
            admin.close()
        assert code == 1105 and str(pdal.path) in message and "limits.userz" in message
        assert {r["rule"] for r in pdal.admin("SHOW DAL LIMITS")} >= {"user:limited"}
        raw = yaml.safe_load(good)
        raw["limits"]["users"]["limited"] = {"rate": 7, "burst": 3}
        raw["rules"] = {"max_rows": 9}
        pdal.path.write_text(yaml.safe_dump(raw))
        status = {r["section"]: r["status"] for r in pdal.admin("RELOAD DAL CONFIG")}
        assert status["limits"] == "applied" and status["rules"] == "applied"
        assert status["instances"] == "unchanged"
        limits = {r["rule"]: r for r in pdal.admin("SHOW DAL LIMITS")}
        assert limits["user:limited"]["rate"] == "7"
        assert {r["rule"]: r["value"] for r in pdal.admin("SHOW DAL RULES")}["rules.max_rows"] \
            == "9"
    finally:
        pdal.path.write_text(good)
        pdal.admin("RELOAD DAL CONFIG")
