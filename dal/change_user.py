"""COM_CHANGE_USER: log in again as another user on the same client connection.

The client's first answer was computed over the scramble in force (the greeting's, or the last
AuthSwitchRequest's): DAL checks it against that scramble, as MariaDB does, and sends an
AuthSwitchRequest (with a fresh scramble) only when it cannot check the client's plugin for
that user or the client sent no answer (dal.login.switch_plugin). MariaDB Connector/C answers a
switch during COM_CHANGE_USER over its old scramble, so a switch where none is needed fails it
with 1045 whatever the password. On success the
session is reset like MySQL's (transaction rolled back, variables and pins dropped), and takes
the user, database and character set of the packet. On failure the client gets ERR 1045 and
the connection stays open as the previous user, with its session state reset: what MariaDB
10.11 does (checked against the test instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dal import errors
from dal.login import Authenticator, LoginFailed, ReadPacket, Write, ok_packet
from dal.wire import auth
from dal.wire.constants import Capability
from dal.wire.messages import ERR
from router.access import BAD_CHARSET, unsafe_names_refusal
from router.rows.buffer import Reader
from router.rows.errors import ProtocolError

if TYPE_CHECKING:
    from dal.ports import SessionPort


@dataclass(slots=True)
class ChangeUser:
    """A decoded COM_CHANGE_USER packet."""

    user: str
    auth_response: bytes
    database: str | None
    collation: int | None
    plugin: bytes | None


def decode(payload: bytes, capabilities: int) -> ChangeUser:
    """Decode COM_CHANGE_USER (``payload`` starts with the command byte 0x11)."""
    r = Reader(payload, 1)
    user = r.null_terminated().decode("utf-8", "replace")
    if capabilities & Capability.SECURE_CONNECTION:
        response = r.fixed(r.u8())
    else:
        response = r.null_terminated()
    database = r.null_terminated_or_rest().decode("utf-8", "replace") if r.remaining() else ""
    collation = r.u16() if r.remaining() >= 2 else None
    plugin = None
    if capabilities & Capability.PLUGIN_AUTH and r.remaining():
        plugin = r.null_terminated_or_rest()
    return ChangeUser(user, response, database or None, collation, plugin)


async def authenticate(authenticator: Authenticator, request: ChangeUser, read: ReadPacket,
                       write: Write, peer: str, tls: bool,
                       scramble: bytes) -> tuple[int, bytes]:
    """Check the new user's password; returns the sequence id the final OK goes out at and the
    scramble now in force. Raises `LoginFailed` (ERR 1045 or 3159) when the user may not log
    in. ``scramble`` is the one in force: the client made its first answer over it."""
    blocked = authenticator.blocked(peer)  # server.login_backoff, as at login
    if blocked is not None:
        raise LoginFailed(blocked, 1)
    user = authenticator.users.get(request.user)
    seq = 0
    ok = False
    await authenticator.hold(request.user)
    data = request.auth_response
    if user is not None:
        ok, seq, data, scramble = await authenticator.verify(
            user, request.plugin or auth.NATIVE, data, scramble, seq, read, write, tls)
    authenticator.outcome(peer, request.user, ok)
    if not ok:
        using = "YES" if data or request.auth_response else "NO"
        raise LoginFailed(ERR(errors.ACCESS_DENIED[0], f"Access denied for user "
                              f"'{request.user}'@'{peer}' (using password: {using})",
                              errors.ACCESS_DENIED[1]), seq + 1)
    assert user is not None
    if user.require_tls and not tls:
        raise LoginFailed(ERR(errors.SECURE_TRANSPORT_REQUIRED[0], "Connections using insecure "
                              f"transport are prohibited for user '{request.user}' (users."
                              f"{request.user}.require_tls); connect with TLS",
                              errors.SECURE_TRANSPORT_REQUIRED[1]), seq + 1)
    return seq + 1, scramble


async def run(session: SessionPort, payload: bytes) -> None:
    """The session's COM_CHANGE_USER command (a slow path: `session.busy` is set)."""
    server = session.server
    try:
        request = decode(payload, session.capabilities)
        seq, session.scramble = await authenticate(
            server.authenticator, request, session.read_packet, session.send,
            session.peer, session.tls, session.scramble)
        names = (server.names_for_collation(request.collation)
                 if request.collation is not None else None)
        if unsafe := unsafe_names_refusal(names):
            raise LoginFailed(ERR(BAD_CHARSET[0], unsafe, BAD_CHARSET[1]), seq)  # as at login
    except (LoginFailed, ProtocolError) as exc:
        await session.reset_session()
        server.count_login(False)
        if isinstance(exc, LoginFailed):
            session.reply_seq = exc.seq
            session.send_error(exc.err)
        else:
            session.error(errors.BAD_HANDSHAKE, f"Bad COM_CHANGE_USER packet: {exc}")
        session.busy = False
        return
    await session.reset_session()
    server.count_login(True)
    session.user = request.user
    session.admin = server.config.users[request.user].role.value == "admin"
    session.databases = server.config.users[request.user].allowed_databases()
    session.schema = None
    if request.collation is not None:  # the packet's character set replaces the login's
        session.login_names = names
        session.state.pop("names", None)
        if session.login_names is not None:
            session.state["names"] = session.login_names
    session.reply_seq = seq
    problem = None
    if request.database is not None:
        problem = session.check_database(request.database)
        if problem is None:
            session.schema = request.database
    if problem is not None:
        session.send_error(problem)
    else:
        session.send(ok_packet(seq, session.status))
    session.busy = False
