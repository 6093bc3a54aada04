"""Repeated failed logins: the client address is blocked (1129, even with the right password),
the user's later logins are delayed, not refused, so an attacker elsewhere cannot lock the
user out; a success resets the user's count. Counted in dal_login_backoff_total, logged
without the password."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pymysql
import pytest

from tests.dal_process import ROOT, DalProcess, running_test_config, start_own_dal
from tests.metrics_scrape import scrape, value

SECRET = "wrong-guess-8f3a"
BACKOFF = {"failures": 3, "window": 30, "base": 1.0, "max_block": 2.0, "max_delay": 1.5}


@pytest.fixture(scope="module")
def dal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DalProcess, dict]]:
    running_test_config()
    proc, raw, _ = start_own_dal(tmp_path_factory.mktemp("backoff"),
                                 ROOT / "var" / "test" / "dal-backoff.log", {},
                                 login_backoff=BACKOFF, login_timeout=5.0)
    yield proc, raw
    proc.stop()


def login(proc: DalProcess, user: str, password: str, source: str = "127.0.0.1") -> float:
    """Log in (from ``source``) and out; the seconds it took. Raises pymysql's error."""
    started = time.monotonic()
    conn = pymysql.connect(host="127.0.0.1", port=proc.port, user=user, password=password,
                           bind_address=source, connect_timeout=10, read_timeout=10)
    conn.close()
    return time.monotonic() - started


def refused(proc: DalProcess, user: str, password: str, source: str) -> tuple[int, str]:
    with pytest.raises(pymysql.err.OperationalError) as info:
        login(proc, user, password, source)
    return info.value.args[0], info.value.args[1]


def counted(raw: dict, scope: str) -> float:
    """dal_login_backoff_total{scope} now."""
    return value(scrape(raw["server"]["metrics"]["port"]), "dal_login_backoff_total",
                 scope=scope)


def fail_three_times(proc: DalProcess, user: str, source: str) -> None:
    for _ in range(3):
        assert refused(proc, user, SECRET, source)[0] == 1045


def test_an_address_with_repeated_failures_is_blocked_even_with_the_right_password(
        dal: tuple[DalProcess, dict]) -> None:
    proc, raw = dal
    before = counted(raw, "address")
    fail_three_times(proc, "modern", "127.0.0.3")
    started = time.monotonic()
    code, message = refused(proc, "modern", "modern", "127.0.0.3")
    assert code == 1129
    assert message.startswith("Host '127.0.0.3' is blocked for ")
    assert "after 3 failed logins (server.login_backoff)" in message
    assert time.monotonic() - started < 0.9, "a blocked address is refused at once"
    assert counted(raw, "address") == before + 1
    # Another address is served as usual.
    assert login(proc, "app", "app") < 0.9
    time.sleep(1.1)  # the first block (base 1 s) is over; the user's own delay remains
    assert login(proc, "modern", "modern", "127.0.0.3") >= 0.9
    assert login(proc, "modern", "modern", "127.0.0.3") < 0.9, "a success resets the counts"
    log = proc.log()
    assert "login backoff: address 127.0.0.3 blocked for 1 s after 3 failed logins" in log
    assert SECRET not in log


def test_failures_from_elsewhere_delay_the_user_but_never_lock_them_out(
        dal: tuple[DalProcess, dict]) -> None:
    proc, raw = dal
    before = counted(raw, "user")
    fail_three_times(proc, "legacy", "127.0.0.2")
    assert refused(proc, "legacy", SECRET, "127.0.0.2")[0] == 1129  # the attacker is blocked
    # The real user, from their own address, gets in after a delay, with the right password.
    took = login(proc, "legacy", "legacy", "127.0.0.1")
    assert 0.9 <= took < 3, took
    assert counted(raw, "user") == before + 1
    assert login(proc, "legacy", "legacy", "127.0.0.1") < 0.9, "the success reset the count"
    assert "login backoff: user 'legacy' has 3 failed logins (the last from 127.0.0.2)" in (
        proc.log())


def test_a_wrong_password_during_the_delay_is_still_refused_with_1045(
        dal: tuple[DalProcess, dict]) -> None:
    proc, _ = dal
    for source in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        assert refused(proc, "app", SECRET, source)[0] == 1045
    started = time.monotonic()
    assert refused(proc, "app", SECRET, "127.0.0.7")[0] == 1045
    assert time.monotonic() - started >= 0.9, "the delay applies to every attempt"
    assert login(proc, "app", "app") >= 0.9  # then the right one gets in (and resets)
    assert login(proc, "app", "app") < 0.9



def test_com_change_user_guesses_count_and_are_blocked_too(
        dal: tuple[DalProcess, dict]) -> None:
    """Guessing through COM_CHANGE_USER on a logged-in connection is no way around it."""
    import mysql.connector

    proc, _ = dal
    conn = mysql.connector.connect(host="127.0.0.1", port=proc.port, user="app",
                                   password="app", use_pure=True, ssl_disabled=True)
    try:
        codes = []
        for _ in range(4):
            try:
                conn.cmd_change_user(username="admin", password=SECRET)
                codes.append(0)
            except mysql.connector.Error as exc:
                codes.append(exc.errno)
        assert codes == [1045, 1045, 1045, 1129]
    finally:
        conn.close()
    time.sleep(1.1)  # the block ends; a success from the address resets its count
    assert login(proc, "app", "app") < 0.9
    assert login(proc, "admin", "admin") >= 0.9  # admin's own delay, then in
