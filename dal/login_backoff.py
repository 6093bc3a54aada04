"""Backoff after failed logins: a block per client address, a delay per user name.

An address with ``failures`` failed logins within ``window`` seconds is blocked: its logins
are refused (1129) until the block ends, whatever the password; each further failure once the
block is over blocks it again for twice as long, up to ``max_block``. A user name with
``failures`` failed logins (from any address) makes every further attempt for that name wait
before its password is checked, ``base`` seconds doubled per further failure up to
``max_delay``: an attacker elsewhere slows the user's logins down but cannot lock the user
out (each guess of theirs costs them a connection held for the delay, and their own address
is blocked soon). A successful login forgets the failures of its user and of its address.

Memory is bounded: at most ``tracked`` addresses and ``tracked`` user names are remembered,
the least recently seen forgotten first, and a record whose last failure is older than the
window counts as forgotten.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from config.model import LoginBackoff as Settings

log = logging.getLogger("dal.login")

MAX_NAME = 128  # characters of a user name kept as a key (names are client-chosen)


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0  # time of the last failure
    until: float = 0.0  # end of the current block (addresses)


class _Recent:
    """Failure records keyed by address or user name, least recently touched first."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.records: OrderedDict[str, _Failures] = OrderedDict()

    def get(self, key: str, now: float) -> _Failures | None:
        record = self.records.get(key)
        if record is not None and now - record.last > self.window and now >= record.until:
            del self.records[key]  # expired: the failures no longer count
            return None
        return record

    def fail(self, key: str, now: float) -> _Failures:
        record = self.get(key, now)
        if record is None:
            record = self.records[key] = _Failures()
            while len(self.records) > self.limit:
                self.records.popitem(last=False)
        else:
            self.records.move_to_end(key)
        record.count += 1
        record.last = now
        return record

    def forget(self, key: str) -> None:
        self.records.pop(key, None)


class LoginBackoff:
    """The failure records of one DAL process; ``counts`` feeds dal_login_backoff_total."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.addresses = _Recent(settings.tracked, settings.window)
        self.users = _Recent(settings.tracked, settings.window)
        self.counts: Counter[str] = Counter()  # scope -> attempts refused (address) / delayed

    def blocked_for(self, address: str) -> float:
        """Seconds the address stays blocked (0: not blocked); counts a refusal."""
        if not self.settings.enabled:
            return 0.0
        now = self.clock()
        record = self.addresses.get(address, now)
        if record is None or now >= record.until:
            return 0.0
        self.counts["address"] += 1
        return record.until - now

    def failures_of(self, address: str) -> int:
        """Failed logins from the address that still count."""
        record = self.addresses.get(address, self.clock())
        return record.count if record is not None else 0

    def delay_for(self, user: str) -> float:
        """Seconds to hold a login attempt for this user before checking it (0: none); counts
        a delay."""
        s = self.settings
        if not s.enabled or s.max_delay == 0:
            return 0.0
        record = self.users.get(user[:MAX_NAME], self.clock())
        if record is None or record.count < s.failures:
            return 0.0
        self.counts["user"] += 1
        return min(s.max_delay, s.base * 2 ** (record.count - s.failures))

    def failed(self, address: str, user: str) -> None:
        """Record a failed login; start or lengthen the address's block, the user's delay."""
        s = self.settings
        if not s.enabled:
            return
        now = self.clock()
        record = self.addresses.fail(address, now)
        if record.count >= s.failures:
            period = min(s.max_block, s.base * 2 ** (record.count - s.failures))
            record.until = now + period
            log.warning("login backoff: address %s blocked for %.0f s after %d failed logins "
                        "(the last as user %r)", address, period, record.count,
                        user[:MAX_NAME])
        key = user[:MAX_NAME]
        count = self.users.fail(key, now).count
        past = count - s.failures
        if past >= 0 and s.max_delay and not past & (past - 1):
            # logged when the delay starts, then each time the failures past it double
            log.warning("login backoff: user %r has %d failed logins (the last from %s); its "
                        "logins now wait %.1f s", key, count, address,
                        min(s.max_delay, s.base * 2 ** (count - s.failures)))

    def succeeded(self, address: str, user: str) -> None:
        """A successful login forgets the failures of its user and its address."""
        self.addresses.forget(address)
        self.users.forget(user[:MAX_NAME])
