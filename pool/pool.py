"""A pool of backend connections to one instance, shared by every client session.

Connections are kept in explicit sets (idle, in use) so that metrics and `SHOW DAL POOLS` just
count them. Idle connections are reused most-recently-used first. When the pool is full,
acquirers wait in a FIFO queue with a timeout; a full queue is refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

from config.model import Instance, PoolConfig
from pool.connection import BackendConnection, BackendError, ConnectionLost

POOL_TIMEOUT = 1105  # DAL refusal: no backend connection free in time (docs/errors.md)


class PoolExhausted(BackendError):
    """No connection became free within the acquire timeout, or the wait queue is full."""

    def __init__(self, message: str) -> None:
        super().__init__(POOL_TIMEOUT, message, "HY000")


@dataclass(slots=True)
class PoolStats:
    """A snapshot of one pool, for `SHOW DAL POOLS` and metrics."""

    instance: str
    max_size: int
    in_use: int
    idle: int
    connecting: int
    waiting: int
    opened: int
    closed: int


class Pool:
    """Backend connections to one instance."""

    def __init__(self, name: str, instance: Instance, config: PoolConfig, schema: str | None,
                 max_waiting: int = 10000) -> None:
        self.name = name
        self.instance = instance
        self.config = config
        self.schema = schema
        self.max_waiting = max_waiting
        self.idle: list[BackendConnection] = []
        self.in_use: set[BackendConnection] = set()
        self.connecting = 0
        self.waiters: deque[asyncio.Future[BackendConnection | None]] = deque()
        self.opened = 0
        self.closed_count = 0
        self.closing = False

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.in_use) + self.connecting

    def try_acquire(self, found_rows: bool = False) -> BackendConnection | None:
        """The hot path: an idle connection of the right flavour, or None."""
        idle = self.idle
        if idle and not self.waiters:
            conn = idle[-1]
            if conn.found_rows == found_rows and not conn.closed:
                idle.pop()
                self.in_use.add(conn)
                return conn
            for i in range(len(idle) - 2, -1, -1):
                conn = idle[i]
                if conn.found_rows == found_rows and not conn.closed:
                    del idle[i]
                    self.in_use.add(conn)
                    return conn
        return None

    async def acquire(self, found_rows: bool = False) -> BackendConnection:
        """A connection for exclusive use until `release`; raises `BackendError` on failure."""
        if self.closing:
            raise ConnectionLost(f"pool {self.name} is shutting down")
        conn = self.try_acquire(found_rows)
        if conn is not None:
            return conn
        if self.size < self.config.max_size:
            return await self._open_for_caller(found_rows)
        if self.idle:  # only connections of the other flavour are idle: replace one
            self._discard(self.idle.pop(0))
            return await self._open_for_caller(found_rows)
        return await self._wait(found_rows)

    async def _wait(self, found_rows: bool) -> BackendConnection:
        if len(self.waiters) >= self.max_waiting:
            raise PoolExhausted(
                f"DAL: backend pool {self.name} is full ({self.config.max_size} in use) and "
                f"its wait queue is full ({self.max_waiting} waiting); retry later")
        waiter: asyncio.Future[BackendConnection | None] = (
            asyncio.get_running_loop().create_future())
        self.waiters.append(waiter)
        started = time.monotonic()
        try:
            conn = await asyncio.wait_for(waiter, self.config.acquire_timeout)
        except asyncio.TimeoutError:
            raise PoolExhausted(
                f"DAL: no backend connection to instance {self.name} became free within "
                f"{self.config.acquire_timeout:g} s (pool max {self.config.max_size}, "
                f"{len(self.waiters)} waiting)") from None
        finally:
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)
        if conn is None:  # a slot was freed: open a new connection in it
            remaining = self.config.acquire_timeout - (time.monotonic() - started)
            return await self._open_for_caller(found_rows, max(remaining, 0.5))
        if conn.found_rows != found_rows:
            self.in_use.discard(conn)
            self._discard(conn)
            return await self._open_for_caller(found_rows)
        return conn

    async def _open_for_caller(self, found_rows: bool,
                               timeout: float | None = None) -> BackendConnection:
        self.connecting += 1
        try:
            conn = await BackendConnection.open(
                self.name, self.instance.host, self.instance.port, self.instance.user,
                self.instance.password, self.schema, found_rows=found_rows,
                timeout=timeout or self.config.connect_timeout)
        except BaseException:
            self.connecting -= 1
            self._hand_slot_to_waiter()
            raise
        self.connecting -= 1
        self.opened += 1
        self.in_use.add(conn)
        return conn

    def release(self, conn: BackendConnection, reusable: bool = True) -> None:
        """Give a connection back. A broken, busy or unwanted one is closed instead."""
        if conn not in self.in_use:
            raise RuntimeError(f"connection {conn.id} released twice or to the wrong pool")
        self.in_use.discard(conn)
        now = time.monotonic()
        if (not reusable or conn.closed or conn.busy or self.closing
                or now - conn.created > self.config.max_lifetime):
            self._discard(conn)
            self._hand_slot_to_waiter()
            return
        conn.last_used = now
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.in_use.add(conn)
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def _hand_slot_to_waiter(self) -> None:
        while self.waiters and self.size < self.config.max_size:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard(self, conn: BackendConnection) -> None:
        self.closed_count += 1
        conn.close()

    def sweep(self) -> None:
        """Close idle connections past the idle timeout or the maximum lifetime."""
        now = time.monotonic()
        keep = []
        for conn in self.idle:
            if (conn.closed or now - conn.last_used > self.config.idle_timeout
                    or now - conn.created > self.config.max_lifetime):
                self._discard(conn)
            else:
                keep.append(conn)
        self.idle = keep
        self._hand_slot_to_waiter()

    def stats(self) -> PoolStats:
        return PoolStats(self.name, self.config.max_size, len(self.in_use), len(self.idle),
                         self.connecting, len(self.waiters), self.opened, self.closed_count)

    async def close(self) -> None:
        """Close idle connections now; in-use ones are closed when released."""
        self.closing = True
        for conn in self.idle:
            self._discard(conn)
        self.idle.clear()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionLost(f"pool {self.name} is shutting down"))
        self.waiters.clear()
