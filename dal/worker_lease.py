"""Gene worker ids leased from a control table, and the persisted high-water mark of each.

``dal_meta.gene_workers`` on the default instance holds one row per worker id (0..31): who
holds it (``host:pid:token``), until when (``lease_until``, by the database's clock) and its
``ceiling``, a tick (milliseconds since the gene epoch) below which every id the worker ever
issued lies. A process takes a free id at start (or checks its configured ``server.worker_id``),
reserves a ceiling ``RESERVE_AHEAD`` ahead before issuing ids, and renews both every
``RENEW_EVERY`` seconds from the event loop (in a thread: pymysql is blocking). The per-id hot
path (router/genes.py) does no I/O; it reserves synchronously only when a burst ran through the
whole reservation.

Safety comes from the ceiling, not the lease: a holder issues ids only below the ceiling it
persisted while it held the row, and a new holder starts at that ceiling. So an id whose holder
crashed is reused once its lease expires (or at once when the holder was a process of this host
that no longer exists), and even a holder that was only cut off cannot collide with its
successor: its next reservation finds the row taken and it stops issuing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

import pymysql
from pymysql.constants import CLIENT

from config.model import Instance
from router.genes import WORKERS, GeneGenerator, clock_tick, first_id_of_tick, tick_time
from router.targets import Refusal

UNAVAILABLE = (1105, "HY000")  # no gene worker id leased: docs/errors.md

log = logging.getLogger("dal.genes")

TABLE = "dal_meta.gene_workers"
DDL = (
    "CREATE DATABASE IF NOT EXISTS dal_meta",
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " worker_id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,"
    " holder VARCHAR(255) NOT NULL,"
    " lease_until DATETIME(3) NOT NULL,"
    " ceiling BIGINT NOT NULL,"
    " updated_at DATETIME(3) NOT NULL) ENGINE=InnoDB",
)
LEASE_SECONDS = 30       # a crashed holder's id is free this long after its last renewal
RENEW_EVERY = 5.0        # seconds between renewals (lease and ceiling)
RESERVE_AHEAD = 30_000   # ticks (ms) reserved ahead of the clock or of the last id
RETRY_AFTER = 1.0        # seconds a failed synchronous reservation is not tried again


class LeaseError(Exception):
    """No worker id could be leased, or the lease was lost; the message names why."""


@dataclass(frozen=True)
class Grant:
    """A lease just taken: the worker id, the first tick it may issue at, and its ceiling."""

    worker_id: int
    start: int
    ceiling: int


def holder_name() -> str:
    """``host:pid:token``: unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _dead_local(holder: str, me: str) -> bool:
    """Whether ``holder`` was a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != me.partition(":")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class WorkerLease:
    """One process's lease on a gene worker id in the control table (blocking calls)."""

    def __init__(self, instance: Instance, holder: str | None = None) -> None:
        self.instance = instance
        self.holder = holder or holder_name()
        self.worker_id: int | None = None
        self._conn: pymysql.connections.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> pymysql.connections.Connection:
        if self._conn is None or not self._conn.open:
            i = self.instance
            self._conn = pymysql.connect(host=i.host, port=i.port, user=i.user,
                                         password=i.password, connect_timeout=2, read_timeout=5,
                                         write_timeout=5, autocommit=False,
                                         client_flag=CLIENT.FOUND_ROWS)
            # In dal_meta, so that the backend's processlist tells it from the pools' own.
            with self._conn.cursor() as cur:
                cur.execute(DDL[0])
            self._conn.select_db("dal_meta")
        return self._conn

    def _run(self, work):
        """Run ``work(cursor)`` in one transaction (retried on a deadlock); after any other
        error the connection is closed, and reopened by the next call."""
        with self._lock:
            for attempt in range(5):
                conn = self._connection()
                try:
                    with conn.cursor() as cur:
                        result = work(cur)
                    conn.commit()
                    return result
                except pymysql.MySQLError as exc:
                    with contextlib.suppress(Exception):
                        conn.close()
                    self._conn = None
                    if exc.args[:1] not in ((1213,), (1205,)) or attempt == 4:
                        raise
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    raise
            raise AssertionError("unreachable")

    def acquire(self, wanted: int | None = None) -> Grant:
        """Take ``wanted`` (a configured worker id) or the lowest free id; raises LeaseError
        when none is free or ``wanted`` is held by a live process."""
        def create_table(cur) -> None:
            for statement in DDL:
                cur.execute(statement)
            cur.execute(f"INSERT IGNORE INTO {TABLE} VALUES "
                        + ", ".join(["(%s, '', '1970-01-02', 0, NOW(3))"] * WORKERS),
                        tuple(range(WORKERS)))

        def take(cur) -> Grant:
            cur.execute(f"SELECT worker_id, holder, lease_until < NOW(3) OR holder = %s, ceiling "
                        f"FROM {TABLE} FOR UPDATE", (self.holder,))
            rows = {int(r[0]): (r[1], bool(r[2]) or _dead_local(r[1], self.holder), int(r[3]))
                    for r in cur.fetchall()}
            if wanted is not None:
                if not rows[wanted][1]:
                    raise LeaseError(f"server.worker_id {wanted} is leased by {rows[wanted][0]} "
                                     f"(table {TABLE} on the default instance); give each "
                                     "process its own worker id or leave server.worker_id unset")
                worker = wanted
            else:
                free = [w for w in range(WORKERS) if rows[w][1]]
                if not free:
                    raise LeaseError(f"all {WORKERS} gene worker ids are leased by live "
                                     f"processes (table {TABLE}); stop a DAL process first")
                worker = free[0]
            start = max(clock_tick(), rows[worker][2])
            ceiling = start + RESERVE_AHEAD
            cur.execute(f"UPDATE {TABLE} SET holder = %s, lease_until = NOW(3) + INTERVAL "
                        f"{LEASE_SECONDS} SECOND, ceiling = %s, updated_at = NOW(3) "
                        "WHERE worker_id = %s", (self.holder, ceiling, worker))
            return Grant(worker, start, ceiling)

        self._run(create_table)
        grant = self._run(take)
        self.worker_id = grant.worker_id
        return grant

    def reserve(self, tick: int) -> int:
        """Persist a ceiling ``RESERVE_AHEAD`` beyond ``tick`` (or the clock) and renew the
        lease; returns the ceiling. Raises LeaseError when the lease is no longer ours."""
        ceiling = max(tick, clock_tick()) + RESERVE_AHEAD

        def renew(cur) -> int:
            changed = cur.execute(
                f"UPDATE {TABLE} SET ceiling = GREATEST(ceiling, %s), lease_until = NOW(3) + "
                f"INTERVAL {LEASE_SECONDS} SECOND, updated_at = NOW(3) "
                "WHERE worker_id = %s AND holder = %s", (ceiling, self.worker_id, self.holder))
            if changed != 1:
                raise LeaseError(f"the lease on gene worker id {self.worker_id} was lost (taken "
                                 f"over in {TABLE} after it expired)")
            return ceiling

        if self.worker_id is None:
            raise LeaseError("no gene worker id is leased")
        return self._run(renew)

    def release(self, next_tick: int) -> None:
        """Give the id back at a clean stop, recording ``next_tick`` (above every id issued)
        as its ceiling, so that the next holder starts right there."""
        def give_back(cur) -> None:
            cur.execute(f"UPDATE {TABLE} SET ceiling = %s, lease_until = NOW(3), "
                        "updated_at = NOW(3) WHERE worker_id = %s AND holder = %s",
                        (next_tick, self.worker_id, self.holder))

        if self.worker_id is not None:
            self._run(give_back)
        self.worker_id = None

    def rows(self) -> list[tuple]:
        """The control table: worker id, holder, seconds of lease left, ceiling, updated_at."""
        def read(cur) -> list[tuple]:
            cur.execute(f"SELECT worker_id, holder, GREATEST(0, TIMESTAMPDIFF(MICROSECOND, "
                        f"NOW(3), lease_until)) / 1e6, ceiling, updated_at FROM {TABLE} "
                        "WHERE holder <> '' ORDER BY worker_id")
            return list(cur.fetchall())

        return self._run(read)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


class LeasedGenes:
    """Couples a process's GeneGenerator to its WorkerLease: lease at start, renew on a timer,
    reserve synchronously when a burst needs it, give the id back at a clean stop. Until a
    lease is held, ids are refused (1105, naming why)."""

    def __init__(self, lease: WorkerLease, wanted: int | None) -> None:
        self.lease = lease
        self.wanted = wanted
        self.generator = GeneGenerator(0, start=0, ceiling=0, reserve=self._reserve)
        self.held = False
        self.problem = "no gene worker id leased yet"
        self._retry_at = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Lease a worker id now (blocking). A configured id held elsewhere raises LeaseError;
        an unreachable control table is logged and retried by the renewal timer."""
        try:
            self._install(self.lease.acquire(self.wanted))
        except pymysql.MySQLError as exc:
            self.problem = f"the control table {TABLE} could not be reached: {exc}"
            log.warning("gene worker id not leased yet (%s); inserts that need a generated id "
                        "are refused until it is", self.problem)

    def _install(self, grant: Grant) -> None:
        self.generator.reset(grant.worker_id, grant.start, grant.ceiling)
        self.held = True
        log.info("gene worker id %d leased (ids from tick %d)", grant.worker_id, grant.start)

    def _reserve(self, tick: int) -> int:
        """The generator's slow path: a burst reached the reserved ceiling (or no lease)."""
        if not self.held or time.monotonic() < self._retry_at:
            raise Refusal(UNAVAILABLE, f"DAL cannot generate an order id: {self.problem}")
        try:
            return self.lease.reserve(tick)
        except (pymysql.MySQLError, LeaseError) as exc:
            self._lost(exc)
            raise Refusal(UNAVAILABLE, f"DAL cannot generate an order id: {self.problem}") from None

    def _lost(self, exc: Exception) -> None:
        if isinstance(exc, LeaseError):
            self.held = False
            self.generator.reset(self.generator.worker_id, self.generator.tick, 0)
        self.problem = str(exc)
        self._retry_at = time.monotonic() + RETRY_AFTER
        log.error("gene worker id %s: %s", self.generator.worker_id, exc)

    def run_renewals(self) -> None:
        """Start the renewal timer on the running event loop."""
        self._task = asyncio.ensure_future(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            await self.renew()

    async def renew(self) -> None:
        """Renew the lease and push the ceiling ahead, or lease an id if none is held."""
        try:
            if self.held:
                ceiling = await asyncio.to_thread(self.lease.reserve, self.generator.tick)
                if self.held:
                    self.generator.raise_ceiling(ceiling)
            else:
                self._install(await asyncio.to_thread(self.lease.acquire, self.wanted))
        except (pymysql.MySQLError, LeaseError) as exc:
            self._lost(exc)

    async def stop(self) -> None:
        """Stop renewing and give the id back (after the last statement)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.held:
            self.held = False
            next_tick = self.generator.tick + 1
            self.generator.reset(self.generator.worker_id, next_tick, 0)
            try:
                await asyncio.to_thread(self.lease.release, next_tick)
            except pymysql.MySQLError as exc:
                log.warning("gene worker id not released (%s); it is free again when its "
                            "lease expires", exc)
        await asyncio.to_thread(self.lease.close)



GENES_HEADER = ["worker_id", "holder", "this_process", "lease_seconds_left", "high_water_tick",
                "high_water_time", "ids_below", "ahead_ms", "borrowed_ms", "problem"]


def genes_rows(genes: LeasedGenes) -> tuple[list[str], list[list[object]]]:
    """SHOW DAL GENES: the control table's leases, each with its high-water mark (every id that
    worker issued is below ``ids_below``); this process's row adds its lead over the clock and
    the milliseconds it borrowed. Blocking: one small read of the control table."""
    gen = genes.generator
    own = gen.worker_id if genes.held else None
    problem: str | None = None if genes.held else genes.problem
    try:
        table = genes.lease.rows()
    except pymysql.MySQLError as exc:
        table, problem = [], f"control table unreachable: {exc}"
    rows: list[list[object]] = []
    for worker, holder, left, ceiling, _updated in table:
        mine = holder == genes.lease.holder
        rows.append([int(worker), holder, "yes" if mine else "no", f"{float(left):.3f}",
                     int(ceiling), tick_time(int(ceiling)), first_id_of_tick(int(ceiling)),
                     max(0, gen.tick - clock_tick()) if mine else None,
                     gen.borrowed if mine else None, problem if mine else None])
    if own is None or not any(r[2] == "yes" for r in rows):
        rows.append([own, genes.lease.holder, "yes", None, None, None, None, None,
                     gen.borrowed, problem])
    return GENES_HEADER, rows
