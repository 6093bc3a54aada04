"""A pool of backend connections to one instance, shared by every client session.

Connections are kept in explicit sets (idle, in use) so that metrics and `SHOW DAL POOLS` just
count them. Idle connections are reused most-recently-used first. When the pool is full, a
statement that may share (an autocommit one on the hot path, `Share`) is pipelined behind the
statements in flight on a connection running such statements, up to ``pool.pipeline_depth``
of them (pool/flights.py); other acquirers, and those that find every shared connection at
that depth, wait in a FIFO queue with a timeout; a full queue is refused at once.

With ``pool.pipeline_spread: N``, such a statement pipelines before the pool is full: once N
connections run shareable statements, it joins the least busy of them rather than taking an
idle connection, if every statement in flight there is of a quick shape (`Share`) and the
one running started less than `SLOW_HEAD` ago: nothing is queued behind a slow statement, or
behind one whose session may read its warnings next, by choice. Fewer backend threads then
serve more statements each, reading them back to back (docs/design-notes.md, "Pipelining
before the pool is full").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from config.model import Instance, PoolConfig
from config.protection import BreakerConfig
from pool.breaker import Breaker
from pool.connection import BackendConnection, BackendError, ConnectionLost
from pool.histogram import Histogram
from pool.tls import client_context

# A connection whose statement in flight started longer ago than this is not joined while an
# idle connection could serve instead (`pool.pipeline_spread`): a slow statement is not waited
# behind by choice.
SLOW_HEAD = 0.005
POOL_TIMEOUT = 1105  # DAL refusal: no backend connection free in time (docs/errors.md)


class PoolExhausted(BackendError):
    """No connection became free within the acquire timeout, or the wait queue is full."""

    def __init__(self, message: str) -> None:
        super().__init__(POOL_TIMEOUT, message, "HY000")


Callback = Callable[[BackendConnection | None, BackendError | None], None]
# What a statement that may be pipelined needs of the connection it joins: the schema
# (None: any), the session variables replayed on it, for a prepared execution the SQL the
# connection must have prepared (pool/statements.py; None for a text statement), and whether
# statements of its shape are quick (dal/stats.py `quick`: others may queue behind it before
# the pool is full, `pool.pipeline_spread`).
Share = tuple[str | None, dict[str, str], bytes | None, bool]


def fits(conn: BackendConnection, share: Share) -> bool:
    """Whether a statement that needs ``share`` may be pipelined on ``conn``."""
    schema, variables, prepared, _ = share
    return ((schema is None or conn.schema == schema) and conn.variables == variables
            and (prepared is None or conn.statement_key(prepared) in conn.prepared))


@dataclass(slots=True)
class Waiter:
    """An acquirer in the FIFO queue."""

    deadline: float
    flavour: int
    callback: Callback
    queued: float
    share: Share | None = None


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
                 breaker: Breaker | None = None) -> None:
        self.name = name
        self.instance = instance
        self.config = config
        self.schema = schema
        self.breaker = breaker or Breaker(name, BreakerConfig())
        self.tls = client_context(instance.tls) if instance.tls is not None else None
        self.idle: list[BackendConnection] = []
        self.in_use: set[BackendConnection] = set()
        self.sharing: set[BackendConnection] = set()  # in use, open to pipelined statements
        self.pipelined = 0  # statements written behind another on a busy connection
        self.connecting = 0
        self.waiters: deque[Waiter] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self.failed_opens = 0
        self.opened = 0
        self.closed_count = 0
        self.closing = False
        # Acquire waits: immediate ones are only counted (the hot path adds one integer);
        # queued ones and new connections are observed in `wait` (seconds).
        self.immediate = 0
        self.wait = Histogram()
        self.timeouts = 0
        self.queue_full = 0

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.in_use) + self.connecting

    def try_acquire(self, flavour: int = 0) -> BackendConnection | None:
        """The hot path: an idle connection of the right flavour, or None."""
        idle = self.idle
        if idle and not self.waiters:
            conn = idle[-1]
            if conn.flavour == flavour and not conn.closed:
                idle.pop()
                self.in_use.add(conn)
                return conn
            for i in range(len(idle) - 2, -1, -1):
                conn = idle[i]
                if conn.flavour == flavour and not conn.closed:
                    del idle[i]
                    self.in_use.add(conn)
                    return conn
        return None

    def request(self, flavour: int, callback: Callback,
                share: Share | None = None) -> BackendConnection | None:
        """An idle connection now, or None and ``callback(conn, error)`` later.

        With ``share``, a full pool may hand out a connection with statements in flight, to
        pipeline behind them (`offer`): its ``busy`` says so.
        No coroutine and no future on this path: a waiter is a callback in a FIFO queue, served
        by `release()` or failed by the expiry timer. Raises `PoolExhausted` at once when the
        wait queue is full, and `ConnectionLost` when the pool is closing.
        """
        if self.closing:
            raise ConnectionLost(f"pool {self.name} is shutting down")
        if self.breaker.rejecting:
            self.breaker.admit()  # raises BreakerOpen unless this is a half-open probe
        if (share is not None and len(self.sharing) >= self.config.pipeline_spread > 0
                and not self.waiters):  # enough connections run such statements: join one
            conn = self._join(flavour, share, time.monotonic() - SLOW_HEAD,
                              self.config.pipeline_spread)
            if conn is not None:
                self.immediate += 1
                return conn
        conn = self.try_acquire(flavour)
        if conn is not None:
            self.immediate += 1
            return conn
        if self.idle and any(c.closed for c in self.idle):  # killed or broken while idle
            for conn in [c for c in self.idle if c.closed]:
                self.idle.remove(conn)
                self._discard(conn)
        if self.size < self.config.max_size:
            self._open_for(flavour, callback)
            return None
        if share is not None and self.sharing and not self.waiters:
            conn = self._join(flavour, share)
            if conn is not None:
                self.immediate += 1
                return conn
        if self.idle:  # only connections of other flavours are idle: replace one
            self._discard(self.idle.pop(0))
            self._open_for(flavour, callback)
            return None
        if len(self.waiters) >= self.config.max_waiters:
            self.queue_full += 1
            raise PoolExhausted(
                f"DAL: backend pool {self.name} is full ({self.config.max_size} in use) and "
                f"its wait queue is full ({self.config.max_waiters} waiting, "
                "pool.max_waiters); retry later")
        now = time.monotonic()
        self.waiters.append(Waiter(now + self.config.acquire_timeout, flavour, callback, now,
                                   share))
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(
                self.config.acquire_timeout, self._expire)
        return None

    async def acquire(self, flavour: int = 0) -> BackendConnection:
        """A connection for exclusive use until `release`; raises `BackendError` on failure."""
        future: asyncio.Future[BackendConnection] = asyncio.get_running_loop().create_future()

        def deliver(conn: BackendConnection | None, error: BackendError | None) -> None:
            if future.done():  # the caller gave up: hand the connection straight back
                if conn is not None:
                    self.release(conn)
                return
            if conn is not None:
                future.set_result(conn)
            else:
                future.set_exception(error or ConnectionLost("no connection"))

        conn = self.request(flavour, deliver)
        if conn is not None:
            return conn
        return await future

    def _open_for(self, flavour: int, callback: Callback, queued: float | None = None) -> None:
        self.connecting += 1
        task = asyncio.ensure_future(self._open(flavour, callback,
                                                time.monotonic() if queued is None else queued))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, flavour: int, callback: Callback, queued: float) -> None:
        try:
            conn = await BackendConnection.open(
                self.name, self.instance.host, self.instance.port, self.instance.user,
                self.instance.password, self.schema, flavour=flavour,
                timeout=self.config.connect_timeout, tls=self.tls)
        except BackendError as exc:
            self.connecting -= 1
            self.failed_opens += 1
            self.breaker.failure()
            callback(None, exc)
            self._hand_slot_to_waiter()
            return
        except Exception as exc:  # never leave a caller waiting
            self.connecting -= 1
            self.breaker.failure()
            callback(None, ConnectionLost(f"cannot connect to backend {self.name}: {exc}"))
            self._hand_slot_to_waiter()
            return
        self.connecting -= 1
        self.opened += 1
        conn.breaker = self.breaker
        if self.closing:
            conn.close()
            callback(None, ConnectionLost(f"pool {self.name} is shutting down"))
            return
        self.in_use.add(conn)
        self.wait.observe(time.monotonic() - queued)
        callback(conn, None)

    def _expire(self) -> None:
        """Fail waiters whose acquire timeout has passed (the queue is in deadline order)."""
        self._expiry = None
        now = time.monotonic()
        waiters = self.waiters
        while waiters and waiters[0].deadline <= now:
            waiter = waiters.popleft()
            self.timeouts += 1
            waiter.callback(None, PoolExhausted(
                f"DAL: no backend connection to instance {self.name} became free within "
                f"{self.config.acquire_timeout:g} s (pool max {self.config.max_size}, "
                f"{len(waiters)} still waiting)"))
        if waiters:
            self._expiry = asyncio.get_running_loop().call_later(
                max(waiters[0].deadline - now, 0.001), self._expire)

    def offer(self, conn: BackendConnection, quick: bool = False) -> None:
        """``conn`` (in use) runs a statement others may pipeline behind, until its last
        request in flight ends (`BackendConnection.shared`); before the pool is full, only
        while every statement in flight on it is ``quick`` (`Share`). Not over TLS: what the
        backend acknowledged is counted in plaintext bytes (pool/flights.py)."""
        if self.config.pipeline_depth > 1 and self.tls is None:
            conn.shared = True
            conn.quick = quick
            self.sharing.add(conn)

    def _join(self, flavour: int, share: Share, started_after: float = 0.0,
              spread: int = 0) -> BackendConnection | None:
        """The shared connection with the fewest requests in flight, below the depth limit,
        of the flavour and with the state ``share`` needs; counted as one more holder. With
        ``spread`` (the pool is not full), only if at least that many connections run shared
        requests now, and only one whose requests are all quick and whose request in flight
        was sent after ``started_after`` (monotonic)."""
        best: BackendConnection | None = None
        lowest = self.config.pipeline_depth
        stale = None
        running = 0
        for conn in self.sharing:
            if not conn.shared or conn.closed:  # its last shared request ended
                stale = [*(stale or ()), conn]
                continue
            running += 1
            if (conn.depth < lowest and conn.flavour == flavour
                    and (not spread or (conn.quick and conn.sent_at >= started_after))
                    and fits(conn, share)):
                best, lowest = conn, conn.depth
        if stale:
            self.sharing.difference_update(stale)
        if running < spread:
            return None
        if best is not None:
            if not share[3]:
                best.quick = False  # others do not queue behind it before the pool is full
            best.joined += 1
            self.pipelined += 1
        return best

    def _serve_joiners(self, conn: BackendConnection, now: float) -> None:
        """Queued statements that may share, at the head of the queue, pipelined on ``conn``
        while it stays below the depth limit (FIFO: stops at the first that may not)."""
        waiters = self.waiters
        limit = self.config.pipeline_depth
        while waiters and conn.shared and not conn.closed and conn.depth < limit:
            waiter = waiters[0]
            share = waiter.share
            if share is None or waiter.flavour != conn.flavour or not fits(conn, share):
                return
            waiters.popleft()
            if not share[3]:
                conn.quick = False
            conn.joined += 1
            self.pipelined += 1
            self.wait.observe(now - waiter.queued)
            waiter.callback(conn, None)

    def release(self, conn: BackendConnection, reusable: bool = True) -> None:
        """Give a connection back. A broken, busy or unwanted one is closed instead. A
        connection other sessions' pipelined statements still hold stays in use."""
        if conn not in self.in_use:
            raise RuntimeError(f"connection {conn.id} released twice or to the wrong pool")
        if conn.joined:
            conn.joined -= 1
            if self.waiters:
                self._serve_joiners(conn, time.monotonic())
            return
        self.in_use.discard(conn)
        now = time.monotonic()
        if (not reusable or conn.closed or conn.busy or self.closing
                or now - conn.created > self.config.max_lifetime):
            self._discard(conn)
            self._hand_slot_to_waiter()
            return
        conn.last_used = now
        if self.waiters:
            waiter = self.waiters.popleft()
            if waiter.flavour == conn.flavour:
                self.in_use.add(conn)
                self.wait.observe(now - waiter.queued)
                waiter.callback(conn, None)
                if self.waiters and conn.shared:  # its statement may be shared: fill it up
                    self._serve_joiners(conn, now)
            else:
                self._discard(conn)
                self._open_for(waiter.flavour, waiter.callback, waiter.queued)
            return
        self.idle.append(conn)

    def fail_waiters(self, error: BackendError) -> None:
        """Fail every queued acquirer at once (the breaker just opened)."""
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            waiter.callback(None, error)

    def _hand_slot_to_waiter(self) -> None:
        """A connection was closed: open a new one for the first waiter, if any."""
        if self.waiters and self.size < self.config.max_size and not self.closing:
            waiter = self.waiters.popleft()
            self._open_for(waiter.flavour, waiter.callback, waiter.queued)

    def _discard(self, conn: BackendConnection) -> None:
        self.closed_count += 1
        self.sharing.discard(conn)
        conn.close()

    def warm(self) -> None:
        """Open connections until ``pool.min_idle`` are idle or opening (never past the
        maximum); they wait in the idle list for the first statements."""
        missing = min(self.config.min_idle - len(self.idle) - self.connecting,
                      self.config.max_size - self.size)
        for _ in range(max(missing, 0) if not self.closing else 0):
            self._open_for(0, self._park)

    def _park(self, conn: BackendConnection | None, error: BackendError | None) -> None:
        if conn is not None:
            self.release(conn)

    def sweep(self) -> None:
        """Close idle connections past the idle timeout or the maximum lifetime (keeping
        ``pool.min_idle`` of those only idle too long), then warm the pool back up."""
        now = time.monotonic()
        keep: list[BackendConnection] = []
        spare = len(self.idle) - self.config.min_idle  # idle ones that may time out
        for conn in self.idle:
            idle_too_long = now - conn.last_used > self.config.idle_timeout
            if (conn.closed or now - conn.created > self.config.max_lifetime
                    or (idle_too_long and spare > 0)):
                spare -= not conn.closed
                self._discard(conn)
            else:
                keep.append(conn)
        self.idle = keep
        self._hand_slot_to_waiter()
        self.warm()

    def stats(self) -> PoolStats:
        return PoolStats(self.name, self.config.max_size, len(self.in_use), len(self.idle),
                         self.connecting, len(self.waiters), self.opened, self.closed_count)

    async def close(self) -> None:
        """Close idle connections now; in-use ones are closed when released."""
        self.closing = True
        for conn in self.idle:
            self._discard(conn)
        self.idle.clear()
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            waiter.callback(None, ConnectionLost(f"pool {self.name} is shutting down"))
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
