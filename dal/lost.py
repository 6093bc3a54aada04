"""A relayed statement whose backend connection was lost: run it again once, or say so cleanly.

The pool never hands out a connection it knows is closed, but a backend can close one that
DAL has not noticed yet (killed, `wait_timeout`, a crash: the FIN is still unread when the
next statement is written to it), and a connection a session keeps pinned can die meanwhile.
When such a connection breaks under a statement, `retry` runs the statement once more on a
fresh pooled connection, with the same schema and variables, if all of these hold:

- the backend cannot have read it (`BackendConnection.unread_request`: it was never written,
  or the backend's kernel never acknowledged it) and nothing of its answer arrived;
- the session is in autocommit with no transaction open or pending, no XA transaction, and
  no pin other than the one kept only for SHOW WARNINGS;
- it is not a retry already.

Otherwise the client gets `lost_error`: 2013 naming the backend instance (the session closes
the client connection instead when part of a result already went out). `drop_if_dead` is the
slow paths' check: a connection found closed before anything was sent on it is swapped for
a fresh one unless the session's transaction lives on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal.wire.constants import Command, Status
from dal.wire.framing import frame
from dal.wire.messages import ERR
from pool import statements
from pool.connection import BackendConnection, BackendError, lost_during_query
from pool.rename import HeaderRenamer
from pool.state import apply_state

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.plan import Plan


def lost_error(session: SessionPort, conn: BackendConnection) -> ERR:
    """2013 naming the instance, and what became of the statement or the transaction."""
    if session.pinned is conn and not session.soft_pin:
        detail = "; the open transaction was rolled back by the backend"
    else:
        detail = "; the statement may or may not have been applied"
    return lost_during_query(conn.instance, detail).to_err()


def retry(session: SessionPort, conn: BackendConnection, plan: Plan | None) -> bool:
    """``conn`` broke under the statement relayed for ``plan``: True when the statement runs
    again on a fresh connection (the dead one is given back), False when it must fail."""
    request = conn.unread_request()
    if (request is None or plan is None or conn.retried is request[0]
            or not _outside_transactions(session, conn)):
        return False
    packets, shape, rename = request
    if packets[4] == Command.STMT_EXECUTE and len(packets) - 4 != _length(packets):
        return False  # a multi-packet execution: not worth rebuilding
    _give_back(session, conn)
    session.spawn(_again(session, conn, plan, packets, shape, rename))
    return True


def drop_if_dead(session: SessionPort, conn: BackendConnection) -> BackendConnection | None:
    """A connection handed to a slow path that was found closed since: given back, and None
    (the caller takes a fresh one), unless the session's transaction lives on it."""
    if not conn.closed or session.xa is not None or (session.pinned is conn
                                                      and not session.soft_pin):
        return conn
    _give_back(session, conn)
    return None


def _outside_transactions(session: SessionPort, conn: BackendConnection) -> bool:
    """Autocommit, no transaction open or pending (XA included), and no pin on the session
    but the one kept for SHOW WARNINGS on ``conn``."""
    pinned = session.pinned
    return (session.phase == "command" and session.txn_pending is None and session.xa is None
            and session.pin_reason is None and not session.status & Status.IN_TRANS
            and bool(session.status & Status.AUTOCOMMIT)
            and (pinned is None or (pinned is conn and session.soft_pin)))


def _give_back(session: SessionPort, conn: BackendConnection) -> None:
    """The dead ``conn`` leaves the session (a pin for SHOW WARNINGS included) and its pool."""
    if session.pinned is conn:
        session.pinned = None
        session.soft_pin = False
    session.server.pools[conn.instance].release(conn, reusable=False)


async def _again(session: SessionPort, dead: BackendConnection, plan: Plan, packets: bytes,
                 shape: int, rename: HeaderRenamer | None) -> None:
    pool = session.server.pools[dead.instance]
    try:
        fresh = await pool.acquire(dead.flavour)
    except BackendError as exc:  # the breaker opened, or the backend refuses connections
        session.send_error(exc.to_err())
        session.busy = False
        return
    try:
        await apply_state(fresh, dead.schema, dead.variables)
        if packets[4] == Command.STMT_EXECUTE:
            packets = await _prepared_again(fresh, dead, packets)
    except BackendError as exc:
        pool.release(fresh, reusable=not fresh.closed)
        session.send_error(exc.to_err())
        session.busy = False
        return
    session.relay.start(fresh, packets, plan, shape, rename)
    fresh.retried = packets  # should this one break too, it is not run a third time


async def _prepared_again(fresh: BackendConnection, dead: BackendConnection,
                          packets: bytes) -> bytes:
    """The COM_STMT_EXECUTE ``packets`` sent on ``dead``, for the same statement on ``fresh``
    (prepared there now if it is not yet)."""
    head = packets[4:9]
    sql = next((key[-1] for key, st in dead.prepared.items() if st.execute_head == head), None)
    if sql is None:
        raise lost_during_query(dead.instance, "; the statement may or may not have been "
                                "applied")
    backend = await statements.prepare(fresh, sql)
    return frame(backend.execute_head + packets[9:], 0)


def _length(packets: bytes) -> int:
    return packets[0] | packets[1] << 8 | packets[2] << 16
