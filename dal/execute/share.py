"""Whether a prepared execution may be pipelined behind other sessions' statements.

Under the rules of text statements (`dal.execute.relay.Relay.route`: a `SHAREABLE` kind, no
pin, autocommit with no transaction open, pending or XA, no statement timeout), and one more:
the backend connection it joins must have the statement prepared already (pool.pool.fits), so
that its COM_STMT_EXECUTE goes out as it is, behind what runs there. A connection without it
is not joined: the execution waits for a connection of its own and prepares it there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal.execute.leases import AUTOCOMMIT, TXN_BITS
from dal.execute.relay import SHAREABLE, quick_shape

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from pool.pool import Pool, Share
    from router.plan import Plan


def shared_execution(session: SessionPort, plan: Plan, schema: str | None, sql: bytes,
                     pool: Pool) -> Share | None:
    """What the execution of ``sql`` (prepared on the backend) for ``plan`` needs of a
    connection of ``pool`` it joins, or None when it must run on one of its own."""
    if (plan.statement in SHAREABLE and plan.pin is None and session.pinned is None
            and session.txn_pending is None and session.xa is None
            and session.status & TXN_BITS == AUTOCOMMIT
            and not session.server.statement_timeout):
        return schema, session.state, sql, quick_shape(session, pool)
    return None
