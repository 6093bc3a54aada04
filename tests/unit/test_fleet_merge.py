"""Merging the workers' answers: /metrics families and SHOW DAL rows (dal/fleet_metrics.py,
dal/fleet_admin.py)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from dal.fleet import owner_of, remove_run_directory, run_directory
from dal.fleet_admin import MERGES
from dal.fleet_metrics import from_wire, merge, to_wire


def worker_families(statements: int, in_use: int, state: int, latency: list[tuple[str, float]]):
    counter = CounterMetricFamily("dal_statements", "s", labels=["plan"])
    counter.add_metric(["shard"], statements)
    gauge = GaugeMetricFamily("dal_pool_in_use", "u", labels=["instance"])
    gauge.add_metric(["a"], in_use)
    breaker = GaugeMetricFamily("dal_breaker_state", "b", labels=["instance"])
    breaker.add_metric(["a"], state)
    histogram = HistogramMetricFamily("dal_latency_seconds", "l", labels=["kind"])
    histogram.add_metric(["select"], latency, sum_value=0.5)
    return [counter, gauge, breaker, histogram]


def samples(families) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


def test_counters_histograms_and_gauges_sum_breaker_state_takes_the_worst() -> None:
    first = worker_families(5, 1, 0, [("0.1", 2), ("+Inf", 5)])
    second = from_wire(to_wire(worker_families(7, 2, 2, [("0.1", 3), ("+Inf", 7)])))
    merged = samples(merge([first, second]))
    assert merged[("dal_statements_total", (("plan", "shard"),))] == 12
    assert merged[("dal_pool_in_use", (("instance", "a"),))] == 3
    assert merged[("dal_breaker_state", (("instance", "a"),))] == 2
    assert merged[("dal_latency_seconds_bucket", (("kind", "select"), ("le", "0.1")))] == 5
    assert merged[("dal_latency_seconds_bucket", (("kind", "select"), ("le", "+Inf")))] == 12
    assert merged[("dal_latency_seconds_count", (("kind", "select"),))] == 12
    assert merged[("dal_latency_seconds_sum", (("kind", "select"),))] == 1.0


def test_a_series_only_one_worker_has_keeps_its_samples_together() -> None:
    first = CounterMetricFamily("dal_errors", "e", labels=["code"])
    first.add_metric(["1235"], 1)
    second = CounterMetricFamily("dal_errors", "e", labels=["code"])
    second.add_metric(["1146"], 2)
    second.add_metric(["1235"], 3)
    (family,) = merge([[first], [second]])
    assert [(s.labels["code"], s.value) for s in family.samples] == [("1235", 4), ("1146", 2)]


def test_show_dal_statements_sum_per_fingerprint() -> None:
    header = ["fingerprint", "count", "errors", "total_ms", "avg_ms", "max_ms"]
    first = (header, [["SELECT ?", 2, 0, "4.000", "2.000", "3.000"],
                      ["UPDATE t", 1, 1, "1.000", "1.000", "1.000"]])
    second = (header, [["SELECT ?", 3, 1, "12.000", "4.000", "9.000"]])
    _, rows = MERGES["STATEMENTS"]([first, second])
    assert rows == [["SELECT ?", 5, 1, "16.000", "3.200", "9.000"],
                    ["UPDATE t", 1, 1, "1.000", "1.000", "1.000"]]


def test_show_dal_counters_sum_pools_stay_per_worker() -> None:
    counters = (["counter", "label", "value"], [["statements", "shard:select:ok", 4],
                                                ["sessions", "connected", 1]])
    other = (["counter", "label", "value"], [["statements", "shard:select:ok", 6],
                                             ["logins", "ok", 2]])
    _, rows = MERGES["COUNTERS"]([counters, other])
    assert rows == [["statements", "shard:select:ok", 10], ["sessions", "connected", 1],
                    ["logins", "ok", 2], ["workers", "answered", 2]]
    pools = (["worker", "instance", "max"], [[0, "a", 8]])
    _, rows = MERGES["POOLS"]([pools, (pools[0], [[1, "a", 8]])])
    assert rows == [[0, "a", 8], [1, "a", 8]]


def test_show_dal_genes_completed_by_each_worker() -> None:
    header = ["worker", "worker_id", "holder", "this_process", "ahead_ms", "borrowed_ms",
              "problem"]
    mine = (header, [[0, 3, "h:1:x", "yes", 0, 5, None], [None, 4, "h:2:y", "no", None, None,
                                                         None]])
    peer = (header, [[None, 3, "h:1:x", "no", None, None, None],
                     [1, 4, "h:2:y", "yes", 7, 9, None]])
    _, rows = MERGES["GENES"]([mine, peer])
    assert rows == [[0, 3, "h:1:x", "yes", 0, 5, None], [1, 4, "h:2:y", "no", 7, 9, None]]


def test_a_connection_ids_owner() -> None:
    # worker i of 3 gives out i + 1, i + 4, i + 7, ...
    assert [owner_of(n, 3) for n in range(1, 8)] == [0, 1, 2, 0, 1, 2, 0]


def test_a_run_directory_no_worker_listens_in_is_removed_at_the_next_start() -> None:
    port = 1  # no DAL listens there
    stale = run_directory(port)
    (stale / "worker-0.sock").touch()  # left by a worker 0 that was SIGKILLed
    fresh = run_directory(port)
    try:
        assert not stale.exists() and fresh.is_dir()
    finally:
        remove_run_directory(fresh)
