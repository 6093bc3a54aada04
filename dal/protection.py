"""Protection state of a running DAL: breakers, rate limits, statement rules, and their swap.

`Protection.apply` installs the `breaker`, `limits` and `rules` sections (and the live pool
settings) of a validated config in one step on the event loop, so no statement ever sees half
of a change. `SET DAL` and `RELOAD DAL CONFIG` (dal/protect_admin.py) both end there.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from config.model import Config
from pool.breaker import OPEN, STATE_VALUES
from pool.limits import Limiter
from router.fingerprint import fingerprint

if TYPE_CHECKING:
    from dal.ports import ServerPort

# Pool settings that change live; the others (max_size, ...) need a restart.
LIVE_POOL_KEYS = ("max_waiters", "acquire_timeout", "pipeline_depth", "pipeline_spread")


def statement_shape(text: str) -> bytes:
    """The fingerprint key of a configured statement (literals become ``?``)."""
    sql = text.strip().rstrip(";").encode()
    return fingerprint(sql).key


class Protection:
    """Owns the live protection settings of one server and their counters."""

    def __init__(self, server: ServerPort) -> None:
        self.server = server
        self.counters: Counter[tuple[str, str]] = Counter()
        self.limiter: Limiter | None = None
        for pool in server.pools.values():
            pool.breaker.on_transition = self._transition
        self.apply(server.config, first=True)

    def apply(self, config: Config, first: bool = False) -> list[str]:
        """Install the live sections of ``config``; returns the names of what changed."""
        server = self.server
        old = server.config
        changed = []
        if first or config.limits != old.limits:
            self.limiter = Limiter(config.limits, statement_shape)
            server.limiter = None if self.limiter.empty else self.limiter
            changed.append("limits")
        if first or config.rules != old.rules:
            server.statement_timeout = config.rules.statement_timeout
            server.router.set_rules(config.rules)
            changed.append("rules")
        if first or config.breaker != old.breaker:
            for pool in server.pools.values():
                pool.breaker.configure(config.breaker)
            changed.append("breaker")
        live = {key: getattr(config.pool, key) for key in LIVE_POOL_KEYS}
        pool_config = old.pool.model_copy(update=live)
        if first or pool_config != old.pool:
            for pool in server.pools.values():
                pool.config = pool.config.model_copy(update=live)
            changed.append("pool")
        server.config = old.model_copy(update={"limits": config.limits, "rules": config.rules,
                                               "breaker": config.breaker, "pool": pool_config})
        return changed

    # -- counters ----------------------------------------------------------------------------

    def count_throttled(self, rule: str) -> None:
        self.counters[("throttled", rule)] += 1

    def count_rule(self, rule: str) -> None:
        self.counters[("rules", rule)] += 1

    def _transition(self, instance: str, state: str) -> None:
        self.counters[("transition", f"{instance}:{state}")] += 1
        if state == OPEN:  # queued statements fail now rather than at their acquire timeout
            pool = self.server.pools[instance]
            pool.fail_waiters(pool.breaker.refusal())

    # -- metrics -----------------------------------------------------------------------------

    def metrics(self):
        """Prometheus families: breaker state and transitions, throttled and refused
        statements by rule."""
        state = GaugeMetricFamily("dal_breaker_state", "Circuit breaker state per backend "
                                  "instance: 0 closed, 1 half-open, 2 open", labels=["instance"])
        rejected = CounterMetricFamily("dal_breaker_rejections", "Statements failed fast by an "
                                       "open breaker", labels=["instance"])
        for name, pool in self.server.pools.items():
            state.add_metric([name], STATE_VALUES[pool.breaker.state])
            rejected.add_metric([name], pool.breaker.rejected)
        transitions = CounterMetricFamily("dal_breaker_transitions", "Breaker state changes, "
                                          "by instance and new state",
                                          labels=["instance", "to"])
        throttled = CounterMetricFamily("dal_throttled", "Statements refused by a rate limit, "
                                        "by rule", labels=["rule"])
        rules = CounterMetricFamily("dal_rule_refusals", "Statements refused by a statement "
                                    "rule, by rule", labels=["rule"])
        for (family, label), value in self.counters.items():
            if family == "transition":
                transitions.add_metric(label.rsplit(":", 1), value)
            elif family == "throttled":
                throttled.add_metric([label], value)
            else:
                rules.add_metric([label], value)
        yield from (state, rejected, transitions, throttled, rules)
