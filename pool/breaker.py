"""A circuit breaker per backend instance.

Outcomes of backend calls (statements, state replays, connection attempts) are counted in a
sliding time window of one-second-or-shorter buckets. Only backend failures count as errors:
a lost connection, a refused or timed-out connect. An ERR the backend answers (duplicate key,
syntax) is a success: the backend is alive. A call slower than ``slow_call_seconds`` is slow.

Two things open it: ``consecutive_failures`` backend failures in a row with no success
between (a dead backend: under load this takes milliseconds, whatever the window holds), or
the window's error rate or slow-call rate (a backend failing only part of the time).

States: closed (everything passes), open (every call fails at once with `BreakerOpen`), and
half-open after ``cool_down`` seconds (``probes`` calls pass; a success closes, a failure
reopens). The hot path pays one attribute test (`rejecting`) before a call and one bucket
increment after it; rates are only computed when a failure or a slow call is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from config.protection import BreakerConfig
from pool.connection import BackendError

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
BREAKER_OPEN = (1105, "HY000")  # docs/errors.md
_BUCKETS = 10


class BreakerOpen(BackendError):
    """A statement refused because its instance's breaker is open."""

    def __init__(self, message: str) -> None:
        super().__init__(BREAKER_OPEN[0], message, BREAKER_OPEN[1])


class Breaker:
    """The breaker of one backend instance."""

    def __init__(self, instance: str, config: BreakerConfig,
                 on_transition: Callable[[str, str], None] | None = None) -> None:
        self.instance = instance
        self.state = CLOSED
        self.rejecting = False  # the hot path's only test: True unless closed
        self.opened_at = 0.0
        self.reason = ""
        self.rejected = 0
        self.transitions: dict[str, int] = {CLOSED: 0, HALF_OPEN: 0, OPEN: 0}
        self.on_transition = on_transition
        self._probes = 0
        self._probe_started = 0.0
        self.streak = 0  # backend failures since the last success
        self.configure(config)

    def configure(self, config: BreakerConfig) -> None:
        """New thresholds; the window restarts, the state is kept (closed if disabled)."""
        self.config = config
        self.streak = 0
        self.slow_seconds = config.slow_call_seconds
        self._width = config.window / _BUCKETS
        self._index = 0
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._slow = [0] * _BUCKETS
        if not config.enabled and self.state != CLOSED:
            self._move(CLOSED, "breaker disabled")

    # -- before a call -----------------------------------------------------------------------

    def admit(self) -> None:
        """Called only while `rejecting`: let a half-open probe through, or raise."""
        now = time.monotonic()
        if self.state == OPEN and now - self.opened_at >= self.config.cool_down:
            self._move(HALF_OPEN, "cool-down over")
            self._probes = 0
        if self.state == HALF_OPEN:
            # A probe that never reported (its caller gave up) must not block the breaker.
            if self._probes and now - self._probe_started > self.config.cool_down:
                self._probes = 0
            if self._probes < self.config.probes:
                if not self._probes:
                    self._probe_started = now
                self._probes += 1
                return
        self.rejected += 1
        raise self.refusal()

    # -- after a call ------------------------------------------------------------------------

    def success(self, seconds: float, now: float) -> None:
        """A call that reached the backend and got its answer, in ``seconds``."""
        self.streak = 0
        if seconds >= self.slow_seconds:
            self._record(now, failed=False, slow=True)
            return
        index = int(now / self._width)
        if index != self._index:
            self._rotate(index)
        self._calls[index % _BUCKETS] += 1
        if self.rejecting:
            self._probe_result(True)

    def failure(self, now: float | None = None) -> None:
        """A backend failure: lost connection, connect refused or timed out."""
        self.streak += 1
        self._record(time.monotonic() if now is None else now, failed=True, slow=False)

    def _record(self, now: float, failed: bool, slow: bool) -> None:
        index = int(now / self._width)
        if index != self._index:
            self._rotate(index)
        slot = index % _BUCKETS
        self._calls[slot] += 1
        if failed:
            self._failures[slot] += 1
        if slow:
            self._slow[slot] += 1
        if self.rejecting:
            self._probe_result(not failed and not slow)
            return
        if not self.config.enabled:
            return
        in_a_row = self.config.consecutive_failures
        if failed and in_a_row and self.streak >= in_a_row:
            self._open(f"{self.streak} backend failures in a row, no success between")
            return
        calls = sum(self._calls)
        if calls < self.config.min_calls:
            return
        failures, slow_calls = sum(self._failures), sum(self._slow)
        if failures / calls >= self.config.error_rate:
            self._open(f"{failures} of {calls} calls failed in {self.config.window:g} s")
        elif slow_calls / calls >= self.config.slow_call_rate:
            self._open(f"{slow_calls} of {calls} calls took over "
                       f"{self.config.slow_call_seconds:g} s in {self.config.window:g} s")

    def _probe_result(self, ok: bool) -> None:
        if self.state != HALF_OPEN:
            return  # a call that started before the breaker opened
        if ok:
            self._move(CLOSED, "probe succeeded")
            self._reset_window()
        else:
            self._open("probe failed")

    def _rotate(self, index: int) -> None:
        """Clear the buckets that fell out of the window since the last recorded call."""
        gap = index - self._index
        if gap >= _BUCKETS or gap < 0:
            self._reset_window()
        else:
            for i in range(self._index + 1, index + 1):
                slot = i % _BUCKETS
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
        self._index = index

    def _reset_window(self) -> None:
        for counts in (self._calls, self._failures, self._slow):
            counts[:] = [0] * _BUCKETS

    def _open(self, reason: str) -> None:
        self.opened_at = time.monotonic()
        self.streak = 0
        self._move(OPEN, reason)

    def refusal(self) -> BreakerOpen:
        """The error for a statement refused now (also given to acquirers queued when the
        breaker opened)."""
        wait = max(0.0, self.opened_at + self.config.cool_down - time.monotonic())
        retry = (f"it lets a probe through in {wait:.1f} s" if self.state == OPEN
                 else "a probe statement is checking it now")
        return BreakerOpen(f"DAL: circuit breaker for backend instance {self.instance} is "
                           f"{self.state.replace('_', '-')} ({self.reason}); statements for "
                           f"it fail at once: {retry}; retry later (SHOW DAL BREAKERS)")

    def _move(self, state: str, reason: str) -> None:
        self.state = state
        self.reason = reason
        self.rejecting = state != CLOSED
        self.transitions[state] += 1
        if self.on_transition is not None:
            self.on_transition(self.instance, state)

    def window_counts(self) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the current window."""
        self._rotate(int(time.monotonic() / self._width))
        return sum(self._calls), sum(self._failures), sum(self._slow)
