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
from dal.fleet import owner_of
from dal.login import ok_packet
from dal.timeouts import kill_pipelined, kill_statement
from dal.wire.messages import ERR
from dal.wire.results import encode_result_set, text_column
from router.rows.types import ColumnFlag, ColumnType

if TYPE_CHECKING:
    from dal.ports import ServerPort, SessionPort

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
    """SHOW [FULL] PROCESSLIST: DAL's client sessions, in every worker (an admin sees all,
    others their own user's). Info is the statement's fingerprint (literals as ?), never a
    backend's text."""
    (full,) = args
    number = int(ColumnFlag.NOT_NULL | ColumnFlag.NUM | ColumnFlag.UNSIGNED)
    columns = [text_column("Id", type_=ColumnType.LONGLONG, length=21, charset=63,
                           flags=number),
               text_column("User", length=128), text_column("Host", length=64),
               text_column("db", length=64), text_column("Command", length=16),
               text_column("Time", type_=ColumnType.LONG, length=7, charset=63, flags=number),
               text_column("State", length=64), text_column("Info", length=65535),
               text_column("Progress", type_=ColumnType.NEWDECIMAL, length=7, charset=63)]
    rows = process_rows(session.server, session.user, session.admin, full, session)
    fleet = session.server.fleet
    if fleet is not None:
        asked = {"op": "processlist", "user": session.user, "admin": session.admin,
                 "full": full}
        for peer_rows in (await fleet.ask(asked)).values():
            rows += peer_rows
        rows.sort(key=lambda row: int(row[0]))
    encoded = [[None if v is None else str(v).encode() for v in row] for row in rows]
    session.send(encode_result_set(columns, encoded, deprecate_eof=False,
                                   status=session.status, seq=session.reply_seq,
                                   extended=session.extended_metadata))


def process_rows(server: ServerPort, user: str, admin: bool, full: bool,
                 asking: SessionPort | None = None) -> list[list[str | None]]:
    """This worker's SHOW PROCESSLIST rows that ``user`` may see (``asking``: the session
    running it, shown busy)."""
    now = time.perf_counter()
    rows: list[list[str | None]] = []
    for other in sorted(server.sessions, key=lambda s: s.id):
        if not other.user or (not admin and other.user != user):
            continue  # still logging in, or another user's
        busy = other.busy or other is asking
        info = None
        if busy and other.statement_text is not None:
            text = other.statement_text.decode("utf-8", "replace")
            info = text if full else text[:INFO_CHARS]
        started = other.statement_started
        rows.append([str(other.id), other.user, other.peer, other.schema or None,
                     "Query" if busy else "Sleep",
                     str(max(0, int(now - started)) if started else 0),
                     "executing" if busy else "", info, "0.000"])
    return rows


async def kill(session: SessionPort, args: tuple) -> None:
    """KILL [CONNECTION|QUERY] <DAL connection id>, in whichever worker has that connection."""
    number, query_only = args
    outcome = await kill_in_worker(session.server, number, query_only, session.user,
                                   session.admin, session)
    fleet = session.server.fleet
    owner = owner_of(number, fleet.workers) if fleet is not None else None
    if outcome == UNKNOWN and fleet is not None and owner != fleet.index:
        asked = {"op": "kill", "id": number, "query_only": query_only, "user": session.user,
                 "admin": session.admin}
        outcome = await fleet.ask_one(owner, asked) or UNKNOWN
    if outcome == UNKNOWN:
        session.send_error(ERR(UNKNOWN_THREAD[0], f"Unknown thread id: {number}",
                               UNKNOWN_THREAD[1]))
    elif outcome == DENIED:
        session.send_error(ERR(NOT_OWNER[0], f"You are not owner of thread {number}",
                               NOT_OWNER[1]))
    elif outcome == SELF:  # as MariaDB: the killer's own connection ends with 1927
        session.send_error(ERR(CONNECTION_KILLED[0], "Connection was killed",
                               CONNECTION_KILLED[1]))
        session.close_connection()
    else:
        session.send(ok_packet(session.reply_seq, session.status))


UNKNOWN, DENIED, SELF, KILLED = "unknown", "denied", "self", "killed"


async def kill_in_worker(server: ServerPort, number: int, query_only: bool, user: str,
                         admin: bool, asking: SessionPort | None = None) -> str:
    """KILL of this worker's connection ``number`` on behalf of ``user``: `UNKNOWN` (none
    here), `DENIED`, `SELF` (``asking`` killing its own connection: the caller closes it) or
    `KILLED`."""
    target = next((s for s in server.sessions if s.id == number), None)
    if target is None or not target.user:
        return UNKNOWN
    if not admin and target.user != user:
        return DENIED
    if target is asking:
        return KILLED if query_only else SELF
    await _stop_statement(target)
    if not query_only:
        target.close_connection()
    return KILLED


async def _stop_statement(target: SessionPort) -> None:
    """KILL QUERY on the backend connection serving ``target``'s running statement, if any
    (a pipelined one once it runs there, by its query id: `kill_pipelined`, in the
    background)."""
    if target.planning:  # nothing on a backend yet: it ends when its plan is made
        target.kill_requested = True
        return
    conn = (target.relay.serving or target.pinned) if target.busy else None
    if conn is not None and conn.shared:
        # It may wait behind other sessions' statements for as long as they run: killed once
        # it reaches the backend, and the KILL answered now, as MariaDB answers it.
        target.server.background(kill_pipelined(target.server, conn, target.relay.done))
    elif conn is not None:
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
