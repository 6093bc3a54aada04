"""The write gate of one migrated database: held while a phase switch drains.

While the gate is closed (a switch drains, or the phase table cannot be read), a write to the
database's migrated tables waits up to ``write_pause`` seconds for it to open, then fails with
1205 naming the switch. Writes that passed it are counted until they end; the phase watcher
acks ``drained`` once none is left. A write inside a client transaction also makes its session
a *holder* until the transaction ends (`release`): the drain waits for holders too, and a
holder's further writes pass a closed gate, under the phase its transaction began in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from router.targets import Refusal

HELD = (1205, "HY000")  # ER_LOCK_WAIT_TIMEOUT: the client retries, as after a lock wait


class Gate:
    """Open/closed, and the writes in flight, of one database."""

    def __init__(self, db: str, pause: float) -> None:
        self.db = db
        self.pause = pause
        self.phase: str | None = None
        self.reason = ""
        self.in_flight = 0
        self.holders: set[int] = set()  # sessions whose open transaction wrote here
        self.holders_pass = False  # closed for a drain: holders' writes still run
        self._open = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        """True while writes are held."""
        return not self._open.is_set()

    def open(self, phase: str) -> None:
        """Let writes run, under ``phase``."""
        self.phase = phase
        self._open.set()

    def close(self, reason: str, holders_pass: bool = False) -> None:
        """Hold new writes (``reason`` names the switch in the error after write_pause);
        ``holders_pass``: a drain, where the writes of open transactions still run."""
        self.reason = reason
        self.holders_pass = holders_pass
        self._open.clear()

    async def drained(self) -> None:
        """Wait until no write that passed the gate is still running and no transaction
        that wrote through it is open."""
        await self._idle.wait()

    def release(self, holder: int) -> None:
        """The transaction of session ``holder`` ended (and its mirror was copied)."""
        self.holders.discard(holder)
        if not self.in_flight and not self.holders:
            self._idle.set()

    @asynccontextmanager
    async def enter(self, holder: int | None = None) -> AsyncIterator[str]:
        """One write: wait while closed (up to ``pause``), count it in flight; yields the
        phase it runs under. ``holder``: the session id when the write is part of a client
        transaction (it holds the gate until `release`)."""
        if holder is not None and holder in self.holders and (
                self.holders_pass or self._open.is_set()):
            pass  # its transaction already runs under this phase: the drain waits for it
        elif not self._open.is_set():
            try:
                await asyncio.wait_for(self._open.wait(), self.pause)
            except TimeoutError:
                raise Refusal(HELD, f"Lock wait timeout exceeded: writes to the migrated tables "
                              f"of '{self.db}' are held by {self.reason or 'a phase switch'} "
                              f"(longer than write_pause = {self.pause} s); try again") from None
        self.in_flight += 1
        if holder is not None:
            self.holders.add(holder)
        self._idle.clear()
        try:
            yield self.phase or ""
        finally:
            self.in_flight -= 1
            if not self.in_flight and not self.holders:
                self._idle.set()
