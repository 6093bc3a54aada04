"""Token-bucket rate limits per user, per table and per statement shape (`limits:`).

The session asks `Limiter.check` once per statement, only when some limit is configured
(`Server.limiter` is None otherwise). A check is a dict lookup per kind of limit and, on a
hit, the bucket arithmetic. A statement takes one token from each bucket that applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from config.protection import LimitAction, LimitsConfig, RateLimit

THROTTLED = (1226, "42000")  # ER_USER_LIMIT_REACHED


class Throttled(Exception):
    """A statement refused by a rate limit; ``rule`` is the metric label."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.code, self.sqlstate = THROTTLED


class TokenBucket:
    """``limit.rate`` tokens per second, at most ``limit.capacity`` saved up."""

    __slots__ = ("capacity", "delay_ok", "limit", "max_delay", "rate", "rule", "stamp", "tokens")

    def __init__(self, rule: str, limit: RateLimit) -> None:
        self.rule = rule
        self.limit = limit
        self.rate = limit.rate
        self.capacity = limit.capacity
        self.delay_ok = limit.action is LimitAction.DELAY
        self.max_delay = limit.max_delay
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was free, the seconds to wait for it (delay action), or
        raise `Throttled`."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        if self.delay_ok:
            wait = (1.0 - tokens) / self.rate
            if wait <= self.max_delay:
                self.tokens = tokens - 1.0  # the token is reserved for the waiting statement
                return wait
        self.tokens = tokens
        how = (f"a token would take more than max_delay {self.max_delay:g} s"
               if self.delay_ok else "action reject")
        raise Throttled(self.rule, f"DAL rate limit {self.rule} exceeded ({self.rate:g} "
                        f"statements/s, burst {self.capacity:g}; {how}); slow down and retry "
                        "(SHOW DAL LIMITS)")


class Limiter:
    """The buckets of one `LimitsConfig`. ``shape`` turns a configured statement into the
    fingerprint key that sessions look up."""

    def __init__(self, config: LimitsConfig, shape: Callable[[str], bytes]) -> None:
        self.config = config
        self.users = {name: TokenBucket(f"user:{name}", lim) for name, lim in config.users.items()}
        self.tables = {name: TokenBucket(f"table:{name}", lim)
                       for name, lim in config.tables.items()}
        self.fingerprints = {shape(text): TokenBucket(f"fingerprint:{text}", lim)
                             for text, lim in config.fingerprints.items()}

    @property
    def empty(self) -> bool:
        return not (self.users or self.tables or self.fingerprints)

    def check(self, user: str, key: bytes, tables: Iterable[str]) -> float:
        """Take a token from each bucket that applies; the longest wait, or raise."""
        now = time.monotonic()
        wait = 0.0
        if self.users and (bucket := self.users.get(user)) is not None:
            wait = bucket.take(now)
        if self.fingerprints and (bucket := self.fingerprints.get(key)) is not None:
            wait = max(wait, bucket.take(now))
        if self.tables:
            for table in tables:
                if (bucket := self.tables.get(table)) is not None:
                    wait = max(wait, bucket.take(now))
        return wait

    def buckets(self) -> list[TokenBucket]:
        """Every bucket, for SHOW DAL LIMITS."""
        return [*self.users.values(), *self.tables.values(), *self.fingerprints.values()]
