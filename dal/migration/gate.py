"""The write gate of one migrated database: held while a phase switch drains.

While the gate is closed (a switch drains, or the phase table cannot be read), a write to the
database's migrated tables waits up to ``write_pause`` seconds for it to open, then fails with
1205 naming the switch. Writes that passed it are counted until they end; the phase watcher
acks ``drained`` once none is left.
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

    def close(self, reason: str) -> None:
        """Hold new writes (``reason`` names the switch in the error after write_pause)."""
        self.reason = reason
        self._open.clear()

    async def drained(self) -> None:
        """Wait until no write that passed the gate is still running."""
        await self._idle.wait()

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[str]:
        """One write: wait while closed (up to ``pause``), count it in flight; yields the
        phase it runs under."""
        if not self._open.is_set():
            try:
                await asyncio.wait_for(self._open.wait(), self.pause)
            except TimeoutError:
                raise Refusal(HELD, f"Lock wait timeout exceeded: writes to the migrated tables "
                              f"of '{self.db}' are held by {self.reason or 'a phase switch'} "
                              f"(longer than write_pause = {self.pause} s); try again") from None
        self.in_flight += 1
        self._idle.clear()
        try:
            yield self.phase or ""
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
