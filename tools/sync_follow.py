"""The reading half of `dal sync`: one source instance's row binlog, cut into transactions,
turned into copy-shard operations and handed to the applier in batches.

A reader thread follows the binlog (mysql-replication) and queues complete transactions with
the position just after them; the follower thread takes up to ``batch`` of them at a time,
routes every row image (tools/sync_route.py) and applies the batch (tools/sync_apply.py).
A DDL statement is a batch of its own: an ALTER only changes the table metadata the next
TABLE_MAP events carry (reloaded, nothing to do), a TRUNCATE of a source shard deletes that
shard's rows from every copy shard.

An XA transaction is applied at its decision, not at its prepare (tools/sync_xa.py): the
reader queues the prepared rows under their XID, the follower thread holds them until the
XA COMMIT (applied there) or XA ROLLBACK (dropped), and every checkpoint written past the
prepare saves them with it, so that a restart holds them again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, field

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import QueryEvent, XAPrepareEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from config.model import Instance
from tools.sync_apply import Applier, Delete, DeleteWhere, Op, Position, Upsert
from tools.sync_route import Routes, SourceTable
from tools.sync_xa import Prepared, PreparedSet, parse_xa, xa_id

log = logging.getLogger("dal.sync")

DDL = re.compile(r"(?is)^\s*(?:/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b")
TRUNCATE = re.compile(r"(?is)^\s*TRUNCATE\s+(?:TABLE\s+)?(`?)(\w+)\1(?:\.(`?)(\w+)\3)?")
IDLE_CHECKPOINT = 5.0  # seconds between checkpoints while only other schemas' events pass


@dataclass
class Change:
    """One row image pair of a copied table: ``before`` None for an insert, ``after`` None for
    a delete."""

    schema: str
    table: str
    key_columns: tuple[str, ...]
    before: dict | None
    after: dict | None


@dataclass
class Txn:
    """A committed source transaction: its row changes (or DDL) and the position after it.
    With ``xa`` (action, XID): an XA transaction prepared (``changes`` held, not applied),
    committed (its held changes and ``changes`` applied) or rolled back (held ones dropped)."""

    end: Position
    timestamp: int
    changes: list[Change] = field(default_factory=list)
    ddl: tuple[str, str] | None = None  # (default schema, statement)
    xa: tuple[str, str] | None = None   # ("prepare" | "commit" | "rollback", XID)


def _key(columns: tuple[str, ...], row: dict) -> tuple:
    return tuple(row[c] for c in columns)


def route(routes: Routes, change: Change) -> list[Op]:
    """The copy-shard operations of one row change."""
    table = routes.table(change.schema, change.table)
    if table is None:
        return []
    ops: list[Op] = []
    for copy in table.copies:
        old = new = None
        if change.before is not None:
            shard = copy.shard(change.before)
            old = (copy.placement[shard], copy.database(shard),
                   _key(change.key_columns, change.before))
        if change.after is not None:
            shard = copy.shard(change.after)
            new = (copy.placement[shard], copy.database(shard),
                   _key(change.key_columns, change.after))
        if old is not None and old != new:
            ops.append(Delete(old[0], old[1], change.table, old[2], change.key_columns))
        if new is not None:
            row = change.after
            assert row is not None
            ops.append(Upsert(new[0], new[1], change.table, new[2], tuple(row),
                              tuple(row.values())))
    return ops


def truncate_ops(routes: Routes, schema: str, statement: str) -> list[Op]:
    """A TRUNCATE of a source shard table: delete that shard's rows from every copy shard."""
    match = TRUNCATE.match(statement)
    if not match:
        return []
    db, name = (match.group(2), match.group(4)) if match.group(4) else (schema, match.group(2))
    table: SourceTable | None = routes.table(db, name)
    if table is None:
        return []
    where = table.source_shard_filter(routes.shard_of_schema(db))
    return [DeleteWhere(copy.placement[s], copy.database(s), name, where)
            for copy in table.copies for s in range(copy.shards)]


class Follower:
    """Follows one source instance until ``stop`` is set. Counters feed the status and metrics."""

    def __init__(self, name: str, instance: Instance, routes: Routes,
                 targets: dict[str, Instance], server_id: int, batch: int) -> None:
        self.name = name
        self.instance = instance
        self.routes = routes
        self.schemas = routes.sources().get(name, [])
        self.server_id = server_id
        self.batch = batch
        self.applier = Applier(name, targets)
        self.queue: queue.Queue[Txn] = queue.Queue(maxsize=max(1000, batch * 4))
        self.stop = threading.Event()
        self.read_pos: Position | None = None     # after the last transaction queued
        self.applied_pos: Position | None = None  # after the last transaction applied
        self.events_read = 0       # row images of copied tables read (whole transactions)
        self.events_applied = 0
        self.events_dropped = 0    # rows of rolled-back XA transactions (read, never applied)
        self.txns_applied = 0
        self.prepared = PreparedSet()  # XA transactions prepared, not decided (follower thread)
        self.inflight_ts: int | None = None
        self.error: str | None = None
        self.restarts = 0
        self._status_conn: pymysql.connections.Connection | None = None  # for bytes_behind

    # -- start position -------------------------------------------------------------------
    def start_position(self, reset: bool, from_beginning: bool) -> Position:
        if reset:
            self.applier.reset()
        saved = self.applier.prepare()
        self.events_read += self.prepared.load(self.applier.held_xa(), Change)
        known = [p for p in saved.values() if p is not None]
        if known:
            return min(known)
        with self._ctl() as conn, conn.cursor() as cur:
            if from_beginning:
                cur.execute("SHOW BINARY LOGS")
                return (cur.fetchone()[0], 4)
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
        if row is None:
            raise RuntimeError(f"instance {self.name} has no binary log: start it with log-bin "
                               "and binlog_format=ROW (see tools/localdb.py)")
        return (row[0], int(row[1]))

    def _ctl(self) -> pymysql.connections.Connection:
        i = self.instance
        return pymysql.connect(host=i.host, port=i.port, user=i.user, password=i.password,
                               connect_timeout=5, read_timeout=30)

    def bytes_behind(self) -> int | None:
        """Binlog bytes on the source after the last applied transaction."""
        pos = self.applied_pos
        if pos is None:
            return None
        try:
            if self._status_conn is None or not self._status_conn.open:
                self._status_conn = self._ctl()
            with self._status_conn.cursor() as cur:
                cur.execute("SHOW BINARY LOGS")
                logs = [(r[0], int(r[1])) for r in cur.fetchall()]
        except pymysql.Error:
            self._status_conn = None
            raise
        behind = 0
        for name, size in logs:
            if name == pos[0]:
                behind += max(size - pos[1], 0)
            elif name > pos[0]:
                behind += size
        return behind

    # -- reader ------------------------------------------------------------------------------
    def read(self, start: Position) -> None:
        """Reader thread: queue transactions from ``start`` on; reconnect after errors."""
        self.read_pos = start
        while not self.stop.is_set():
            stream = None
            try:
                stream = self._stream(self.read_pos)
                self._read_stream(stream)
            except Exception as exc:
                self.restarts += 1
                self.error = f"reading {self.name}: {exc}"
                log.warning("sync %s: binlog read failed (%s); reconnecting from %s:%s",
                            self.name, exc, *self.read_pos)
                time.sleep(1.0)
            finally:
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    def _stream(self, pos: Position) -> BinLogStreamReader:
        i = self.instance
        return BinLogStreamReader(
            connection_settings={"host": i.host, "port": i.port, "user": i.user,
                                 "passwd": i.password, "read_timeout": 30},
            server_id=self.server_id, resume_stream=True, blocking=True,
            log_file=pos[0], log_pos=pos[1], slave_heartbeat=5,
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent,
                         XAPrepareEvent],
            only_schemas=self.schemas, enable_logging=False)

    def _read_stream(self, stream: BinLogStreamReader) -> None:
        pending: list[Change] = []
        for event in stream:
            if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                pending.extend(self._row_changes(event))
                continue
            end = (stream.log_file, stream.log_pos)
            if isinstance(event, XAPrepareEvent):
                xid = xa_id(event.xid_format_id, event.xid_gtrid, event.xid_bqual)
                action = "commit" if event.one_phase else "prepare"
                self._put(Txn(end, event.timestamp, pending, None, (action, xid)))
                pending = []
                continue
            if isinstance(event, QueryEvent):
                taken = self._query_event(event, end, pending)
                if taken is not None:  # None: within the group, the rows go on
                    pending = [] if taken else pending
                if taken is None or taken:
                    continue
            self._put(Txn(end, event.timestamp, pending))
            pending = []
            if self.stop.is_set():
                return

    def _row_changes(self, event: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent,
                     ) -> list[Change]:
        """The changes of one rows event of a routed table (none for other tables)."""
        if self.routes.table(event.schema, event.table) is None:
            return []
        pk = event.primary_key
        key = tuple(pk) if isinstance(pk, tuple | list) else (pk,)
        if not pk:
            raise RuntimeError(f"{event.schema}.{event.table} has no primary key in the "
                               "binlog metadata (binlog_row_metadata=FULL needed)")
        if isinstance(event, WriteRowsEvent):
            return [Change(event.schema, event.table, key, None, row["values"])
                    for row in event.rows]
        if isinstance(event, DeleteRowsEvent):
            return [Change(event.schema, event.table, key, row["values"], None)
                    for row in event.rows]
        return [Change(event.schema, event.table, key, row["before_values"],
                       row["after_values"]) for row in event.rows]

    def _query_event(self, event: QueryEvent, end: tuple[str, int],
                     pending: list[Change]) -> bool | None:
        """A statement event: None when it is inside a group (BEGIN, XA START/END/PREPARE),
        True when it ended the group itself (XA COMMIT/ROLLBACK, DDL: ``pending`` was put),
        False when it ends the group as a commit does."""
        query = event.query if isinstance(event.query, str) else event.query.decode()
        head = query.lstrip()[:8].upper()
        if head.startswith("BEGIN"):
            return None
        if head.startswith("XA"):
            xa = parse_xa(query)
            if xa is None or xa[0] not in ("commit", "rollback"):
                return None if xa is not None else False
            if xa[1] is None:
                raise RuntimeError(f"cannot read the XID of {query[:200]!r} at "
                                   f"{end[0]}:{end[1]}")
            # Its own group, or the end of one (ONE PHASE): rows before it belong to it; a
            # rollback drops them with the held ones.
            self._put(Txn(end, event.timestamp, pending if xa[0] == "commit" else [], None,
                          (xa[0], xa[1])))
            return True
        if not head.startswith("COMMIT") and DDL.match(query):
            schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
            self._put(Txn(end, event.timestamp, pending, None))
            self._put(Txn(end, event.timestamp, [], (schema, query)))
            return True
        return False

    def _put(self, txn: Txn) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(txn, timeout=0.5)
                self.read_pos = txn.end
                self.events_read += len(txn.changes)  # counted whole: a reconnect drops partials
                return
            except queue.Full:
                continue

    # -- applier -----------------------------------------------------------------------------
    def run(self) -> None:
        """Follower thread: take batches from the queue and apply them until stopped."""
        saved = dict(self.applier.saved)
        last_checkpoint = time.monotonic()
        while not self.stop.is_set():
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                first = None
            batch: list[Txn] = [] if first is None else [first]
            if first is not None and first.ddl is None:
                while len(batch) < self.batch:
                    try:
                        txn = self.queue.queue[0] if self.queue.qsize() else None
                    except IndexError:
                        txn = None
                    if txn is None or txn.ddl is not None:
                        break
                    batch.append(self.queue.get_nowait())
            if not batch:
                if (self.applied_pos is not None and time.monotonic() - last_checkpoint >
                        IDLE_CHECKPOINT and any(p != self.applied_pos
                                                for p in self.applier.saved.values())):
                    self.applier.apply({}, self.applied_pos, checkpoint_all=True,
                                       prepared=self.prepared.held)
                    last_checkpoint = time.monotonic()
                continue
            self.inflight_ts = batch[0].timestamp
            ops, rows = self._ops(batch, saved)
            end = batch[-1].end
            due = time.monotonic() - last_checkpoint > IDLE_CHECKPOINT or batch[-1].ddl
            self.applier.apply(ops, end, checkpoint_all=bool(rows) or bool(due),
                               prepared=self.prepared.held)
            if rows or due:
                last_checkpoint = time.monotonic()
            self.applied_pos = end
            self.events_applied += rows
            self.txns_applied += len(batch)
            self.inflight_ts = None

    def _ops(self, batch: list[Txn], saved: dict[str, Position | None]
             ) -> tuple[dict[str, list[Op]], int]:
        """Operations per target; a target skips transactions its checkpoint already holds.
        XA transactions are held at their prepare and routed at their commit."""
        out: dict[str, list[Op]] = {}
        rows = 0
        for txn in batch:
            changes = txn.changes if txn.xa is None else self._decided(txn)
            if txn.ddl is not None:
                schema, statement = txn.ddl
                touches = schema in self.routes.schemas or any(
                    s in statement for s in self.schemas)
                log.log(logging.INFO if touches else logging.DEBUG,
                        "sync %s: DDL at %s:%s: %s (table metadata reloads from the next "
                        "TABLE_MAP)", self.name, *txn.end, " ".join(statement.split())[:200])
                ops: list[Op] = truncate_ops(self.routes, schema, statement)
            else:
                ops = [op for change in changes for op in route(self.routes, change)]
            rows += len(changes)
            for op in ops:
                done = saved.get(op.instance)
                if done is None or txn.end > done:
                    out.setdefault(op.instance, []).append(op)
        return out, rows

    def _decided(self, txn: Txn) -> list[Change]:
        """The changes an XA event applies now: none at a prepare (held until the decision),
        the held ones and its own at a commit, none at a rollback (the held ones dropped)."""
        assert txn.xa is not None
        action, xid = txn.xa
        if action == "prepare":
            if txn.changes:
                old = self.prepared.add(xid, Prepared(txn.end, txn.changes))
                self.events_dropped += len(old.changes) if old else 0
            return []
        held = self.prepared.resolve(xid)
        if held is None:
            return txn.changes
        log.debug("sync %s: XA %s %s at %s:%s (%d rows prepared at %s:%s)", self.name, xid,
                  action, *txn.end, len(held.changes), *held.end)
        if action == "rollback":
            self.events_dropped += len(held.changes)
            return []
        return held.changes + txn.changes

    def lag_seconds(self) -> float:
        """Seconds since the oldest transaction read but not yet applied (0 when none)."""
        oldest = self.inflight_ts
        if oldest is None:
            with self.queue.mutex:
                oldest = self.queue.queue[0].timestamp if self.queue.queue else None
        return max(time.time() - oldest, 0.0) if oldest is not None else 0.0
