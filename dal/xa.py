"""Transaction mode `xa`: one XA branch per backend instance, two-phase commit.

A transaction opens a branch (``XA START``) on the first statement it sends to each backend
instance, and keeps that connection until it ends; one connection serves every shard database
of its instance. COMMIT with one branch is ``XA COMMIT ... ONE PHASE``; with several, every
branch is ended and prepared, the decision is fsynced to the decision log (`dal.xa_log`), then
each branch is committed and "done" is logged. A failed prepare rolls every branch back.
`dal.xa_recover` resolves branches left prepared by a crash.

The session calls in at a few places only (`begin`, `branch`, `end`, `forget`, `abandon`);
outside a transaction nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
import time
from typing import TYPE_CHECKING

from dal.execute.home import home_schema
from dal.login import ok_packet
from dal.timeouts import timed_command
from dal.wire.constants import Command, Status
from dal.wire.framing import frame
from dal.wire.messages import ERR
from dal.xa_log import DecisionLog
from pool.connection import BackendConnection, BackendError, decode_response
from pool.responses import decode_lazily
from pool.state import apply_state
from router.targets import AUTOCOMMIT_OFF

if TYPE_CHECKING:
    from config.model import Config
    from dal.ports import ServerPort, SessionPort

log = logging.getLogger("dal.xa")

# `SessionPort.txn_pending` when autocommit is off and no transaction is open: the next
# statement opens one (with XA START, not with the statement text, in this mode).
XA_PENDING = "XA START"
LOCK_WAIT_KEY = "innodb_lock_wait_timeout"  # set per branch from transactions.lock_wait_timeout
XA_LOST = "XA LOST"  # every branch broke: statements are refused until COMMIT/ROLLBACK
ROLLED_BACK = (1402, "XA100")  # ER_XA_RBROLLBACK: a prepare failed, every branch rolled back
IN_DOUBT = (1105, "HY000")     # commit decided, a branch not reached: recovery completes it
BRANCH_LOST = (1105, "HY000")  # a branch's connection broke before COMMIT
IN_TRANSACTION = (1179, "25000")  # ER_CANT_DO_THIS_DURING_AN_TRANSACTION
AUTOCOMMIT_REFUSAL = ("SET autocommit cannot change inside a transaction of mode 'xa' (an XA "
                      "branch is open on the backend); COMMIT or ROLLBACK first")
SAVEPOINTS = (b"SAVEPOINT", b"RELEASE", b"ROLLBACK")
_AUTOCOMMIT = int(Status.AUTOCOMMIT)
_SESSION_STATUS = int(Status.IN_TRANS | Status.AUTOCOMMIT | Status.IN_TRANS_READONLY)


def xid(gtrid: str, bqual: str) -> str:
    """The XID as SQL: hex literals, so no name ever needs quoting."""
    return f"X'{gtrid.encode().hex()}',X'{bqual.encode().hex()}'"


class Coordinator:
    """Per process: the decision log, the gtrid source and the outcome counters."""

    def __init__(self, server: ServerPort, config: Config) -> None:
        self.server = server
        self.prefix = config.transactions.xid_prefix + ":"
        self.log = DecisionLog(config.transactions.decision_log)
        # Unique across processes and restarts: process id, start time, random bits, counter.
        self._stem = (f"{self.prefix}{os.getpid():x}:{int(time.time()):x}:"
                      f"{secrets.token_hex(4)}:")
        self._next = itertools.count(1)
        # Test hook: seconds to wait between the logged decision and the first XA COMMIT.
        self.pause_after_decision = float(os.environ.get("DAL_XA_PAUSE_AFTER_DECISION", 0))

    def new_gtrid(self) -> str:
        return f"{self._stem}{next(self._next)}"

    def count(self, outcome: str) -> None:
        self.server.counters[("xa", outcome)] += 1


class XaTransaction:
    """One open transaction of a session: its gtrid and its branch per instance."""

    def __init__(self, gtrid: str) -> None:
        self.gtrid = gtrid
        self.branches: dict[str, BackendConnection] = {}
        self.lost: list[str] = []  # instances whose branch connection broke
        # A pin the session held before (e.g. a temporary table): kept after the end.
        self.saved_pin: tuple[str, BackendConnection] | None = None

    async def open(self, session: SessionPort, conn: BackendConnection) -> None:
        # a no-op unless begin() added the lock wait (or the connection is in another database)
        await apply_state(conn, home_schema(session, conn.instance), session.state)
        await conn.query(f"XA START {xid(self.gtrid, conn.instance)}")
        self.branches[conn.instance] = conn
        session.server.count_pin("transaction")


def next_pending(session: SessionPort) -> str | None:
    """What `txn_pending` becomes when no transaction is open: with autocommit off in mode
    xa, the next statement starts one."""
    if session.server.xa is None or session.xa is not None:
        return session.txn_pending
    if session.txn_pending not in (None, XA_PENDING):
        return session.txn_pending  # a BEGIN not yet sent
    return XA_PENDING if session.state.get("autocommit") == AUTOCOMMIT_OFF else None


def clear_pending(session: SessionPort) -> None:
    """The transaction ended (or never reached a backend): a BEGIN not yet sent is dropped,
    and `txn_pending` becomes what `next_pending` says."""
    session.txn_pending = None
    session.txn_pending = next_pending(session)


async def begin(session: SessionPort, conn: BackendConnection) -> None:
    """The transaction's first statement goes to ``conn``: open the first branch there."""
    coordinator = session.server.xa
    assert coordinator is not None
    if session.xa is not None:  # every branch was lost: nothing may run until the end
        session.txn_pending = XA_LOST
        raise BackendError(BRANCH_LOST[0], _lost_message(session.xa), BRANCH_LOST[1])
    txn = XaTransaction(coordinator.new_gtrid())
    _add_lock_wait(session)
    if session.pin_reason is not None and session.pinned is conn:
        txn.saved_pin = (session.pin_reason, conn)
    try:
        await txn.open(session, conn)
    except BackendError:
        _drop_lock_wait(session)
        raise
    session.xa = txn
    # Keeps every branch pinned whatever a reply's status says (a failed statement can clear
    # IN_TRANS): `_after_statement` never gives a branch back; `end` does.
    session.pin_reason = "xa"
    session.soft_pin = False


def _lock_wait_fragment(session: SessionPort) -> str | None:
    seconds = session.server.config.transactions.lock_wait_timeout
    return None if seconds is None else f"@@session.{LOCK_WAIT_KEY}={seconds}"


def _add_lock_wait(session: SessionPort) -> None:
    """transactions.lock_wait_timeout joins the session's replayed variables for the
    transaction (unless the client set its own), so every branch gets it with the rest."""
    fragment = _lock_wait_fragment(session)
    if fragment is not None and LOCK_WAIT_KEY not in session.state:
        session.state = {**session.state, LOCK_WAIT_KEY: fragment}


def _drop_lock_wait(session: SessionPort) -> None:
    """After the transaction: the next replay onto any connection puts the default back."""
    fragment = _lock_wait_fragment(session)
    if fragment is not None and session.state.get(LOCK_WAIT_KEY) == fragment:
        session.state = {k: v for k, v in session.state.items() if k != LOCK_WAIT_KEY}


async def branch(session: SessionPort, instance: str) -> BackendConnection:
    """The transaction's connection to ``instance``, opening a branch there if it has none.
    The session's variables are replayed before XA START (autocommit cannot change inside)."""
    txn = session.xa
    assert txn is not None
    conn = txn.branches.get(instance)
    if conn is not None:
        return conn
    if txn.lost:
        raise BackendError(BRANCH_LOST[0], _lost_message(txn), BRANCH_LOST[1])
    pool = session.server.pools[instance]
    conn = await pool.acquire(session.flavour)
    try:
        await apply_state(conn, home_schema(session, instance), session.state)
        await txn.open(session, conn)
    except BackendError:
        pool.release(conn, reusable=not conn.closed)
        raise
    return conn


def _lost_message(txn: XaTransaction) -> str:
    return (f"the transaction lost its connection to backend {', '.join(txn.lost)}; that "
            "branch was rolled back by the backend. ROLLBACK the transaction")


def forget(session: SessionPort, conn: BackendConnection) -> None:
    """``conn`` broke (the session gives it back as unusable): it is no longer a branch."""
    txn = session.xa
    if txn is None:
        return
    if txn.branches.get(conn.instance) is conn:
        del txn.branches[conn.instance]
        txn.lost.append(conn.instance)
    if txn.branches:  # the session stays on a live branch
        session.pin_reason = "xa"
        if session.pinned is None:
            session.pinned = next(iter(txn.branches.values()))
    else:  # no branch left: the next statement gets the error, not a pooled connection
        session.txn_pending = XA_LOST
        # Nothing to keep pinned: the connection a refused statement took from the pool goes
        # back to it (pinned as "xa", ROLLBACK would have dropped it unreleased).
        session.pin_reason = None


_LEADING_COMMENTS = re.compile(rb"(?:\s+|/\*.*?\*/|(?:--\s|#)[^\n]*\n?)*", re.S)


def is_commit(sql: bytes) -> bool:
    """COMMIT (True) or ROLLBACK (False), leading comments skipped."""
    return sql[_LEADING_COMMENTS.match(sql).end():][:6].upper() == b"COMMIT"  # type: ignore[union-attr]


def savepoint_refusal(sql: bytes) -> bool:
    """True for SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO (each would reach one branch)."""
    head = sql.lstrip()[:9].upper()
    return head.startswith(SAVEPOINTS) and not (
        head.startswith(b"ROLLBACK") and b" TO" not in sql.upper())


async def run_on_shards(session: SessionPort, jobs: list[tuple[str, bytes]]) -> list:
    """Run a scatter's statements (instance, sql) on the transaction's branches: one
    connection per instance, its statements pipelined (one after another under a statement
    timeout), instances concurrently.
    Returns a Result or an exception per job, in order."""
    await ensure_begun(session, jobs[0][0])
    by_instance: dict[str, list[int]] = {}
    for index, (instance, _) in enumerate(jobs):
        by_instance.setdefault(instance, []).append(index)
    outcomes: list = [None] * len(jobs)
    await asyncio.gather(*(_on_instance(session, instance, [(i, jobs[i][1]) for i in indexes],
                                        outcomes)
                           for instance, indexes in by_instance.items()))
    settle(session)
    return outcomes


def settle(session: SessionPort) -> None:
    """After statements on the branches: the session stays pinned to one of them, and its
    status flags are the transaction's."""
    txn = session.xa
    if txn is not None and txn.branches:
        last = next(iter(txn.branches.values()))
        session.pinned = session.pinned if session.pinned in txn.branches.values() else last
        session.status = last.status & _SESSION_STATUS


async def ensure_begun(session: SessionPort, instance: str) -> None:
    """Before a scatter on the branches: the transaction is open (its first branch on
    ``instance`` when this scatter is its first statement)."""
    if session.xa is None:
        await _begin_on(session, instance)
        settle(session)


async def _begin_on(session: SessionPort, instance: str) -> None:
    """Open the transaction's first branch on a pooled connection of ``instance``."""
    conn = await session.server.pools[instance].acquire(session.flavour)
    try:
        await apply_state(conn, None, session.state)
        session.txn_pending = None
        await begin(session, conn)
    except BackendError:
        session.server.pools[instance].release(conn, reusable=not conn.closed)
        raise


async def _on_instance(session: SessionPort, instance: str, jobs: list[tuple[int, bytes]],
                       outcomes: list) -> None:
    """One instance's share of a scatter on its branch: each job's Result or exception goes
    to ``outcomes[index]``."""
    try:
        conn = await branch(session, instance)
    except BackendError as exc:
        for i, _ in jobs:
            outcomes[i] = exc
        return
    packets = [frame(bytes((Command.QUERY,)) + sql, 0) for _, sql in jobs]
    if not session.server.statement_timeout:  # one round trip for the instance's shards
        try:
            responses = await conn.pipeline(packets)
        except BackendError as exc:  # the connection broke: no answer is known
            for i, _ in jobs:
                outcomes[i] = exc
            if conn.closed:
                drop_branch(session, conn)
            return
        for (i, _), raw in zip(jobs, responses, strict=True):
            try:
                outcomes[i] = decode_lazily(raw, conn.extended_metadata)
            except BackendError as exc:
                outcomes[i] = exc
        return
    for n, ((i, _), packet) in enumerate(zip(jobs, packets, strict=True)):
        try:  # one at a time, each under the statement timeout
            outcomes[i] = decode_response(await timed_command(session.server, conn, packet),
                                          conn.extended_metadata)
        except BackendError as exc:
            outcomes[i] = exc
            if conn.closed:
                drop_branch(session, conn)
                for j, _ in jobs[n + 1:]:
                    outcomes[j] = exc
                return


def drop_branch(session: SessionPort, conn: BackendConnection) -> None:
    """A branch connection broke: forgotten by the transaction, closed."""
    forget(session, conn)
    if session.pinned is conn:
        session.pinned = None
    session.server.pools[conn.instance].release(conn, reusable=False)


async def end(session: SessionPort, commit: bool, reply: bool = True) -> ERR | None:
    """COMMIT or ROLLBACK the session's XA transaction; sends OK or ERR when ``reply``.
    Every branch connection goes back to its pool. Returns the ERR, None on success."""
    txn = session.xa
    assert txn is not None
    session.xa = None
    return await _finish(session, txn, commit, reply)


async def _finish(session: SessionPort, txn: XaTransaction, commit: bool,
                  reply: bool) -> ERR | None:
    server = session.server
    coordinator = server.xa
    assert coordinator is not None
    session.pinned = None
    session.pin_reason = None
    session.soft_pin = False
    branches = dict(txn.branches)
    error: ERR | None = None
    try:
        if commit and txn.lost:
            await _rollback_all(branches, txn.gtrid)
            coordinator.count("failed")
            error = ERR(ROLLED_BACK[0], f"XA_RBROLLBACK: {_lost_message(txn)}; every branch "
                        "was rolled back", ROLLED_BACK[1])
        elif not commit:
            await _rollback_all(branches, txn.gtrid)
            coordinator.count("rolled_back")
        elif len(branches) == 1:
            error = await _one_phase(session, txn, next(iter(branches.values())))
        else:
            error = await _two_phase(session, txn, branches)
    finally:
        saved = txn.saved_pin
        for conn in branches.values():
            if saved is not None and conn is saved[1] and not conn.closed:
                session.pinned, session.pin_reason = conn, saved[0]
            else:
                server.pools[conn.instance].release(conn, reusable=not conn.closed
                                                    and not conn.busy)
        _drop_lock_wait(session)
        session.status = 0 if session.state.get("autocommit") == AUTOCOMMIT_OFF else _AUTOCOMMIT
        clear_pending(session)
    if reply:
        if error is None:
            session.send(ok_packet(session.reply_seq, session.status))
        else:
            session.send_error(error)
    return error


async def _one_phase(session: SessionPort, txn: XaTransaction,
                     conn: BackendConnection) -> ERR | None:
    coordinator = session.server.xa
    assert coordinator is not None
    x = xid(txn.gtrid, conn.instance)
    try:
        await conn.query(f"XA END {x}")
        await conn.query(f"XA COMMIT {x} ONE PHASE")
    except BackendError as exc:
        await _rollback_all({conn.instance: conn}, txn.gtrid)
        coordinator.count("failed")
        return ERR(exc.code, f"COMMIT failed on backend {conn.instance}: {exc.message}; the "
                   "transaction was rolled back", exc.sqlstate)
    coordinator.count("one_phase")
    return None


async def _two_phase(session: SessionPort, txn: XaTransaction,
                     branches: dict[str, BackendConnection]) -> ERR | None:
    coordinator = session.server.xa
    assert coordinator is not None

    async def prepare(conn: BackendConnection) -> BackendError | None:
        x = xid(txn.gtrid, conn.instance)
        try:
            await conn.query(f"XA END {x}")
            await conn.query(f"XA PREPARE {x}")
        except BackendError as exc:
            return exc
        return None

    outcomes = await asyncio.gather(*(prepare(c) for c in branches.values()))
    failed = [(name, exc) for name, exc in zip(branches, outcomes, strict=True) if exc]
    if failed:
        await _rollback_all(branches, txn.gtrid)
        coordinator.count("failed")
        name, exc = failed[0]
        return ERR(ROLLED_BACK[0], f"XA_RBROLLBACK: XA PREPARE failed on backend {name} "
                   f"({exc.code}: {exc.message}); the transaction was rolled back on every "
                   "backend", ROLLED_BACK[1])
    loop = asyncio.get_running_loop()
    names = [(name, name) for name in branches]
    await loop.run_in_executor(None, coordinator.log.decide_commit, txn.gtrid, names)
    if coordinator.pause_after_decision:
        await asyncio.sleep(coordinator.pause_after_decision)
    missing = []
    for name, conn in branches.items():
        try:
            await conn.query(f"XA COMMIT {xid(txn.gtrid, name)}")
        except BackendError as exc:
            if not await _commit_elsewhere(session, txn.gtrid, name):
                log.warning("XA COMMIT of %s on %s failed (%s); recovery completes it",
                            txn.gtrid, name, exc.message)
                missing.append(name)
    if missing:
        coordinator.count("in_doubt")
        return ERR(IN_DOUBT[0], f"the transaction was decided committed, but backend "
                   f"{', '.join(missing)} was not reached for XA COMMIT; its branch stays "
                   f"prepared (XID {txn.gtrid}) and `dal xa recover --apply` or the next DAL "
                   "start completes the commit", IN_DOUBT[1])
    coordinator.log.done(txn.gtrid)
    coordinator.count("committed")
    return None


async def _commit_elsewhere(session: SessionPort, gtrid: str, instance: str) -> bool:
    """Commit a prepared branch from a fresh connection (its own broke after the decision:
    MariaDB keeps prepared branches across disconnects)."""
    pool = session.server.pools[instance]
    try:
        conn = await pool.acquire()
    except BackendError:
        return False
    try:
        await conn.query(f"XA COMMIT {xid(gtrid, instance)}")
    except BackendError:
        pool.release(conn, reusable=not conn.closed)
        return False
    pool.release(conn)
    log.warning("XA COMMIT of %s on %s: its connection broke after the decision; committed "
                "from another connection", gtrid, instance)
    return True


async def _rollback_all(branches: dict[str, BackendConnection], gtrid: str) -> None:
    """XA END (when still active) and XA ROLLBACK on every branch; errors are ignored, and a
    connection whose rollback failed is closed (the backend then rolls an active branch back,
    and recovery a prepared one)."""

    async def rollback(conn: BackendConnection) -> None:
        if conn.closed:
            return
        x = xid(gtrid, conn.instance)
        with contextlib.suppress(BackendError):  # already ended, or rolled back by the backend
            await conn.query(f"XA END {x}")
        try:
            await conn.query(f"XA ROLLBACK {x}")
        except BackendError as exc:
            if exc.code != 1397:  # XAER_NOTA: nothing left to roll back
                conn.abort()

    await asyncio.gather(*(rollback(c) for c in branches.values() if not c.busy))


def abandon(session: SessionPort) -> None:
    """The client went away (or reset its session) mid-transaction: roll back in the
    background."""
    txn = session.xa
    if txn is None:
        return
    session.xa = None  # taken now: a second call finds nothing
    session.server.background(_finish(session, txn, commit=False, reply=False))
