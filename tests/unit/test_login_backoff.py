"""The failure records behind server.login_backoff, on a fake clock."""

from __future__ import annotations

import pydantic
import pytest

from config.model import LoginBackoff as Settings
from dal.login_backoff import LoginBackoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backoff(**settings: object) -> tuple[LoginBackoff, Clock]:
    clock = Clock()
    values = {"failures": 3, "window": 60, "base": 1, "max_block": 8, "max_delay": 4,
              **settings}
    return LoginBackoff(Settings(**values), clock), clock


def test_an_address_is_blocked_after_the_threshold_and_longer_each_time() -> None:
    b, clock = backoff()
    for _ in range(2):
        b.failed("10.0.0.1", "app")
    assert b.blocked_for("10.0.0.1") == 0
    periods = []
    for _ in range(6):
        b.failed("10.0.0.1", "app")
        periods.append(b.blocked_for("10.0.0.1"))
        clock.now += periods[-1]  # the block ends; the next failure comes right after it
        assert b.blocked_for("10.0.0.1") == 0
    assert periods == [1, 2, 4, 8, 8, 8]  # doubled, capped at max_block
    assert b.blocked_for("10.0.0.2") == 0, "another address is not affected"
    assert b.counts["address"] == 6


def test_a_success_forgets_its_user_and_address() -> None:
    b, _ = backoff()
    for _ in range(2):
        b.failed("10.0.0.1", "app")
    b.succeeded("10.0.0.1", "app")
    b.failed("10.0.0.1", "app")
    assert b.blocked_for("10.0.0.1") == 0
    assert b.delay_for("app") == 0


def test_a_user_is_delayed_not_blocked_and_the_delay_is_capped() -> None:
    b, _ = backoff()
    delays = []
    for n in range(7):  # failures from many addresses, none of them reaching its own limit
        b.failed(f"10.0.1.{n}", "app")
        delays.append(b.delay_for("app"))
    assert delays == [0, 0, 1, 2, 4, 4, 4]
    assert b.delay_for("admin") == 0
    assert b.counts["user"] == 5


def test_failures_older_than_the_window_no_longer_count() -> None:
    b, clock = backoff(window=10)
    for _ in range(2):
        b.failed("10.0.0.1", "app")
    clock.now += 11
    b.failed("10.0.0.1", "app")
    assert b.blocked_for("10.0.0.1") == 0
    assert b.failures_of("10.0.0.1") == 1


def test_memory_is_bounded_by_tracked() -> None:
    b, _ = backoff(tracked=16)
    for n in range(1000):
        b.failed(f"10.1.{n // 256}.{n % 256}", f"user{n}" + "x" * 10_000)
    assert len(b.addresses.records) == 16
    assert len(b.users.records) == 16
    assert max(len(key) for key in b.users.records) <= 128


def test_disabled_backoff_never_blocks() -> None:
    b, _ = backoff(enabled=False)
    for _ in range(10):
        b.failed("10.0.0.1", "app")
    assert b.blocked_for("10.0.0.1") == 0
    assert b.delay_for("app") == 0


@pytest.mark.parametrize("values", [{"base": 60, "max_block": 30}, {"failures": 0},
                                    {"max_delay": -1}, {"treshold": 3}])
def test_bad_settings_are_refused(values: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(**values)
