"""Backend connections for a session's statements: pins, the deferred BEGIN, giving back.

Outside a transaction a statement borrows a pooled connection and gives it back with its
answer. A connection stays pinned to the session while the session holds state a pooled one
cannot replay (REFERENCE.md, section 1): an open transaction, a pin reason the plan names, or
(softly, for one statement) the diagnostics SHOW WARNINGS reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal import errors, lost, timeouts, xa
from dal.execute.home import home_schema
from dal.wire.constants import Status
from dal.wire.framing import frame
from pool.connection import BackendConnection, BackendError, Result, decode_response
from pool.state import apply_state

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from pool.pool import Pool
    from router.plan import Plan

# Plain ints: IntFlag arithmetic is slow Python code, and this runs per statement.
# NO_BACKSLASH_ESCAPES follows the session's sql_mode (replayed on every backend connection
# it uses): drivers escape string parameters by it, so DAL's own OK/EOF packets carry it too.
SESSION_STATUS = int(Status.IN_TRANS | Status.AUTOCOMMIT | Status.IN_TRANS_READONLY
                     | Status.NO_BACKSLASH_ESCAPES)
IN_TRANS = int(Status.IN_TRANS)
AUTOCOMMIT = int(Status.AUTOCOMMIT)
TXN_BITS = IN_TRANS | AUTOCOMMIT  # anything but AUTOCOMMIT alone: inside a transaction


def after_statement(session: SessionPort, conn: BackendConnection, status: int,
                    diagnostics: bool, plan: Plan | None) -> None:
    """Keep the connection pinned to this session, or give it back to its pool.

    ``diagnostics``: the statement left warnings or an error, which only this connection
    can show; it stays with the session for one more statement, for SHOW WARNINGS. Not when
    other sessions' statements were pipelined behind it (``conn.busy``): they replaced them;
    nor when the pool has no other connection to give (sessions that leave warnings and go
    idle would hold them all: SHOW WARNINGS then answers empty).
    """
    session.status = status & SESSION_STATUS
    if session.migration_txn is not None and not status & IN_TRANS and session.xa is None:
        session.server.migration.transaction_ended(session)  # its mirror follows (mode xa:
        # the transaction ends by `xa.end` only, whatever a branch's reply says)
    if plan is not None and plan.pin is not None and session.pin_reason is None:
        session.pin_reason = plan.pin
        session.server.count_pin(plan.pin)
    if status & IN_TRANS or session.pin_reason is not None or (
            diagnostics and not conn.busy and _spare(session.server.pools[conn.instance])):
        conn.shared = False  # nobody joins a pinned connection
        if session.pinned is not conn and session.pin_reason is None:
            session.server.count_pin("transaction" if status & IN_TRANS else "diagnostics")
        session.pinned = conn
        session.soft_pin = not (status & IN_TRANS or session.pin_reason is not None)
        if not status & IN_TRANS:
            session.txn_shard = None
        return
    session.pinned = None
    session.server.pools[conn.instance].release(conn)


def _spare(pool: Pool) -> bool:
    """The pool has another connection for the next session: an idle one, or room for one."""
    return bool(pool.idle) or pool.size < pool.config.max_size


def give_back(session: SessionPort, conn: BackendConnection, status: int,
              plan: Plan | None) -> None:
    """The statement on ``conn`` is over: keep it pinned or release it (a dead one leaves the
    session and its pool)."""
    if conn.closed:
        if session.migration_txn is not None:
            session.server.migration.transaction_ended(session)
        session.pinned = None
        session.pin_reason = None
        xa.forget(session, conn)
        session.server.pools[conn.instance].release(conn, reusable=False)
        return
    after_statement(session, conn, status, False, plan)


def drop_soft_pin(session: SessionPort) -> BackendConnection | None:
    """A connection kept only so that SHOW WARNINGS can read the last statement's
    diagnostics goes back to its pool when the next statement needs another backend or
    several shards; a transaction or a real pin stays. Returns what remains pinned."""
    conn = session.pinned
    if conn is not None and session.soft_pin:
        session.pinned = None
        session.server.pools[conn.instance].release(conn)
        return None
    return conn


async def connection_for(session: SessionPort, instance: str) -> BackendConnection:
    """The connection the session's next statement on ``instance`` runs on: its transaction
    branch (mode xa), its pinned connection, or a pooled one."""
    if session.xa is not None:
        return await xa.branch(session, instance)
    if session.pinned is not None and (session.pinned.instance != instance
                                       or session.pinned.closed):
        drop_soft_pin(session)
    if session.pinned is not None:
        if session.pinned.instance != instance:
            raise BackendError(errors.NOT_SUPPORTED[0], "this session is pinned to backend "
                               f"{session.pinned.instance}; the statement needs backend "
                               f"{instance}", errors.NOT_SUPPORTED[1])
        return session.pinned
    return await session.server.pools[instance].acquire(session.flavour)


async def begin_if_pending(session: SessionPort, conn: BackendConnection) -> None:
    """Open the transaction the client asked for on the connection its first statement
    uses (BEGIN is deferred until DAL knows which backend the transaction lives on)."""
    statement = session.txn_pending
    if statement is not None:
        session.txn_pending = None
        if session.server.xa is not None:
            await xa.begin(session, conn)
        else:
            await conn.query(statement)


async def ready_connection(session: SessionPort, instance: str, schema: str | None,
                           state: dict[str, str], conn: BackendConnection | None = None,
                           begin: bool = True) -> BackendConnection | None:
    """A connection for the session's next statement, with schema and variables replayed
    (and a deferred BEGIN sent if ``begin``). On failure the ERR is sent, the connection
    given back, the session no longer busy, and None returned."""
    try:
        if conn is not None and conn.closed:  # died since it was handed over
            conn = lost.drop_if_dead(session, conn)
        if conn is None:
            conn = await connection_for(session, instance)
        await apply_state(conn, schema if schema is not None else home_schema(session, instance),
                          state)
        if begin:
            await begin_if_pending(session, conn)
    except BackendError as exc:
        if conn is not None:
            give_back(session, conn, conn.status, None)
        session.send_error(exc.to_err())
        session.busy = False
        return None
    return conn


async def run_in_session(session: SessionPort, instance: str, sql: bytes) -> Result:
    """Run one statement on ``instance`` as part of the session: on its pinned connection
    (or a pooled one, with the session's state), opening a pending transaction, and keeping
    the connection pinned if the reply says a transaction is open."""
    conn = await connection_for(session, instance)
    try:
        await apply_state(conn, home_schema(session, instance), session.state)
        await begin_if_pending(session, conn)
        result = decode_response(await timeouts.timed_command(session.server, conn,
                                                              frame(b"\x03" + sql, 0)),
                                 conn.extended_metadata)
    except BackendError:
        give_back(session, conn, conn.status, None)
        raise
    give_back(session, conn, result.status, None)
    return result


def second_shard_refusal(session: SessionPort, database: bytes) -> str | None:
    """Inside a transaction (mode `single`): the first shard database a statement reaches
    is the transaction's; a statement for another shard gets this refusal message, even on
    the same backend instance, so that moving a shard never changes what commits together."""
    if session.status & TXN_BITS == AUTOCOMMIT or session.server.xa is not None:
        return None
    if session.pinned is None or session.soft_pin or session.txn_shard is None:
        session.txn_shard = database  # the transaction's first shard statement
        return None
    if session.txn_shard == database:
        return None
    return (f"this transaction already uses shard {session.txn_shard.decode()}; a statement "
            f"for shard {database.decode()} is refused inside it (transaction mode "
            "'single'). Keep a transaction on one user, or COMMIT first; the transaction "
            "stays open")


def shard_allowed(session: SessionPort, database: bytes) -> bool:
    """False after sending the refusal when an open transaction already uses another
    shard (`second_shard_refusal`); one integer test outside transactions."""
    if session.status & TXN_BITS == AUTOCOMMIT:
        return True
    refusal = second_shard_refusal(session, database)
    if refusal is None:
        return True
    session.send_error(errors.err(errors.NOT_SUPPORTED, refusal))
    return False
