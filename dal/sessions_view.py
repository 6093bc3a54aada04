"""DAL's own sessions as clients see them: SHOW PROCESSLIST, KILL and SHOW GRANTS.

A backend would answer these for its threads (DAL's pooled connections, replication) and for
DAL's backend account; DAL answers them for its client sessions and its configured users.
Connection ids are DAL's (CONNECTION_ID()); a backend thread id is never reachable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dal import errors
from dal.login import ok_packet
from dal.timeouts import kill_statement
from dal.wire.messages import ERR
from dal.wire.results import encode_result_set, text_column
from router.rows.types import ColumnFlag, ColumnType

if TYPE_CHECKING:
    from dal.ports import SessionPort

UNKNOWN_THREAD = (1094, "HY000")      # ER_NO_SUCH_THREAD
NOT_OWNER = (1095, "HY000")           # ER_KILL_DENIED_ERROR
CONNECTION_KILLED = (1927, "70100")   # ER_CONNECTION_KILLED
INFO_CHARS = 100  # SHOW PROCESSLIST without FULL shows this much of a statement, as MariaDB

# What an app user's grants look like to SHOW GRANTS: what DAL lets the role do (router/access.py).
_ROLE_PRIVILEGES = {
    "app": "SELECT, INSERT, UPDATE, DELETE, LOCK TABLES, EXECUTE",
    "admin": "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, LOCK TABLES, "
             "EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, TRIGGER",
}


async def processlist(session: SessionPort, args: tuple) -> None:
    """SHOW [FULL] PROCESSLIST: DAL's client sessions (an admin sees all, others their own
    user's). Info is the statement's fingerprint (literals as ?), never a backend's text."""
    (full,) = args
    now = time.perf_counter()
    number = int(ColumnFlag.NOT_NULL | ColumnFlag.NUM | ColumnFlag.UNSIGNED)
    columns = [text_column("Id", type_=ColumnType.LONGLONG, length=21, charset=63,
                           flags=number),
               text_column("User", length=128), text_column("Host", length=64),
               text_column("db", length=64), text_column("Command", length=16),
               text_column("Time", type_=ColumnType.LONG, length=7, charset=63, flags=number),
               text_column("State", length=64), text_column("Info", length=65535),
               text_column("Progress", type_=ColumnType.NEWDECIMAL, length=7, charset=63)]
    rows = []
    for other in sorted(session.server.sessions, key=lambda s: s.id):
        if not other.user or (not session.admin and other.user != session.user):
            continue  # still logging in, or another user's
        busy = other.busy or other is session
        info = None
        if busy and other.statement_text is not None:
            text = other.statement_text.decode("utf-8", "replace")
            info = (text if full else text[:INFO_CHARS]).encode()
        started = other.statement_started
        rows.append([str(other.id).encode(), other.user.encode(), other.peer.encode(),
                     other.schema.encode() if other.schema else None,
                     b"Query" if busy else b"Sleep",
                     str(max(0, int(now - started)) if started else 0).encode(),
                     b"executing" if busy else b"", info, b"0.000"])
    session.send(encode_result_set(columns, rows, deprecate_eof=False,
                                   status=session.status, seq=session.reply_seq,
                                   extended=session.extended_metadata))


async def kill(session: SessionPort, args: tuple) -> None:
    """KILL [CONNECTION|QUERY] <DAL connection id>."""
    number, query_only = args
    target = next((s for s in session.server.sessions if s.id == number), None)
    if target is None or not target.user:
        session.send_error(ERR(UNKNOWN_THREAD[0], f"Unknown thread id: {number}",
                               UNKNOWN_THREAD[1]))
        return
    if not session.admin and target.user != session.user:
        session.send_error(ERR(NOT_OWNER[0], f"You are not owner of thread {number}",
                               NOT_OWNER[1]))
        return
    if target is session:
        if not query_only:  # as MariaDB: the killer's own connection ends with 1927
            session.send_error(ERR(CONNECTION_KILLED[0], "Connection was killed",
                                   CONNECTION_KILLED[1]))
            session.close_connection()
            return
    else:
        await _stop_statement(target)
        if not query_only:
            target.close_connection()
    session.send(ok_packet(session.reply_seq, session.status))


async def _stop_statement(target: SessionPort) -> None:
    """KILL QUERY on the backend connection serving ``target``'s running statement, if any."""
    conn = (target.relay.serving or target.pinned) if target.busy else None
    if conn is not None:
        await kill_statement(target.server, conn, conn.sent_at)


async def grants(session: SessionPort, args: tuple) -> None:
    """SHOW GRANTS [FOR user]: what DAL lets that user do, in GRANT form."""
    (target,) = args
    name = target if target is not None else session.user
    users = session.server.config.users
    if name != session.user and not session.admin:
        session.send_error(ERR(errors.DB_ACCESS_DENIED[0], f"Access denied for user "
                               f"'{session.user}'@'{session.peer}' to database 'mysql'",
                               errors.DB_ACCESS_DENIED[1]))
        return
    user = users.get(name)
    if user is None:
        session.send_error(ERR(1141, f"There is no such grant defined for user '{name}' on "
                               "host '%'", "42000"))
        return
    databases = user.databases if user.databases is not None else list(
        session.server.config.databases)
    privileges = _ROLE_PRIVILEGES.get(user.role.value, _ROLE_PRIVILEGES["app"])
    rows = [[f"GRANT USAGE ON *.* TO `{name}`@`%`".encode()]]
    rows += [[f"GRANT {privileges} ON `{db}`.* TO `{name}`@`%`".encode()]
             for db in sorted(databases)]
    column = text_column(f"Grants for {name}@%", length=1024)
    session.send(encode_result_set([column], rows, deprecate_eof=False, status=session.status,
                                   seq=session.reply_seq, extended=session.extended_metadata))


HANDLERS: dict[str, Callable[[SessionPort, tuple], Awaitable[None]]] = {
    "processlist": processlist, "kill": kill, "grants": grants}
