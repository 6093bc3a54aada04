"""The circuit breaker's state machine, driven with explicit times (no backend)."""

from __future__ import annotations

import time

import pytest

from config.protection import BreakerConfig
from pool.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerOpen

CONFIG = BreakerConfig(window=1.0, min_calls=4, error_rate=0.5, slow_call_rate=0.5,
                       slow_call_seconds=0.1, cool_down=0.05, probes=1)


def breaker() -> tuple[Breaker, list[str]]:
    moves: list[str] = []
    return Breaker("b", CONFIG, lambda instance, state: moves.append(state)), moves


def test_needs_min_calls_then_opens_on_error_rate() -> None:
    b, moves = breaker()
    now = time.monotonic()
    b.success(0.001, now)
    b.failure(now)
    b.failure(now)
    assert b.state == CLOSED  # 3 calls < min_calls
    b.failure(now)
    assert b.state == OPEN and b.rejecting and moves == [OPEN]
    with pytest.raises(BreakerOpen) as info:
        b.admit()
    assert info.value.code == 1105 and "circuit breaker for backend instance b" in str(info.value)


def test_opens_on_slow_call_rate() -> None:
    b, _ = breaker()
    now = time.monotonic()
    for _ in range(2):
        b.success(0.001, now)
    b.success(0.5, now)
    assert b.state == CLOSED
    b.success(0.5, now)
    assert b.state == OPEN and "took over 0.1 s" in b.reason


def test_sql_errors_are_successes_and_old_outcomes_leave_the_window() -> None:
    b, _ = breaker()
    now = time.monotonic()
    for _ in range(3):
        b.failure(now)
    later = now + 2.0  # the window is 1 s: those failures are gone
    for _ in range(4):
        b.success(0.001, later)
    b.failure(later)
    assert b.state == CLOSED
    assert b.window_counts()[0] <= 5


def test_half_open_lets_probes_through_then_closes_or_reopens() -> None:
    b, moves = breaker()
    now = time.monotonic()
    for _ in range(4):
        b.failure(now)
    assert b.state == OPEN
    time.sleep(CONFIG.cool_down + 0.01)
    b.admit()  # the probe
    assert b.state == HALF_OPEN
    with pytest.raises(BreakerOpen):
        b.admit()  # probes = 1: a second statement is refused
    b.failure()
    assert b.state == OPEN
    time.sleep(CONFIG.cool_down + 0.01)
    b.admit()
    b.success(0.001, time.monotonic())
    assert b.state == CLOSED and not b.rejecting
    assert moves == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_disabled_breaker_never_opens() -> None:
    b = Breaker("a", CONFIG.model_copy(update={"enabled": False}))
    now = time.monotonic()
    for _ in range(10):
        b.failure(now)
    assert b.state == CLOSED and not b.rejecting
