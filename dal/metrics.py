"""Prometheus metrics on their own HTTP port: pool gauges and the server's counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from dal.migration.metrics import migration_families
from pool.histogram import Histogram

if TYPE_CHECKING:
    from dal.ports import ServerPort


class ServerCollector:
    """Reads the server's pools and counters at scrape time; nothing is kept twice."""

    def __init__(self, server: ServerPort) -> None:
        self.server = server

    def collect(self):
        server = self.server
        gauges = {
            "max": GaugeMetricFamily("dal_pool_max", "Pool size limit", labels=["instance"]),
            "in_use": GaugeMetricFamily("dal_pool_in_use", "Connections lent out",
                                        labels=["instance"]),
            "idle": GaugeMetricFamily("dal_pool_idle", "Idle connections", labels=["instance"]),
            "waiting": GaugeMetricFamily("dal_pool_waiting", "Acquirers waiting",
                                         labels=["instance"]),
        }
        for name, pool in server.pools.items():
            stats = pool.stats()
            gauges["max"].add_metric([name], stats.max_size)
            gauges["in_use"].add_metric([name], stats.in_use)
            gauges["idle"].add_metric([name], stats.idle)
            gauges["waiting"].add_metric([name], stats.waiting)
        yield from gauges.values()
        clients = GaugeMetricFamily("dal_client_connections", "Connected clients")
        clients.add_metric([], len(server.sessions))
        yield clients
        families = {
            "statements": CounterMetricFamily("dal_statements", "Statements by plan kind, "
                                              "statement kind and result",
                                              labels=["plan", "kind", "result"]),
            "errors": CounterMetricFamily("dal_errors", "Errors sent to clients, by code",
                                          labels=["code"]),
            "pins": CounterMetricFamily("dal_pins", "Backend connections pinned to a session, "
                                        "by reason", labels=["reason"]),
            "logins": CounterMetricFamily("dal_logins", "Client logins by result",
                                          labels=["result"]),
            "xa": CounterMetricFamily("dal_xa_transactions", "Transactions of mode xa by "
                                      "outcome: committed (two-phase), one_phase, rolled_back, "
                                      "failed (rolled back at COMMIT), in_doubt (decided, a "
                                      "branch left to recovery), recovered_committed, "
                                      "recovered_rolled_back (branches, at start-up)",
                                      labels=["outcome"]),
        }
        for (family, label), value in server.counters.items():
            labels = plan_labels(label) if family == "statements" else [label]
            families[family].add_metric(labels, value)
        yield from families.values()
        cache = server.router.cache
        hits = CounterMetricFamily("dal_plan_cache", "Plan cache lookups", labels=["result"])
        hits.add_metric(["hit"], cache.hits)
        hits.add_metric(["miss"], cache.misses)
        yield hits
        borrowed = CounterMetricFamily("dal_gene_borrowed_seconds", "Seconds of order-id time "
                                       "the gene generator used ahead of the clock (bursts "
                                       "beyond 32,000 ids/s, a clock stepped back)")
        borrowed.add_metric([], server.genes.borrowed / 1000)
        yield borrowed
        yield login_backoff_family(server)
        yield from server.protection.metrics()
        yield from pool_families(server)
        if server.migration is not None:
            yield from migration_families(server.migration)
        latency = HistogramMetricFamily("dal_statement_latency_seconds", "Time from a "
                                        "statement's arrival to the end of its answer, by plan "
                                        "and statement kind", labels=["plan", "kind"])
        for kind, histogram in sorted(server.stats.latency.items()):
            latency.add_metric(plan_labels(kind, result=False), histogram.cumulative(),
                               histogram.sum)
        yield latency


def plan_labels(key: str, result: bool = True) -> list[str]:
    """``shard:select:ok`` -> plan, kind, result (``result=False``: keys without a result,
    ``shard:select`` -> plan, kind). Keys without a plan prefix are statements routed to one
    backend as they are (unsharded tables): plan ``route``. The prefix is told by the number
    of parts, not by its word: an unsharded INSERT counts as ``insert:ok``, plan ``route``."""
    parts = key.split(":")
    if len(parts) < 2 + result or parts[0] not in PLANS:
        parts.insert(0, "route")
    return parts


PLANS = ("shard", "scatter", "insert")


def login_backoff_family(server: ServerPort) -> CounterMetricFamily:
    """Login attempts held back by server.login_backoff: scope address = refused (1129) from a
    blocked address, scope user = delayed for a user name with recent failures."""
    family = CounterMetricFamily("dal_login_backoff", "Login attempts refused from a blocked "
                                 "address (scope address) or delayed for a user with recent "
                                 "failures (scope user)", labels=["scope"])
    backoff = server.authenticator.backoff
    for scope in ("address", "user"):
        family.add_metric([scope], backoff.counts[scope] if backoff is not None else 0)
    return family


def pool_families(server: ServerPort):
    """Per-instance pool counters and the acquire-wait histogram (immediate acquires count
    as waits of 0 s)."""
    families = {
        "connecting": GaugeMetricFamily("dal_pool_connecting", "Connections being opened",
                                        labels=["instance"]),
        "opened": CounterMetricFamily("dal_pool_opened", "Backend connections opened",
                                      labels=["instance"]),
        "closed": CounterMetricFamily("dal_pool_closed", "Backend connections closed (broken, "
                                      "expired, idle too long, or unsafe to reuse)",
                                      labels=["instance"]),
        "failed": CounterMetricFamily("dal_pool_connect_failures", "Failed connection attempts",
                                      labels=["instance"]),
        "timeouts": CounterMetricFamily("dal_pool_acquire_timeouts", "Acquires that waited "
                                        "longer than pool.acquire_timeout", labels=["instance"]),
        "full": CounterMetricFamily("dal_pool_queue_full", "Acquires refused because the wait "
                                    "queue was full", labels=["instance"]),
        "pipelined": CounterMetricFamily("dal_pool_pipelined", "Statements written behind "
                                         "other sessions' on a busy backend connection "
                                         "(pool.pipeline_depth)", labels=["instance"]),
    }
    wait = HistogramMetricFamily("dal_pool_acquire_wait_seconds", "Time to get a backend "
                                 "connection", labels=["instance"])
    for name, pool in server.pools.items():
        families["connecting"].add_metric([name], pool.connecting)
        families["opened"].add_metric([name], pool.opened)
        families["closed"].add_metric([name], pool.closed_count)
        families["failed"].add_metric([name], pool.failed_opens)
        families["timeouts"].add_metric([name], pool.timeouts)
        families["full"].add_metric([name], pool.queue_full)
        families["pipelined"].add_metric([name], pool.pipelined)
        merged = Histogram(pool.wait.bounds)
        merged.counts = list(pool.wait.counts)
        merged.counts[0] += pool.immediate
        wait.add_metric([name], merged.cumulative(), pool.wait.sum)
    yield from families.values()
    yield wait


def start_metrics(server: ServerPort, collector: object = None) -> None:
    """Register the collector (``collector``, or this process's `ServerCollector`) and serve
    /metrics on the configured address."""
    REGISTRY.register(collector or ServerCollector(server))  # type: ignore[arg-type]
    endpoint = server.config.server.metrics
    start_http_server(endpoint.port, addr=endpoint.host)
