"""One prepared-statement execution on one backend instance.

The caller has the statement for that backend (``sql``, parameters as ``?``) and the
COM_STMT_EXECUTE payload after its statement id (``tail``). `run` borrows a pooled connection
without a coroutine, as the text hot path does (an idle one now, or a callback when one is
released); if the connection already has the session's state and the statement prepared, the
execution is relayed at once. Otherwise a coroutine replays the state and prepares it first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal.execute import leases
from dal.execute.home import home_schema
from dal.execute.share import shared_execution
from dal.prepared_results import reply
from dal.wire.framing import frame, packet_count
from dal.wire.messages import ERR
from dal.wire.results import RESULT
from pool import statements
from pool.connection import BackendConnection, BackendError
from pool.rename import HeaderRenamer, rename_column
from pool.responses import decode_packets
from router.plan import Plan
from router.rows.buffer import Reader

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from dal.prepared_statements import Statement

WRONG_ARGUMENTS = (1210, "HY000")


def run(session: SessionPort, plan: Plan, instance: str, schema: str | None, sql: bytes,
        params: int, tail: bytes, rename: HeaderRenamer | None, cursor: Statement | None,
        last_seq: int) -> None:
    """Execute ``sql`` (``params`` parameters; ``tail``: the execute payload after the statement
    id) on ``instance``. ``cursor``: the statement that keeps the result for COM_STMT_FETCH."""
    if schema is None and session.databases is not None:  # not where the last user left it
        schema = home_schema(session, instance)
    if (session.pinned is not None or session.txn_pending is not None or cursor is not None
            or last_seq):
        session.spawn(_run_slow(session, plan, instance, schema, sql, params, tail, rename,
                                 cursor, last_seq, None))
        return

    def ready(conn: BackendConnection | None, error: BackendError | None) -> None:
        if conn is None or session.closed:
            session.relay.offer_to = None
        if conn is None:
            session.busy = False
            if error is not None:
                session.send_error(error.to_err())
            session.drain()
        elif session.closed:
            session.busy = False
            session.server.pools[conn.instance].release(conn)
        else:
            _send(session, conn, plan, schema, sql, params, tail, rename)

    pool = session.server.pools[instance]
    share = (shared_execution(session, plan, schema, sql, pool) if pool.config.pipeline_depth
             else None)
    # May be pipelined: the relay offers the connection to the pool (dal/execute/relay.py).
    session.relay.offer_to = pool if share is not None else None
    session.relay.offer_quick = share is not None and share[3]
    try:
        conn = pool.request(session.flavour, ready, share)
    except BackendError as exc:
        session.relay.offer_to = None
        session.send_error(exc.to_err())
        return
    if conn is None:  # queued: `ready` continues
        session.busy = True
        return
    _send(session, conn, plan, schema, sql, params, tail, rename)


def _send(session: SessionPort, conn: BackendConnection, plan: Plan, schema: str | None,
          sql: bytes, params: int, tail: bytes, rename: HeaderRenamer | None) -> None:
    if (schema is None or conn.schema == schema) and conn.variables == session.state:
        backend = conn.prepared.get(conn.statement_key(sql))  # prepared here already?
        if backend is not None and len(backend.params) == params:
            session.relay.start(conn, frame(backend.execute_head + tail, 0), plan, RESULT,
                                rename)
            return
    session.spawn(_run_slow(session, plan, conn.instance, schema, sql, params, tail, rename,
                             None, 0, conn))


async def _run_slow(session: SessionPort, plan: Plan, instance: str, schema: str | None,
                    sql: bytes, params: int, tail: bytes, rename: HeaderRenamer | None,
                    cursor: Statement | None, last_seq: int,
                    conn: BackendConnection | None) -> None:
    conn = await leases.ready_connection(session, instance, schema, session.state, conn)
    if conn is None:
        return
    try:
        backend = await statements.prepare(conn, sql)
    except BackendError as exc:
        leases.give_back(session, conn, conn.status, None)
        session.send_error(exc.to_err())
        session.busy = False
        return
    if len(backend.params) != params:
        leases.give_back(session, conn, conn.status, None)
        session.send_error(ERR(WRONG_ARGUMENTS[0], f"the statement takes "
                                f"{len(backend.params)} parameters on backend {instance}, DAL "
                                f"has {params}", WRONG_ARGUMENTS[1]))
        session.busy = False
        return
    payload = backend.execute_head + tail
    packets = frame(payload, 0)
    if cursor is None and packet_count(len(payload)) == last_seq + 1:
        session.relay.start(conn, packets, plan, RESULT, rename)
        return
    try:
        raw = await conn.command(packets)
    except BackendError:
        session.busy = False
        session.relay.backend_lost(conn)
        return
    leases.give_back(session, conn, conn.status, plan)
    payloads = decode_packets(raw)
    if rename is not None and payloads and payloads[0][0] not in (0x00, 0xFF):
        count = Reader(payloads[0]).lenenc_int() or 0
        payloads[1:1 + count] = [rename_column(c, rename.new_schema) for c in
                                 payloads[1:1 + count]]
    reply(session, payloads, cursor)
    session.busy = False
