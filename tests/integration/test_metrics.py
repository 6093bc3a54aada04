"""/metrics moves as the statements through DAL say it should; SHOW DAL STATEMENTS digests them;
the Grafana dashboard only names metrics DAL exports."""

from __future__ import annotations

import json
import re

import pymysql
import pytest

from tests.dal_process import ROOT
from tests.metrics_scrape import family_names, scrape, value

USER = 910_043  # shard 83, instance b
POINT = "SELECT COUNT(*) FROM orders WHERE user_id = %s"


@pytest.fixture
def metrics_port(dal_config) -> int:
    return dal_config[1]["server"]["metrics"]["port"]


def test_metrics_follow_the_statements(metrics_port, connect) -> None:
    before = scrape(metrics_port)
    conn = connect()
    with conn.cursor() as cur:
        for _ in range(5):
            cur.execute(POINT, (USER,))
        cur.execute("SELECT COUNT(*) FROM orders")  # a scatter over 120 shards
        with pytest.raises(pymysql.MySQLError) as refused:
            cur.execute("UPDATE orders SET status = 1 WHERE status = 9")  # a scatter write: refused
        assert refused.value.args[0] == 1235
        with pytest.raises(pymysql.MySQLError) as failed:
            cur.execute("SELECT * FROM no_such_table_for_metrics")  # the backend's error
        assert failed.value.args[0] == 1146
        cur.execute("BEGIN")
        cur.execute(POINT, (USER,))
        during = scrape(metrics_port)
        cur.execute("COMMIT")
    after = scrape(metrics_port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("dal_statements_total", plan="shard", kind="select", result="ok") == 6
    assert delta("dal_statement_latency_seconds_count", plan="shard", kind="select") == 6
    assert delta("dal_statement_latency_seconds_sum", plan="shard", kind="select") > 0
    assert delta("dal_statement_latency_seconds_bucket", plan="shard", kind="select",
                 le="+Inf") == 6
    assert delta("dal_statements_total", plan="scatter", kind="select", result="ok") == 1
    assert delta("dal_statements_total", plan="route", kind="select", result="error") == 1
    assert delta("dal_errors_total", code="1235") == 1
    assert delta("dal_pins_total", reason="transaction") == 1
    assert delta("dal_plan_cache_total", result="hit") >= 5
    assert delta("dal_pool_acquire_wait_seconds_count", instance="b") >= 6
    assert value(during, "dal_pool_in_use", instance="b") == 1  # the open transaction's
    assert value(during, "dal_client_connections") >= 1
    assert value(after, "dal_pool_max", instance="a") == 16
    assert value(after, "dal_pool_in_use", instance="b") == 0


def test_show_dal_statements_digests_by_fingerprint(connect) -> None:
    with connect().cursor() as cur:
        for user in range(7):
            cur.execute("SELECT id FROM orders WHERE user_id = %s AND status = 9", (user,))
    with connect("admin", "admin").cursor() as cur:
        cur.execute("SHOW DAL STATEMENTS")
        header = [d[0] for d in cur.description]
        rows = {r[0]: dict(zip(header, r, strict=True)) for r in cur.fetchall()}
    assert header == ["fingerprint", "count", "errors", "total_ms", "avg_ms", "max_ms"]
    row = rows["SELECT id FROM orders WHERE user_id = ? AND status = ?"]
    assert int(row["count"]) >= 7 and int(row["errors"]) == 0
    assert 0 < float(row["max_ms"]) <= float(row["total_ms"])


def test_grafana_dashboard_names_only_exported_metrics(metrics_port) -> None:
    exported = family_names(metrics_port)
    dashboard = json.loads((ROOT / "docs" / "grafana" / "dal.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"]
             for target in panel.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        used = set(re.findall(r"\b(dal_[a-z_]+)", expr))
        assert used, expr
        unknown = {n for n in used if n not in exported}
        assert not unknown, f"{expr} names metrics DAL does not export: {unknown}"
