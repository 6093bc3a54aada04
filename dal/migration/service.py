"""DAL's side of a live migration, one per DAL process (issue 21, docs/migration.md).

The phase watcher polls ``dal_meta.migration_phase`` every ``poll_interval`` seconds and
applies what it reads: a new version in state ``drain`` closes the database's write gate
(dal/migration/gate.py), waits for the writes in flight and acks ``drained``; a new version in
state ``active`` gives the router the phase (its plan cache is cleared), opens the gate (the
held writes run under the new phase) and acks ``active``. Every second the process writes its
heartbeat (its ack row); a process that cannot read the phase table for longer than a live
heartbeat lasts closes its gates, since the fleet may have switched without it.

It also serves the execution context: the legacy-id lookup (cached, bounded), the repair log
and the lookup writes of dual writes, and the migration metrics' state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

from dal.migration import control, txn
from dal.migration.gate import Gate
from dal.migration.link import ControlLink
from dal.migration.repair import Repairer
from pool.histogram import Histogram

log = logging.getLogger("dal.migration")

LOOKUP_CACHE = 100_000  # legacy ids remembered (id -> user key), least recently used dropped
TICK = 1.0               # seconds between heartbeats (and between polls, at most)
SLOW_EVERY = 2.0         # seconds between reads of the repair depth and backfill progress


class Migrations:
    """The phase watcher, write gates, lookup cache and metrics of one DAL process."""

    def __init__(self, server: Any) -> None:
        self.server = server
        config = server.config
        self.dbs = {name: cfg.migration for name, cfg in config.databases.items()
                    if cfg.migration is not None}
        control_instance = config.instances[control.control_instance_name(config)]
        self.link = ControlLink(control_instance)      # the watcher's
        self.side = ControlLink(control_instance)      # lookups, repair log, metrics
        base = f"{socket.gethostname()}:{os.getpid()}:{getattr(server, 'worker_index', 0)}"
        self.process = {db: base if len(self.dbs) == 1 else f"{base}/{db}" for db in self.dbs}
        self.gates = {db: Gate(db, mig.write_pause) for db, mig in self.dbs.items()}
        for gate in self.gates.values():
            gate.close("DAL starting (the phase is not read yet)")
        self.applied: dict[str, tuple[int, str, str]] = {}
        self.max_ids: dict[str, int] = {}
        self.interval = min(mig.poll_interval for mig in self.dbs.values())
        self._lookup: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self.shadow_mismatches: Counter[str] = Counter()
        self.shadow_reads: Counter[str] = Counter()
        self.dual_write = Histogram()
        self.repair_depth: dict[str, int] = {}
        self.backfill: dict[tuple[str, str], int] = {}
        self.backfill_rate: dict[str, float] = {}
        self._backfill_seen: dict[str, tuple[float, int]] = {}
        self._last_ok = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self.repairer = Repairer(config, self.side)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read and apply the phases once, then watch and repair in the background."""
        for db in self.dbs:
            try:
                await asyncio.to_thread(self.repairer.ensure_outboxes, db)
            except Exception as exc:
                log.warning("migration: the outbox tables of %s cannot be created (%s); "
                            "writes to its migrated tables inside a transaction fail", db, exc)
        try:
            await self.poll()
        except Exception as exc:
            log.warning("migration: phase table unreadable at start (%s); writes to migrated "
                        "tables wait until it is read", exc)
        self._tasks = [asyncio.ensure_future(self._watch()),
                       asyncio.ensure_future(self._repair())]

    async def stop(self) -> None:
        """Stop watching; forget this process's acks (it no longer serves)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.link.call(lambda cur: [control.delete_ack(cur, p)
                                              for p in self.process.values()])
        self.link.close()
        self.side.close()
        self.repairer.close()

    # -- the watcher -------------------------------------------------------------------------

    async def _watch(self) -> None:
        last_poll = time.monotonic()
        last_slow = 0.0
        while True:
            await asyncio.sleep(min(self.interval, TICK))
            now = time.monotonic()
            try:
                if now - last_poll >= self.interval - 0.001:
                    last_poll = now
                    await self.poll()
                else:
                    await self._heartbeat()
                if now - last_slow >= SLOW_EVERY:
                    last_slow = now
                    await self._read_progress()
            except Exception as exc:
                self._blind(exc)

    def _blind(self, exc: Exception) -> None:
        """The phase table cannot be read: after a heartbeat's life, hold writes."""
        if time.monotonic() - self._last_ok > control.LIVE_SECONDS - 1:
            for gate in self.gates.values():
                if not gate.closed:
                    log.error("migration: phase table unreadable (%s): holding writes to "
                              "migrated tables of %s", exc, gate.db)
                    gate.close("an unreadable phase table (DAL cannot see the switches)")
                    self.applied.pop(gate.db, None)

    async def poll(self) -> None:
        """Read every migrated database's phase row, apply changes, heartbeat."""
        dbs = list(self.dbs)

        def read(cur: control.Cursor) -> list[control.PhaseRow]:
            rows = []
            for db in dbs:
                control.ensure_phase(cur, db)
                rows.append(control.read_phase(cur, db))
            return rows

        rows = await self.link.call(read)
        self._last_ok = time.monotonic()
        for row in rows:
            await self._apply(row)
        await self._heartbeat()

    async def _apply(self, row: control.PhaseRow) -> None:
        db = row.db
        self.max_ids[db] = row.max_legacy_id
        applied = self.applied.get(db)
        if applied is not None and applied[0] == row.version:
            return
        gate = self.gates[db]
        router = self.server.router
        if row.state == control.DRAIN:
            gate.close(f"the switch of '{db}' from {row.phase} to {row.next_phase}",
                       holders_pass=True)
            router.set_phase(db, row.phase)
            gate.phase = row.phase
            newer = await self._drain(gate, row)
            if newer is not None:  # the switch gave up (or moved on) meanwhile
                await self._apply(newer)
                return
            self.applied[db] = (row.version, control.DRAINED, row.phase)
            log.info("migration: %s drained for %s -> %s (version %d)", db, row.phase,
                     row.next_phase, row.version)
        else:
            router.set_phase(db, row.phase)
            gate.open(row.phase)
            self.applied[db] = (row.version, control.ACTIVE, row.phase)
            log.info("migration: %s in phase %s (version %d)", db, row.phase, row.version)
        await self._heartbeat()

    async def _drain(self, gate: Gate, row: control.PhaseRow) -> control.PhaseRow | None:
        """Wait for the writes in flight and the open transactions that wrote under the old
        phase, heartbeating (with the sessions that hold the drain up) meanwhile; the phase
        row when it changed before that (None: drained)."""
        while True:
            try:
                await asyncio.wait_for(gate.drained(), TICK)
                return None
            except TimeoutError:
                pass
            with contextlib.suppress(Exception):
                await self._heartbeat()
            try:
                now = await self.link.call(lambda cur: control.read_phase(cur, row.db))
            except Exception:
                continue
            if now is not None and now.version != row.version:
                return now

    async def _heartbeat(self) -> None:
        acks = [(self.process[db], db, *self.applied[db],
                 ",".join(str(h) for h in sorted(self.gates[db].holders)))
                for db in self.dbs if db in self.applied]
        if acks:
            await self.link.call(lambda cur: [control.write_ack(cur, *ack) for ack in acks])
            self._last_ok = time.monotonic()

    async def _read_progress(self) -> None:
        dbs = list(self.dbs)

        def read(cur: control.Cursor) -> tuple[dict, dict]:
            depth = {db: control.repair_depth(cur, db) for db in dbs}
            points = {db: control.read_checkpoints(cur, db) for db in dbs}
            return depth, points

        depth, points = await self.side.call(read)
        for db in dbs:
            depth[db] += await asyncio.to_thread(self.repairer.outbox_depth, db)
        self.repair_depth = depth
        now = time.monotonic()
        for db, checkpoints in points.items():
            total = 0
            for point in checkpoints:
                self.backfill[(db, point.tbl)] = point.rows_copied
                total += point.rows_copied
            seen = self._backfill_seen.get(db)
            if seen is not None and now > seen[0]:
                self.backfill_rate[db] = max(0.0, (total - seen[1]) / (now - seen[0]))
            self._backfill_seen[db] = (now, total)

    async def _repair(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            for db in self.dbs:
                try:
                    if self.repair_depth.get(db, 1):
                        await asyncio.to_thread(self.repairer.repair_some, db,
                                                self.max_ids.get(db, 0))
                except Exception as exc:
                    log.warning("migration: repairer of %s: %s", db, exc)

    # -- the execution context's services ----------------------------------------------------

    def gate(self, db: str) -> Gate:
        """The write gate of ``db``."""
        return self.gates[db]

    def hold(self, session: Any, db: str) -> None:
        """A write of the session's open transaction entered ``db``'s gate."""
        txn.hold(session, db)

    async def defer(self, session: Any, instance: str, db: str, tbl: str, ids: Sequence[int],
                    direction: str, mirror: txn.Mirror) -> None:
        """Outbox entries in the session's transaction; the mirror after its COMMIT."""
        await txn.defer(session, instance, db, tbl, ids, direction, mirror)

    def transaction_ended(self, session: Any) -> None:
        """A session's transaction that wrote migrated tables ended (dal/migration/txn.py)."""
        txn.ended(session)

    def max_legacy_id(self, db: str) -> int:
        """The highest legacy id of ``db`` (0 before dual_legacy)."""
        return self.max_ids.get(db, 0)

    async def legacy_users(self, db: str, tbl: str, ids: Sequence[int]) -> dict[int, int]:
        """``id -> user key`` of the legacy ids the lookup knows (cached)."""
        cache = self._lookup
        out: dict[int, int] = {}
        missing = []
        for i in ids:
            user = cache.get((db, tbl, i))
            if user is None:
                missing.append(i)
            else:
                cache.move_to_end((db, tbl, i))
                out[i] = user
        if missing:
            found = await self.side.call(lambda cur: control.lookup_get(cur, db, tbl, missing))
            for i, (user, _) in found.items():
                cache[(db, tbl, i)] = user
                out[i] = user
            while len(cache) > LOOKUP_CACHE:
                cache.popitem(last=False)
        return out

    async def record_repair(self, db: str, tbl: str, ids: Sequence[int], direction: str,
                            error: str) -> None:
        """Durably record failed mirrors (raises if even that fails)."""
        log.warning("migration: mirror %s of %s.%s ids %s failed (%s); recorded for repair",
                    direction, db, tbl, list(ids)[:10], error)
        await self.side.call(lambda cur: control.enqueue_repair(cur, db, tbl, ids, direction,
                                                                error))
        self.repair_depth[db] = self.repair_depth.get(db, 0) + len(ids)

    async def record_lookup(self, db: str, tbl: str,
                            rows: Sequence[tuple[int, int, int]]) -> None:
        """Record legacy ids in the lookup (best effort: the backfill fills it too)."""
        try:
            await self.side.call(lambda cur: control.lookup_put(cur, db, tbl, rows))
        except Exception as exc:
            log.info("migration: lookup write of %s.%s failed: %s", db, tbl, exc)

    def count(self, db: str, what: str, value: float, note: str) -> None:
        """A shadow comparison (value 1: mismatch) or a dual write's seconds."""
        if what == "dual_write":
            self.dual_write.observe(value)
            return
        self.shadow_reads[db] += 1
        if value:
            self.shadow_mismatches[db] += 1
            log.warning("migration: shadow read mismatch in %s: %s", db, note[:500])
