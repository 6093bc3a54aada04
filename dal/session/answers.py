"""What DAL answers itself, and the commands that replay state: BEGIN, USE, SHOW DATABASES /
TABLES / TABLE STATUS / PROCEDURE and FUNCTION STATUS, the session functions,
PROCESSLIST/KILL/GRANTS (plan kind local); SET (recorded and replayed on the session's
connections); COM_FIELD_LIST; COM_RESET_CONNECTION.

Each runs as the command's coroutine and ends it (``session.busy`` false).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal import created_databases, errors, idle, local, sessions_view, set_values, table_status, xa
from dal.execute import leases
from dal.login import ok_packet
from dal.session_variables import show_variables
from dal.wire.constants import Status
from dal.wire.framing import frame
from dal.wire.results import FIELD_LIST
from pool.connection import BackendError
from router.plan import ROUTE, Plan

if TYPE_CHECKING:
    from dal.session.state import SessionState

_IN_TRANS = int(Status.IN_TRANS)


async def answer_locally(session: SessionState, plan: Plan) -> None:
    """A statement DAL answers itself (plan kind local)."""
    server = session.server
    if plan.handler == "begin":
        if await _begin(session, plan):
            return
    elif plan.handler == "use":
        session.use_database(plan.args[0])
    elif plan.handler == "ok":
        session.send(ok_packet(session.reply_seq, session.status))
    elif plan.handler in ("table_status", "routine_status", "session_variables"):
        answer = (show_variables if plan.handler == "session_variables"
                  else getattr(table_status, plan.handler))
        try:
            session.send(await answer(session, *plan.args))
        except BackendError as exc:
            session.send_error(exc.to_err())
    elif plan.handler == "session_functions":
        values = {"last_insert_id": session.last_insert_id, "connection_id": session.id,
                  "row_count": session.row_count, "found_rows": session.found_rows_count,
                  "user": f"{session.user}@{session.peer}", "current_user": f"{session.user}@%",
                  "last_gtid": ""}
        session.send(local.session_values([(name, values[function])
                                          for name, function in plan.args],
                                         seq=session.reply_seq, status=session.status,
                                         extended=session.extended_metadata))
        session.row_count, session.found_rows_count = -1, 1  # as after any one-row SELECT
    elif plan.handler == "show_databases":
        names = ["information_schema", *session.visible_databases()]
        session.send(local.show_databases(names, plan.args[0], seq=session.reply_seq,
                                         status=session.status,
                                         extended=session.extended_metadata))
    elif plan.handler == "show_tables":
        db, full, like = plan.args
        try:
            tables = await server.logical_tables(db)
        except BackendError as exc:
            session.send_error(exc.to_err())
        else:
            session.send(local.show_tables(db, tables, full, like, seq=session.reply_seq,
                                          status=session.status,
                                          extended=session.extended_metadata))
    elif plan.handler in sessions_view.HANDLERS:
        await sessions_view.HANDLERS[plan.handler](session, plan.args)
    elif plan.handler in created_databases.HANDLERS:
        await created_databases.answer(session, plan.handler, plan.args)
    session.busy = False


async def _begin(session: SessionState, plan: Plan) -> bool:
    """BEGIN / START TRANSACTION; True when the command is answered elsewhere (a relay) or
    ended already."""
    # A connection kept only for SHOW WARNINGS must not decide where the transaction
    # lives: the transaction's first statement does.
    leases.drop_soft_pin(session)
    session.snapshot = "CONSISTENT SNAPSHOT" in plan.args[0].upper()
    if session.xa is not None:  # BEGIN inside a transaction commits it first
        error = await xa.end(session, commit=True, reply=False)
        if error is not None:
            session.send_error(error)
            session.busy = False
            return True
    if session.pinned is not None:  # BEGIN inside a transaction commits it first
        session.busy = False
        session.relay.route(Plan(ROUTE, instance=session.pinned.instance,
                                 statement="transaction"), b"\x03" + plan.args[0].encode(), 0)
        return True
    session.txn_pending = plan.args[0]
    session.status |= _IN_TRANS
    session.send(ok_packet(session.reply_seq, session.status))
    return False


async def set_variables(session: SessionState, plan: Plan) -> None:
    """SET: the assignments recorded (evaluated once first where needed) and replayed on
    the session's connection."""
    instance = session.pinned.instance if session.pinned else session.server.default_instance
    assignments = dict(plan.assignments)
    conn = None
    if plan.args:  # SET v = <expression>: its value, with the session's state
        conn = await leases.ready_connection(session, instance, None, session.state, begin=False)
        if conn is None:
            return
        try:
            assignments.update(await set_values.evaluate(conn, plan.args))
        except BackendError as exc:
            leases.give_back(session, conn, conn.status, None)
            session.send_error(exc.to_err())
            session.busy = False
            return
    if "wait_timeout" in assignments or "interactive_timeout" in assignments:
        idle.take_timeouts(session, assignments)  # the session's own, never replayed
    wanted = {**session.state, **assignments}
    if session.xa is not None and wanted.get("autocommit") != session.state.get("autocommit"):
        if conn is not None:
            leases.give_back(session, conn, conn.status, None)
        session.error(xa.IN_TRANSACTION, xa.AUTOCOMMIT_REFUSAL)
        session.busy = False
        return
    conn = await leases.ready_connection(session, instance, None, wanted, conn, begin=False)
    if conn is None:
        return
    session.state = wanted
    session.ansi_quotes = session.sql_mode_ansi_quotes()
    session.txn_pending = xa.next_pending(session)
    leases.give_back(session, conn, conn.status, plan)
    session.send(ok_packet(session.reply_seq, session.status))
    session.busy = False


async def field_list(session: SessionState, payload: bytes) -> None:
    table, _, _ = payload[1:].partition(b"\x00")
    if session.schema is None:
        session.error(errors.NO_DATABASE, "No database selected")
        session.busy = False
        return
    target = session.server.router.field_list_target(session.schema,
                                                     table.decode("utf-8", "replace"))
    conn = await leases.ready_connection(session, target.instance, target.schema,  # type: ignore[arg-type]
                                        session.state, begin=False)
    if conn is None:
        return
    rename = session.schema.encode() if target.schema != session.schema else None
    await session.relay.collect_and_send(conn, frame(payload, 0), None, FIELD_LIST, rename)


async def reset_connection(session: SessionState) -> None:
    await session.reset_session()
    session.send(ok_packet(session.reply_seq, session.status))
    session.busy = False
