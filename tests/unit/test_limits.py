"""Token buckets and the limiter's lookups (no backend)."""

from __future__ import annotations

import time

import pytest

from config.protection import LimitsConfig, RateLimit
from dal.protection import statement_shape
from pool.limits import Limiter, Throttled, TokenBucket


def test_bucket_allows_its_burst_then_rejects() -> None:
    bucket = TokenBucket("user:x", RateLimit(rate=10, burst=3))
    now = time.monotonic()
    assert [bucket.take(now) for _ in range(3)] == [0.0, 0.0, 0.0]
    with pytest.raises(Throttled) as info:
        bucket.take(now)
    assert info.value.code == 1226 and info.value.rule == "user:x"
    assert bucket.take(now + 0.11) == 0.0  # one token per 0.1 s comes back


def test_delay_action_reserves_a_token_within_max_delay() -> None:
    bucket = TokenBucket("table:t", RateLimit(rate=4, burst=1, action="delay", max_delay=0.3))
    now = time.monotonic()
    assert bucket.take(now) == 0.0
    assert bucket.take(now) == pytest.approx(0.25)
    with pytest.raises(Throttled):  # the next would wait 0.5 s > max_delay
        bucket.take(now)


def test_limiter_matches_user_table_and_statement_shape() -> None:
    config = LimitsConfig(users={"u": RateLimit(rate=1, burst=1)},
                          tables={"orders": RateLimit(rate=1, burst=1)},
                          fingerprints={"SELECT * FROM t WHERE id = 5": RateLimit(rate=1,
                                                                                   burst=1)})
    limiter = Limiter(config, statement_shape)
    shape = statement_shape("SELECT * FROM t WHERE id = 999")
    assert limiter.check("other", b"x", ()) == 0.0
    assert limiter.check("other", shape, ()) == 0.0
    with pytest.raises(Throttled, match="fingerprint"):
        limiter.check("other", shape, ())
    assert limiter.check("other", b"x", ("orders",)) == 0.0
    with pytest.raises(Throttled, match="table:orders"):
        limiter.check("other", b"x", ("orders",))
    assert limiter.check("u", b"x", ()) == 0.0
    with pytest.raises(Throttled, match="user:u"):
        limiter.check("u", b"x", ())
    assert Limiter(LimitsConfig(), statement_shape).empty
