"""A client's wait_timeout, enforced on its DAL session (as MariaDB closes an idle client).

``SET [SESSION] wait_timeout = N`` (and interactive_timeout) is recorded by the session and
never replayed onto pooled backend connections: there it would close a shared connection, and
the client's own session would never time out. A session that set it is watched by one sweep
per event loop (twice a second, only while some session is watched): a session idle, not busy,
for N seconds since its last command is closed, and its client sees "server has gone away" /
"lost connection" (2006/2013) on its next statement, as with MariaDB. As in MariaDB, SET
interactive_timeout changes nothing for the current session: an interactive client
(CLIENT_INTERACTIVE) starts with interactive_timeout as its wait_timeout at login only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dal.ports import SessionPort

VARIABLES = ("wait_timeout", "interactive_timeout")
SWEEP_SECONDS = 0.5
MAX_TIMEOUT = 31536000  # MariaDB's maximum (one year); larger values are capped, as there

_watched: weakref.WeakSet[SessionPort] = weakref.WeakSet()
_timer: asyncio.TimerHandle | None = None
_INTEGER = re.compile(r"=\s*'?(\d+)(?:\.\d*)?'?\s*$")


def take_timeouts(session: SessionPort, assignments: dict[str, str]) -> None:
    """Remove wait_timeout/interactive_timeout from a SET's ``assignments`` (name -> SQL, as
    the planner makes them) and record wait_timeout on ``session``. ``DEFAULT`` or a value that
    is not an integer stops enforcing it."""
    for name in VARIABLES:
        sql = assignments.pop(name, None)
        if sql is None or name != "wait_timeout":
            continue
        match = _INTEGER.search(sql)
        seconds = min(int(match.group(1)), MAX_TIMEOUT) if match else 0
        set_wait_timeout(session, max(seconds, 1) if match else 0)


def set_wait_timeout(session: SessionPort, seconds: int) -> None:
    """Enforce ``seconds`` of idleness on ``session`` (0: never close it)."""
    session.wait_timeout = seconds
    session.idle_since = None
    if seconds:
        _watched.add(session)
        _arm()
    else:
        _watched.discard(session)


def _arm() -> None:
    global _timer
    if _timer is None and _watched:
        _timer = asyncio.get_running_loop().call_later(SWEEP_SECONDS, _sweep)


def _sweep() -> None:
    """Close every watched session idle for longer than its wait_timeout."""
    global _timer
    _timer = None
    now = asyncio.get_running_loop().time()
    for session in list(_watched):
        if session.phase == "closed":
            _watched.discard(session)
            continue
        if session.busy or session.batch_waiter is not None or session.phase != "command":
            session.idle_since = None
            continue
        mark = session.commands
        if session.idle_since is None or session.idle_mark != mark:
            session.idle_mark, session.idle_since = mark, now  # a command ran since last look
        elif now - session.idle_since >= session.wait_timeout:
            _watched.discard(session)
            session.close_idle()
    _arm()


def reset_transport(transport: asyncio.BaseTransport | None) -> None:
    """Close with a reset (SO_LINGER 0), as MariaDB's idle close reaches a client: its next
    write fails and it reports "server has gone away" (2006)."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
