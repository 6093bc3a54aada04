"""The repairer: re-copies rows whose mirror failed, by id, from the authoritative side.

Each entry of ``dal_meta.migration_repair`` names a table, an id and a direction. The row's
current state is read under its lock on the authoritative side (``SELECT ... FOR UPDATE`` in a
transaction there) and written to the other side (REPLACE, or DELETE when the row is gone);
then the entry is deleted. Copying the current state makes a repair idempotent and safe in any
order, and against the dual writes that follow (they take the same row lock). Blocking code:
the service runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pymysql

from config.model import Config
from dal.migration import control
from dal.migration.link import ControlLink
from router.genes import merchant_shard_of_gene, user_shard_of_gene

log = logging.getLogger("dal.migration")

BATCH = 100
T = TypeVar("T")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


NO_SUCH_TABLE = 1146


def _depth_if_created(cur: control.Cursor, db: str) -> int:
    try:
        return control.repair_depth(cur, db)
    except pymysql.err.ProgrammingError as exc:
        if exc.args[0] != NO_SUCH_TABLE:
            raise
        return 0


class Repairer:
    """Works through one database's repair log (blocking; one thread at a time)."""

    def __init__(self, config: Config, link: ControlLink) -> None:
        self.config = config
        self.link = link
        self._conns: dict[str, pymysql.connections.Connection] = {}
        self._lock = threading.Lock()  # one thread at a time on the connections

    def _conn(self, instance: str) -> pymysql.connections.Connection:
        conn = self._conns.get(instance)
        if conn is None or not conn.open:
            conn = self._conns[instance] = control.connect(self.config.instances[instance])
        return conn

    def close(self) -> None:
        """Close the connections (they reopen when needed)."""
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()

    def outbox_instances(self, db: str) -> list[str]:
        """The instances besides the control one whose ``dal_meta.migration_repair`` holds
        entries of ``db``: the outboxes of client transactions on a shard (dal/migration/txn.py)."""
        cfg = self.config.databases[db]
        control_name = control.control_instance_name(self.config)
        names = [cfg.migration.source_instance] if cfg.migration is not None else []
        for dim in cfg.dimensions.values():
            names += [place.instance for place in dim.placement]
        return [n for n in dict.fromkeys(names) if n != control_name]

    def ensure_outboxes(self, db: str) -> None:
        """Create the outbox table on every instance a transaction's write may use."""
        with self._lock:
            self._each_outbox(db, lambda cur: [cur.execute(stmt) for stmt in control.OUTBOX_DDL])

    def _each_outbox(self, db: str, work: Callable[[control.Cursor], Any]) -> list[Any]:
        return [self._on(instance, work) for instance in self.outbox_instances(db)]

    def outbox_depth(self, db: str) -> int:
        """The entries of ``db`` in the outboxes besides the control instance's (an instance
        whose outbox no DAL has created yet holds none)."""
        with self._lock:
            return sum(self._each_outbox(db, lambda cur: _depth_if_created(cur, db)))

    def _on(self, instance: str, work: Callable[[control.Cursor], T]) -> T:
        with self._conn(instance).cursor() as cur:
            return work(cur)

    def repair_some(self, db: str, max_legacy_id: int) -> int:
        """Repair up to `BATCH` entries of ``db`` per log (the control instance's and each
        outbox); how many were repaired."""
        with self._lock:
            return self._repair_all(db, max_legacy_id)

    def _repair_all(self, db: str, max_legacy_id: int) -> int:
        done = self._repair_log(db, max_legacy_id, self.link.run)
        for instance in self.outbox_instances(db):
            done += self._repair_log(db, max_legacy_id, partial(self._on, instance))
        if done:
            log.info("migration: repaired %d rows of %s", done, db)
        return done

    def _repair_log(self, db: str, max_legacy_id: int,
                    run: Callable[[Callable[[control.Cursor], Any]], Any]) -> int:
        entries = run(lambda cur: control.pending_repairs(cur, db, BATCH))
        done = 0
        for entry in entries:
            try:
                self.repair(db, entry.tbl, entry.id, entry.direction, max_legacy_id)
            except Exception as exc:
                self.close()
                run(lambda cur, e=entry, x=exc: control.fail_repair(cur, e.seq, str(x)))
                continue
            run(lambda cur, e=entry: control.finish_repair(cur, e.seq))
            done += 1
        return done

    def repair(self, db: str, tbl: str, row_id: int, direction: str, max_legacy_id: int) -> None:
        """Copy row ``row_id`` of ``tbl`` in ``direction`` (its current state, under lock)."""
        mig = self.config.databases[db].migration
        assert mig is not None
        if direction == control.TO_SHARDS:
            source = (mig.source_instance, mig.source_database)
        else:
            source = self._find_on_shards(db, tbl, row_id, max_legacy_id)
            if source is None:  # on no shard: the row is gone there
                self._write(mig.source_instance, mig.source_database, tbl, None, row_id)
                return
        conn = self._conn(source[0])
        conn.begin()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(f"SELECT * FROM {_q(source[1])}.{_q(tbl)} WHERE id = %s FOR UPDATE",
                            (row_id,))
                row = cur.fetchone()
            if direction == control.TO_LEGACY:
                self._write(mig.source_instance, mig.source_database, tbl, row, row_id)
            else:
                for instance, database in self._shards_of(db, tbl, row, row_id, max_legacy_id):
                    self._write(instance, database, tbl, row, row_id)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _write(self, instance: str, database: str, tbl: str, row: dict | None,
               row_id: int) -> None:
        with self._conn(instance).cursor() as cur:
            if row is None:
                cur.execute(f"DELETE FROM {_q(database)}.{_q(tbl)} WHERE id = %s", (row_id,))
                return
            names = ", ".join(_q(n) for n in row)
            marks = ", ".join(["%s"] * len(row))
            cur.execute(f"REPLACE INTO {_q(database)}.{_q(tbl)} ({names}) VALUES ({marks})",
                        tuple(row.values()))

    def _keys(self, db: str, tbl: str, row_id: int, max_legacy_id: int) -> dict[str, int] | None:
        """The shard of each dimension of a row not at hand: a legacy id's from the lookup,
        a gene's from the id itself; None when neither tells."""
        cfg = self.config.databases[db]
        if row_id <= max_legacy_id:
            found = self.link.run(lambda cur: control.lookup_get(cur, db, tbl, [row_id]))
            if row_id not in found:
                return None
            user, merchant = found[row_id]
            return {name: (user if i == 0 else merchant) % dim.shards
                    for i, (name, dim) in enumerate(self._dims(db))}
        out = {}
        for name, dim in cfg.dimensions.items():
            gene = user_shard_of_gene if name == cfg.authoritative else merchant_shard_of_gene
            out[name] = gene(row_id, dim.shards)
        return out

    def _dims(self, db: str) -> list[tuple[str, Any]]:
        """The dimensions a mirror writes: the authoritative one, and the others when the
        merchant copy is made directly."""
        cfg = self.config.databases[db]
        names = [cfg.authoritative, *(d for d in cfg.dimensions if d != cfg.authoritative)]
        if cfg.migration is None or cfg.migration.merchant_copy != "direct":
            names = names[:1]
        return [(name, cfg.dimensions[name]) for name in names]

    def _shards_of(self, db: str, tbl: str, row: dict | None, row_id: int,
                   max_legacy_id: int) -> list[tuple[str, str]]:
        """Where a row goes on the shards: by its keys; a gone row's by the lookup or its
        gene, else every shard (a delete by id touches nothing where it is not)."""
        out = []
        shards = None if row is not None else self._keys(db, tbl, row_id, max_legacy_id)
        for name, dim in self._dims(db):
            if row is not None:
                numbers = [int(row[dim.key]) % dim.shards]
            elif shards is not None:
                numbers = [shards[name]]
            else:
                numbers = list(range(dim.shards))
            out += [(self.config.shard_instance(db, name, n), dim.database(n)) for n in numbers]
        return out

    def _find_on_shards(self, db: str, tbl: str, row_id: int,
                        max_legacy_id: int) -> tuple[str, str] | None:
        """The user shard holding row ``row_id`` (the authoritative side of to_legacy)."""
        cfg = self.config.databases[db]
        dim = cfg.dimensions[cfg.authoritative]
        keys = self._keys(db, tbl, row_id, max_legacy_id)
        numbers = [keys[cfg.authoritative]] if keys else list(range(dim.shards))
        for n in numbers:
            instance = self.config.shard_instance(db, cfg.authoritative, n)
            with self._conn(instance).cursor() as cur:
                cur.execute(f"SELECT 1 FROM {_q(dim.database(n))}.{_q(tbl)} WHERE id = %s",
                            (row_id,))
                if cur.fetchone():
                    return instance, dim.database(n)
        return (self.config.shard_instance(db, cfg.authoritative, numbers[0]),
                dim.database(numbers[0])) if keys else None
