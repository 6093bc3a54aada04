"""Writes to migrated tables inside a client transaction (docs/migration.md, "Transactions").

In a dual phase the authoritative write runs on the session's own transaction connection, and
the ids it touched go, in that same transaction, to the outbox: ``dal_meta.migration_repair``
on the authoritative side's instance (`defer`). COMMIT makes the write and its pending mirror
durable together; ROLLBACK discards both. Right after the transaction ends (`end` for COMMIT
and ROLLBACK, `end_xa` for those of an XA transaction in mode xa, once every branch ended;
`ended` for any other end: an implicit commit, a lost connection) DAL copies
those ids' current state to the mirror side under the row lock and deletes the entries; a crash
in between leaves them to the repairer. Every write to a migrated table inside a transaction
also holds its database's write gate (`Gate.holders`) until then, so a phase switch waits for
the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dal import errors, xa
from dal.execute import leases
from dal.execute.cursor import ExecutionCursor
from dal.login import ok_packet
from dal.migration import control
from pool.connection import BackendError

if TYPE_CHECKING:
    from dal.ports import SessionPort

log = logging.getLogger("dal.migration")

# The primitive's copy of committed ids: (cursor, the statement that deletes their outbox
# entries, run in the copy's own transaction on the authoritative side before it commits)
Mirror = Callable[[Any, bytes], Awaitable[None]]


@dataclass(slots=True)
class Deferred:
    """One write's pending mirror: its outbox entries ``seqs`` (of ``ids``) on ``instance``."""

    instance: str
    seqs: range
    ids: tuple[int, ...]
    mirror: Mirror

    def done(self) -> bytes:
        """The delete of its entries: by primary key values, so that InnoDB locks those
        records only (a range would lock the gap where other transactions add theirs)."""
        seqs = ", ".join(str(s) for s in self.seqs)
        ids = ", ".join(str(i) for i in self.ids)
        return (f"DELETE FROM dal_meta.migration_repair WHERE seq IN ({seqs}) AND id IN "
                f"({ids})").encode()


@dataclass(slots=True)
class TxnWrites:
    """What one session's open transaction wrote to migrated tables."""

    dbs: set[str] = field(default_factory=set)
    deferred: list[Deferred] = field(default_factory=list)


def hold(session: SessionPort, db: str) -> None:
    """The session's transaction wrote to ``db``'s migrated tables (the gate holds it)."""
    if session.migration_txn is None:
        session.migration_txn = TxnWrites()
    session.migration_txn.dbs.add(db)


def outbox_insert(db: str, tbl: str, ids: Sequence[int], direction: str) -> bytes:
    """The outbox entries of ``ids``: rows of the repair log, written in the transaction."""
    values = ", ".join(f"('{db}', '{tbl}', {int(i)}, '{direction}', 'pending commit', 0, "
                       "NOW(6))" for i in ids)
    return (control.REPAIR_INSERT + values).encode()


async def defer(session: SessionPort, instance: str, db: str, tbl: str, ids: Sequence[int],
                direction: str, mirror: Mirror) -> None:
    """Write the outbox entries of ``ids`` in the session's transaction on ``instance`` and
    remember ``mirror`` for after its COMMIT."""
    if not ids:
        return
    result = await leases.run_in_session(session, instance,
                                         outbox_insert(db, tbl, ids, direction))
    first = result.ok.last_insert_id if result.ok else 0  # consecutive: one simple INSERT
    hold(session, db)
    session.migration_txn.deferred.append(  # type: ignore[union-attr]
        Deferred(instance, range(first, first + len(ids)), tuple(int(i) for i in ids), mirror))


async def settle(session: SessionPort, writes: TxnWrites, committed: bool) -> None:
    """After the transaction ended: copy each deferred mirror (``committed``) and delete its
    outbox entries in the same transaction, release the gates. A failed copy leaves the
    entries to the repairer."""
    migration = session.server.migration
    try:
        if committed:
            cursor = ExecutionCursor(session, None)  # type: ignore[arg-type]
            for item in writes.deferred:
                try:
                    await item.mirror(cursor, item.done())
                except Exception as exc:
                    log.warning("migration: mirror after COMMIT failed (%s); the repairer "
                                "copies it from the outbox", exc)
    finally:
        current = session.migration_txn  # a later transaction of the session (after `ended`)
        for db in writes.dbs:
            if current is None or db not in current.dbs:  # else that one releases it
                migration.gate(db).release(session.id)


def ended(session: SessionPort) -> None:
    """The session's transaction ended otherwise than by its COMMIT/ROLLBACK statement (an
    implicit commit, SET autocommit, a lost connection, the client gone): copy the current
    state of what it wrote (harmless if it rolled back) and release its gates."""
    writes = session.migration_txn
    if writes is None:
        return
    session.migration_txn = None
    session.server.background(settle(session, writes, True))


async def end(session: SessionPort, sql: bytes, commit: bool) -> None:
    """COMMIT or ROLLBACK (``sql``) of a transaction that wrote migrated tables: run it on the
    transaction's connection, mirror what it committed, then answer."""
    writes = session.migration_txn
    session.migration_txn = None
    conn = session.pinned
    failed = True
    try:
        if conn is None:  # nothing reached a backend: nothing to end there
            xa.clear_pending(session)
            session.status &= ~leases.IN_TRANS
            failed = False
        else:
            try:
                await leases.run_in_session(session, conn.instance, sql)
                failed = False
            except BackendError as exc:
                session.send_error(exc.to_err())
        if writes is not None:
            await settle(session, writes, commit and not failed)
        if not failed:
            session.send(ok_packet(session.reply_seq, session.status))
    except Exception as exc:  # never leave the client without an answer
        failed = True
        session.send_error(errors.err(errors.NOT_SUPPORTED, f"DAL: ending the transaction "
                                                            f"failed: {exc}"))
    session.finish_statement("transaction", failed)
    session.busy = False


async def end_xa(session: SessionPort, commit: bool) -> bool:
    """COMMIT or ROLLBACK of the session's XA transaction (mode xa) that wrote migrated
    tables: every branch ended (`xa.end`), then the mirror of what it committed, then the
    answer. True if it failed. The outbox entries of a commit left in doubt stay for the
    repairer."""
    writes = session.migration_txn
    session.migration_txn = None
    error = None
    committed = False
    try:
        try:
            error = await xa.end(session, commit, reply=False)
            committed = commit and error is None
        finally:  # the gates are released whatever happened
            if writes is not None:
                await settle(session, writes, committed)
    except Exception as exc:  # never leave the client without an answer
        error = errors.err(errors.NOT_SUPPORTED, f"DAL: ending the transaction failed: {exc}")
    if error is None:
        session.send(ok_packet(session.reply_seq, session.status))
    else:
        session.send_error(error)
    return error is not None
