"""The writing half of `dal sync`: row changes become idempotent statements on the copy shards,
applied in one transaction per target instance together with the source's checkpoint.

Each target instance keeps, in ``dal_meta.sync_checkpoint``, the source position up to which it
holds every change (committed in the same transaction as those changes). A restart reads the
source from the smallest of these positions and skips, per target, what that target already
holds: every change reaches every target exactly once, even after SIGKILL between the commits
of two targets. The statements are idempotent besides (REPLACE of the full after-image, DELETE
by primary key), so a replay from an older position ends in the same state.

The rows of an XA transaction prepared but not yet decided at the checkpointed position are
saved beside it (``dal_meta.sync_xa``, same transaction): a restart holds them again, and
applies them at the XA COMMIT that may come much later in the binlog (tools/sync_xa.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pymysql

from config.model import Instance
from tools.sync_xa import Prepared

log = logging.getLogger("dal.sync")

Position = tuple[str, int]  # (binlog file, offset after a transaction)

META_DDL = (
    "CREATE DATABASE IF NOT EXISTS dal_meta",
    "CREATE TABLE IF NOT EXISTS dal_meta.sync_checkpoint ("
    " source VARCHAR(64) NOT NULL PRIMARY KEY,"
    " log_file VARCHAR(255) NOT NULL,"
    " log_pos BIGINT UNSIGNED NOT NULL,"
    " updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    # One row change per row of a prepared, undecided XA transaction whose XA_PREPARE event the
    # checkpoint of the same source has passed (tools/sync_xa.py encodes the change).
    "CREATE TABLE IF NOT EXISTS dal_meta.sync_xa ("
    " source VARCHAR(64) NOT NULL,"
    " xid VARCHAR(300) CHARACTER SET ascii NOT NULL,"
    " seq INT UNSIGNED NOT NULL,"
    " log_file VARCHAR(255) NOT NULL,"
    " log_pos BIGINT UNSIGNED NOT NULL,"
    " change_json LONGTEXT NOT NULL,"
    " PRIMARY KEY (source, xid, seq)) ENGINE=InnoDB",
)
RETRY_LOCK = {1205, 1213}                  # lock wait timeout, deadlock
RETRY_CONNECTION = {2003, 2006, 2013, 2055}  # cannot connect, gone away, lost
RETRY_SCHEMA = {1054, 1136, 1146}          # the copy's schema is behind the source's: wait
ROWS_PER_STATEMENT = 500


@dataclass(frozen=True)
class Upsert:
    """The full after-image of a row, for one copy shard."""

    instance: str
    database: str
    table: str
    key: tuple
    columns: tuple[str, ...]
    values: tuple


@dataclass(frozen=True)
class Delete:
    """A row removed from one copy shard, by primary key."""

    instance: str
    database: str
    table: str
    key: tuple
    key_columns: tuple[str, ...]


@dataclass(frozen=True)
class DeleteWhere:
    """Rows removed from one copy shard by a condition (a TRUNCATE of a source shard)."""

    instance: str
    database: str
    table: str
    where: str


Op = Upsert | Delete | DeleteWhere


def collapse(ops: Iterable[Op]) -> list[Op]:
    """Only the last operation on each row counts; DeleteWhere ops keep their place first.
    Callers never mix DeleteWhere with row ops of a later transaction (DDL is a barrier)."""
    last: dict[tuple, Op] = {}
    bulk: list[Op] = []
    for op in ops:
        if isinstance(op, DeleteWhere):
            bulk.append(op)
        else:
            last[(op.instance, op.database, op.table, op.key)] = op
    return bulk + list(last.values())


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def statements(conn: pymysql.connections.Connection, ops: list[Op]) -> list[str]:
    """Batched SQL for one target's ops: multi-row DELETE ... IN and REPLACE ... VALUES."""
    out: list[str] = []
    deletes: dict[tuple, list[tuple]] = {}
    upserts: dict[tuple, list[tuple]] = {}
    for op in ops:
        if isinstance(op, DeleteWhere):
            out.append(f"DELETE FROM {_q(op.database)}.{_q(op.table)} WHERE {op.where}")
        elif isinstance(op, Delete):
            deletes.setdefault((op.database, op.table, op.key_columns), []).append(op.key)
        else:
            upserts.setdefault((op.database, op.table, op.columns), []).append(op.values)
    for (db, table, cols), keys in deletes.items():
        target = ", ".join(_q(c) for c in cols)
        for i in range(0, len(keys), ROWS_PER_STATEMENT):
            part = keys[i:i + ROWS_PER_STATEMENT]
            if len(cols) == 1:
                values = ", ".join(conn.escape(k[0]) for k in part)
                out.append(f"DELETE FROM {_q(db)}.{_q(table)} WHERE {target} IN ({values})")
            else:
                values = ", ".join("(" + ", ".join(conn.escape(v) for v in k) + ")"
                                   for k in part)
                out.append(f"DELETE FROM {_q(db)}.{_q(table)} WHERE ({target}) IN ({values})")
    for (db, table, cols), rows in upserts.items():
        names = ", ".join(_q(c) for c in cols)
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            values = ", ".join("(" + ", ".join(conn.escape(v) for v in row) + ")"
                               for row in rows[i:i + ROWS_PER_STATEMENT])
            out.append(f"REPLACE INTO {_q(db)}.{_q(table)} ({names}) VALUES {values}")
    return out


class Target:
    """One connection to a target instance, reconnected on demand."""

    def __init__(self, name: str, instance: Instance) -> None:
        self.name = name
        self.instance = instance
        self.conn: pymysql.connections.Connection | None = None

    def connection(self) -> pymysql.connections.Connection:
        if self.conn is None or not self.conn.open:
            i = self.instance
            self.conn = pymysql.connect(host=i.host, port=i.port, user=i.user,
                                        password=i.password, autocommit=True,
                                        connect_timeout=5, read_timeout=60, write_timeout=60)
            with self.conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None


class Applier:
    """Applies batches of one source's changes to every target, with that source's checkpoint."""

    def __init__(self, source: str, targets: dict[str, Instance]) -> None:
        self.source = source
        self.targets = {name: Target(name, inst) for name, inst in targets.items()}
        self.saved: dict[str, Position | None] = {}
        # Per target: the XIDs whose rows it holds in dal_meta.sync_xa, and their prepare position.
        self.held: dict[str, dict[str, Position]] = {name: {} for name in targets}

    def prepare(self) -> dict[str, Position | None]:
        """Create dal_meta where missing; read this source's checkpoint on every target."""
        for name, target in self.targets.items():
            def read(conn: pymysql.connections.Connection) -> Position | None:
                with conn.cursor() as cur:
                    for ddl in META_DDL:
                        cur.execute(ddl)
                    cur.execute("SELECT log_file, log_pos FROM dal_meta.sync_checkpoint "
                                "WHERE source = %s", (self.source,))
                    row = cur.fetchone()
                return (row[0], int(row[1])) if row else None
            self.saved[name] = self._retry(target, read)
        return dict(self.saved)

    def held_xa(self) -> dict[str, tuple[Position, list[str]]]:
        """The undecided XA transactions saved on the targets: XID -> (prepare position, row
        changes as JSON). Each target saved those open at its own checkpoint; the reader
        starts at the smallest checkpoint, so where two targets saved one XID differently (a
        reused XID), the earlier prepare is the one still to be decided there."""
        out: dict[str, tuple[Position, list[str]]] = {}
        for name, target in self.targets.items():
            def read(conn: pymysql.connections.Connection) -> list[tuple]:
                with conn.cursor() as cur:
                    cur.execute("SELECT xid, log_file, log_pos, change_json FROM dal_meta.sync_xa "
                                "WHERE source = %s ORDER BY xid, seq", (self.source,))
                    return list(cur.fetchall())
            mine: dict[str, tuple[Position, list[str]]] = {}
            for xid, log_file, log_pos, text in self._retry(target, read):
                mine.setdefault(xid, ((log_file, int(log_pos)), []))[1].append(text)
            self.held[name] = {xid: end for xid, (end, _) in mine.items()}
            for xid, (end, rows) in mine.items():
                if xid not in out or end < out[xid][0]:
                    out[xid] = (end, rows)
        return out

    def apply(self, ops_by_target: dict[str, list[Op]], position: Position,
              checkpoint_all: bool, prepared: Mapping[str, Prepared] | None = None) -> int:
        """Apply each target's ops and checkpoint ``position`` there, one transaction each,
        together with the rows of the ``prepared`` XA transactions (undecided, by XID) that
        precede ``position``. Targets without ops are checkpointed only when
        ``checkpoint_all``. Returns rows sent."""
        sent = 0
        held = {xid: p for xid, p in (prepared or {}).items() if p.end <= position}
        for name, target in self.targets.items():
            ops = ops_by_target.get(name, [])
            if not ops and not checkpoint_all:
                continue
            saved = self.saved.get(name)
            if saved is not None and saved >= position:
                continue
            ops = collapse(ops)

            def write(conn: pymysql.connections.Connection, ops: list[Op] = ops,
                      name: str = name) -> None:
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    try:
                        for sql in statements(conn, ops):
                            cur.execute(sql)
                        for sql, args in self._held_statements(name, held):
                            cur.execute(sql, args)
                        cur.execute(
                            "INSERT INTO dal_meta.sync_checkpoint (source, log_file, log_pos, "
                            "updated_at) VALUES (%s, %s, %s, NOW(6)) ON DUPLICATE KEY UPDATE "
                            "log_file = VALUES(log_file), log_pos = VALUES(log_pos), "
                            "updated_at = VALUES(updated_at)",
                            (self.source, position[0], position[1]))
                        cur.execute("COMMIT")
                    except BaseException:
                        if conn.open:
                            with contextlib.suppress(pymysql.Error):
                                cur.execute("ROLLBACK")
                        raise
            self._retry(target, write)
            self.saved[name] = position
            self.held[name] = {xid: p.end for xid, p in held.items()}
            sent += len(ops)
        return sent

    def _held_statements(self, name: str, held: Mapping[str, Prepared]
                         ) -> Iterable[tuple[str, tuple]]:
        """What makes ``name``'s dal_meta.sync_xa hold exactly ``held``: deletes of the XIDs
        decided since, inserts of the XIDs prepared since."""
        had = self.held[name]
        for xid, end in had.items():
            if xid not in held or held[xid].end != end:
                yield ("DELETE FROM dal_meta.sync_xa WHERE source = %s AND xid = %s",
                       (self.source, xid))
        for xid, prepared in held.items():
            if had.get(xid) == prepared.end:
                continue
            rows = prepared.rows()
            for first in range(0, len(rows), ROWS_PER_STATEMENT):
                part = rows[first:first + ROWS_PER_STATEMENT]
                yield ("INSERT INTO dal_meta.sync_xa (source, xid, seq, log_file, log_pos, "
                       "change_json) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(part)),
                       tuple(v for seq, text in enumerate(part, first)
                             for v in (self.source, xid, seq, *prepared.end, text)))

    def reset(self) -> None:
        """Forget this source's checkpoint on every target (`dal sync --reset`)."""
        for target in self.targets.values():
            def delete(conn: pymysql.connections.Connection) -> None:
                with conn.cursor() as cur:
                    for ddl in META_DDL:
                        cur.execute(ddl)
                    cur.execute("DELETE FROM dal_meta.sync_checkpoint WHERE source = %s",
                                (self.source,))
                    cur.execute("DELETE FROM dal_meta.sync_xa WHERE source = %s", (self.source,))
            self._retry(target, delete)

    def _retry(self, target: Target, action):
        """Run ``action(conn)``, retrying what a retry can fix; other errors propagate."""
        delay = 0.2
        while True:
            try:
                return action(target.connection())
            except pymysql.err.MySQLError as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
                if code in RETRY_LOCK:
                    log.info("sync %s -> %s: %s; retrying", self.source, target.name, exc)
                elif code in RETRY_CONNECTION:
                    log.warning("sync %s -> %s: connection lost (%s); reconnecting",
                                self.source, target.name, exc)
                    target.drop()
                elif code in RETRY_SCHEMA:
                    log.warning("sync %s -> %s: the copy's schema differs from the source's "
                                "(%s); waiting for the same DDL on the copy shards "
                                "(`dal schema apply` or the DBA)", self.source, target.name, exc)
                    delay = 2.0
                else:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
