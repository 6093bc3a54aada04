"""The circuit breaker's state machine, driven with explicit times (no backend)."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

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


def after(successes: int, failures: int, **config: object) -> Breaker:
    """A breaker told ``successes`` fast calls, then ``failures`` backend failures."""
    b = Breaker("b", BreakerConfig(window=10.0, **config))
    now = time.monotonic()
    for _ in range(successes):
        b.success(0.001, now)
    for _ in range(failures):
        b.failure(now)
    return b


def test_consecutive_failures_open_it_whatever_the_window_holds() -> None:
    """A dead backend: its failures open the breaker at once, however many successes from
    before the failure the window still holds (the error rate would take seconds)."""
    b = after(1000, 4, consecutive_failures=5)
    now = time.monotonic()
    assert b.state == CLOSED
    b.failure(now)
    assert b.state == OPEN and b.reason == "5 backend failures in a row, no success between"


def test_a_success_between_failures_starts_the_count_again() -> None:
    b = Breaker("b", BreakerConfig(window=10.0, consecutive_failures=3))
    now = time.monotonic()
    for _ in range(50):
        b.success(0.001, now)
    for _ in range(10):  # a backend that kills a connection now and then, but answers
        b.failure(now)
        b.failure(now)
        b.success(0.001, now)
    assert b.state == CLOSED and b.streak == 0


def test_a_slow_query_is_not_a_failure() -> None:
    """A slow call reached the backend: it ends a run of failures, and one slow call among
    fast ones opens nothing."""
    b = Breaker("b", BreakerConfig(consecutive_failures=2, slow_call_seconds=1.0))
    now = time.monotonic()
    for _ in range(10):
        b.success(0.001, now)
    b.failure(now)
    b.success(30.0, now)  # one very slow query
    b.failure(now)
    assert b.state == CLOSED
    assert b.window_counts()[2] == 1


def test_zero_turns_the_count_off_and_the_error_rate_still_applies() -> None:
    b = after(100, 99, consecutive_failures=0, min_calls=5)
    assert b.state == CLOSED
    b.failure()  # 100 of 200: the error rate (0.5)
    assert b.state == OPEN and "100 of 200 calls failed" in b.reason


def test_recovery_after_consecutive_failures_needs_a_probe() -> None:
    b = Breaker("b", BreakerConfig(consecutive_failures=3, cool_down=0.05))
    for _ in range(3):
        b.failure()
    assert b.state == OPEN
    with pytest.raises(BreakerOpen):
        b.admit()
    time.sleep(0.06)
    b.admit()  # the half-open probe
    b.failure()
    assert b.state == OPEN  # the probe failed: open for another cool-down
    time.sleep(0.06)
    b.admit()
    b.success(0.001, time.monotonic())
    assert b.state == CLOSED and b.streak == 0
    b.failure()
    b.failure()
    assert b.state == CLOSED  # the count starts again after recovery


@pytest.mark.parametrize("value", [-1, 1.5, "many"])
def test_consecutive_failures_is_validated(value: object) -> None:
    with pytest.raises(ValidationError):
        BreakerConfig(consecutive_failures=value)
