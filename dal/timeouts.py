"""The per-statement timeout (`rules.statement_timeout`), enforced on the backend.

When a relayed statement runs longer than the limit, DAL opens a connection of its own to
that backend and sends ``KILL QUERY <thread id>`` (pool/killer.py). MariaDB then ends the
statement with ERR 1317 and the pooled connection stays usable. If nothing of the result had
reached the client yet, the rest of the response is held back and the client gets DAL's
1969 naming the rule; if the statement finished before the kill landed, the held answer is
sent as it was. If rows were already streaming, the backend's own 1317 ends the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from dal.wire.constants import Command
from dal.wire.messages import ERR
from dal.wire.results import ResponseScanner
from pool.connection import BackendConnection, BackendError
from pool.killer import kill_query
from pool.responses import decode_packets

if TYPE_CHECKING:
    from dal.ports import ServerPort, SessionPort

STATEMENT_TIMEOUT = (1969, "70100")  # ER_STATEMENT_TIMEOUT (MariaDB)


class TimedOut:
    """What a session remembers about its statement once the timeout fired."""

    __slots__ = ("held", "instance", "seconds")

    def __init__(self, held: bytearray | None, instance: str, seconds: float) -> None:
        self.held = held
        self.instance = instance
        self.seconds = seconds


async def timed_command(server: ServerPort, conn: BackendConnection, packets: bytes) -> bytes:
    """``conn.command(packets)`` under the statement timeout (a scatter leg): past it, KILL
    QUERY on the backend, and the leg fails with 1969 instead of the backend's 1317."""
    seconds = server.statement_timeout
    if not seconds:
        return await conn.command(packets)
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        # this leg's command: a later one on the connection is left alone
        server.background(kill_statement(server, conn, conn.sent_at))

    timer = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        raw = await conn.command(packets)
    finally:
        timer.cancel()
    if fired and decode_packets(raw)[-1][:1] == b"\xff":  # ended by the kill's ERR
        raise BackendError(STATEMENT_TIMEOUT[0], timeout_message(seconds, conn.instance),
                           STATEMENT_TIMEOUT[1])
    return raw


def timeout_message(seconds: float, instance: str) -> str:
    return (f"DAL rule statement_timeout: the statement ran longer than {seconds:g} s on "
            f"backend {instance}, and DAL stopped it there with KILL QUERY; make it faster or "
            "raise rules.statement_timeout")


def arm(session: SessionPort, conn: BackendConnection) -> None:
    """Start the timer of the statement just sent on ``conn``."""
    session.relay.timer = asyncio.get_running_loop().call_later(
        session.server.statement_timeout, _expired, session, conn, conn.sent_at)


def still_running(conn: BackendConnection, sent_at: float) -> Callable[[], bool]:
    """Whether ``conn`` still runs the command sent at ``sent_at`` (a later command on it is
    someone else's)."""
    return lambda: conn.busy and not conn.closed and conn.sent_at == sent_at


async def kill_statement(server: ServerPort, conn: BackendConnection, sent_at: float) -> bool:
    """KILL QUERY the command sent on ``conn`` at ``sent_at``, if it still runs then
    (pool/killer.py: over a connection of its own)."""
    return await kill_query(conn.instance, server.pools[conn.instance].instance,
                            conn.thread_id, still_running(conn, sent_at))


async def kill_pipelined(server: ServerPort, conn: BackendConnection,
                         done: Callable[..., None]) -> bool:
    """KILL QUERY the relayed statement reporting to ``done`` on ``conn``, where other
    sessions' statements are pipelined: once those ahead of it have answered, by its query id
    and text (pool/killer.py), so that no other session's statement is interrupted."""
    found = conn.relayed_for(done)
    while found is not None and found[0] > 0:  # still queued behind others' statements
        await asyncio.sleep(0.005)
        found = conn.relayed_for(done)
    sql = None if found is None else _running_text(conn, found[1])
    if sql is None:
        return False  # ended, or not a one-packet COM_QUERY or COM_STMT_EXECUTE
    return await kill_query(conn.instance, server.pools[conn.instance].instance,
                            conn.thread_id, lambda: conn.relayed_for(done) is not None,
                            sql=sql)


def _running_text(conn: BackendConnection, packets: bytes) -> bytes | None:
    """What the backend's PROCESSLIST shows while ``packets`` run: a COM_QUERY's text, or
    for a COM_STMT_EXECUTE the prepared statement's (with its ``?``)."""
    if len(packets) - 4 >= 0xFFFFFF:
        return None
    if packets[4] == Command.QUERY:
        return packets[5:]
    if packets[4] == Command.STMT_EXECUTE:
        head = packets[4:9]
        return next((key[-1] for key, st in conn.prepared.items() if st.execute_head == head),
                    None)
    return None


def _expired(session: SessionPort, conn: BackendConnection, sent_at: float) -> None:
    if not still_running(conn, sent_at)():
        session.relay.timer = None
        return
    seconds = session.server.statement_timeout
    session.relay.timer = TimedOut(conn.hold_response(), conn.instance, seconds)
    session.server.background(kill_statement(session.server, conn, sent_at))


def ended(session: SessionPort, conn: BackendConnection,
          scanner: ResponseScanner | None) -> None:
    """The statement's response is complete: stop its timer, or, if it fired, send the client
    the held answer or DAL's timeout ERR (nothing if the relay had already begun, or the
    connection was lost: the session reports that)."""
    timer = session.relay.timer
    session.relay.timer = None
    if not isinstance(timer, TimedOut):
        timer.cancel()  # type: ignore[union-attr]
        return
    session.server.protection.count_rule("statement_timeout")
    if scanner is None or timer.held is None:
        return
    if scanner.error:
        session.send_error(ERR(STATEMENT_TIMEOUT[0],
                                timeout_message(timer.seconds, timer.instance),
                                STATEMENT_TIMEOUT[1]))
    else:  # it finished before the kill landed: its own answer, late
        session.send(bytes(timer.held))
