"""Config sections that protect the backends: circuit breaker, rate limits, statement rules.

All three can be changed while DAL runs (`SET DAL ...`, `RELOAD DAL CONFIG`); see README.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from config.sections import Section


class _Section(Section):
    pass


class BreakerConfig(_Section):
    """A circuit breaker per backend instance.

    It opens after ``consecutive_failures`` backend failures (lost connection, connect refused
    or timed out) in a row with no success between, a dead backend (0: never on this count);
    or when, with at least ``min_calls`` outcomes in the last ``window`` seconds, the share of
    backend failures reaches ``error_rate`` or the share of calls slower than
    ``slow_call_seconds`` reaches ``slow_call_rate``. Open, every statement for that instance
    fails at once (1105). After ``cool_down`` seconds it is half-open: ``probes`` statements
    go through; a success closes it, a failure opens it again.
    """

    enabled: bool = True
    consecutive_failures: int = Field(default=5, ge=0, le=1_000_000)
    window: float = Field(default=10.0, gt=0, le=3600)
    min_calls: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    slow_call_rate: float = Field(default=1.0, gt=0, le=1)
    slow_call_seconds: float = Field(default=5.0, gt=0)
    cool_down: float = Field(default=2.0, gt=0, le=3600)
    probes: int = Field(default=1, ge=1, le=1000)


class LimitAction(StrEnum):
    REJECT = "reject"
    DELAY = "delay"


class RateLimit(_Section):
    """A token bucket: ``rate`` statements per second on average, bursts up to ``burst``.

    Past it, ``reject`` refuses at once (1226); ``delay`` holds the statement until a token
    is free if that takes at most ``max_delay`` seconds, else refuses.
    """

    rate: float = Field(gt=0)
    burst: float | None = Field(default=None, ge=1)
    action: LimitAction = LimitAction.REJECT
    max_delay: float = Field(default=0.5, ge=0, le=60)

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)


class LimitsConfig(_Section):
    """Rate limits by DAL user, by table name, and by statement shape.

    ``fingerprints`` is keyed by a statement written with any literals: DAL reduces it to its
    fingerprint (literals become ``?``), so ``SELECT * FROM orders WHERE id = 1`` limits every
    statement of that shape.
    """

    users: dict[str, RateLimit] = {}
    tables: dict[str, RateLimit] = {}
    fingerprints: dict[str, RateLimit] = {}


class RulesConfig(_Section):
    """Statement rules, checked at plan time unless noted. Admin users are exempt from the
    plan-time rules (they are the ones who run maintenance)."""

    # UPDATE/DELETE without WHERE (1175).
    deny_unbounded_writes: bool = True
    # Reads of sharded tables that reach every shard because they name no shard key (1235).
    deny_scatter_reads: bool = False
    # Rows one merged (multi-shard) result may return (1104); 0 = no limit. Single-shard
    # results are relayed without decoding and are not counted.
    max_rows: int = Field(default=0, ge=0)
    # Seconds a statement may run on a backend before DAL kills it with KILL QUERY (1969);
    # 0 = no limit.
    statement_timeout: float = Field(default=0.0, ge=0, le=86400)
