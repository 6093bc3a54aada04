"""The asyncio front end of one client connection: bytes in -> `ServerConnection` events ->
the session's command handlers.

`Frontend` is the `asyncio.Protocol` (connection_made / data_received / connection_lost), the
login coroutine and its TLS upgrade, the timer that ends a client stuck in the middle of a
packet, and the way out: a last ERR and a lingering close, an abort, a shutdown. It decodes
nothing itself: `dal.wire.server.ServerConnection` turns bytes into events, and each event goes
to the handler its type maps to in ``handlers``.

`dal.session.ClientSession` extends it with the session: the handlers, the state they keep,
and the hooks below (`open_session`, `release_backend`). The front end never imports it.

The hot path: a chunk that is exactly one command packet, arriving while the session waits for
one (`ServerConnection.whole_packet`), runs at once, with no copy through the packet buffer and
no coroutine; COM_QUERY and COM_STMT_EXECUTE go straight to the session's `query_command` and
`execute_command`, with no event object, every other command as its event to its handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from dal import errors, tls
from dal.execute.sink import BatchSink, ClientSink
from dal.login import LoginFailed, LoginResult, err_packet, ok_packet
from dal.wire.constants import Command
from dal.wire.events import ProtocolViolation
from dal.wire.messages import ERR
from dal.wire.server import CLOSED, COMMAND, LOGIN, ServerConnection, decode_command
from router.rows.errors import ProtocolError

if TYPE_CHECKING:
    from dal.ports import ServerPort

log = logging.getLogger("dal.session")

LINGER_SECONDS = 2.0
_QUERY = int(Command.QUERY)  # plain ints: compared for every command
_EXECUTE = int(Command.STMT_EXECUTE)


class Frontend(asyncio.Protocol):
    """The server-role protocol of one client connection, up to the command handlers."""

    # Event type -> handler(self, event): the session's command dispatch table.
    handlers: ClassVar[dict[type, Callable[[Any, Any], None]]] = {}
    status: int  # the server status flags the session's replies carry

    def __init__(self, server: ServerPort) -> None:
        self.server = server
        self.id = server.next_connection_id()
        self.transport: asyncio.Transport | None = None
        self.sink: ClientSink | BatchSink = ClientSink(None)  # where answers go
        self.peer = "unknown"
        self.tls = False
        self.wire = ServerConnection(server.config.server.max_packet)
        self.busy = False  # a command runs: nothing more is read until it ends
        self.commands = 0  # commands received; dal/idle.py sees a session's idleness by it
        self.batch_waiter: asyncio.Future[None] | None = None  # a multi-statement batch runs
        self._seq = 0  # the sequence id of the reply to the current command
        self._upgrading = False
        self._login_waiter: asyncio.Future[None] | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None

    # -- hooks the session provides ----------------------------------------------------------

    def open_session(self, result: LoginResult) -> ERR | None:
        """Take the logged-in user's session; an ERR refuses it (the connection closes)."""
        raise NotImplementedError

    def release_backend(self) -> None:
        """Give back whatever backend connections the session holds."""
        raise NotImplementedError

    def query_command(self, payload: bytes, last_seq: int, raw: bytes | None) -> None:
        """Run COM_QUERY ``payload`` (its event's fields: `dal.wire.events.ComQuery`)."""
        raise NotImplementedError

    def execute_command(self, payload: bytes, last_seq: int) -> None:
        """Run COM_STMT_EXECUTE ``payload`` (`dal.wire.events.ComStmtExecute`)."""
        raise NotImplementedError

    # -- asyncio.Protocol --------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """LOGIN, COMMAND or CLOSED (`dal.wire.server`)."""
        return self.wire.state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sink.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "unknown"
        server = self.server
        if len(server.sessions) >= server.config.server.max_clients:
            self.fail(ERR(errors.TOO_MANY_CONNECTIONS[0], "Too many connections: DAL serves at "
                          f"most {server.config.server.max_clients} clients",
                          errors.TOO_MANY_CONNECTIONS[1]), 0)
            return
        server.sessions.add(self)  # type: ignore[arg-type]
        self._task = asyncio.ensure_future(self._login())

    def data_received(self, data: bytes) -> None:
        wire = self.wire
        if not self.busy:
            code = wire.whole_packet(data)  # the common case: exactly one command packet
            if code >= 0:
                if self._read_timer is not None:
                    self._read_timer.cancel()
                    self._read_timer = None
                self._seq = 1
                self.commands += 1
                try:  # the two hot commands run with no event object and no table lookup
                    if code == _QUERY:
                        self.query_command(data[4:], 0, data)
                    elif code == _EXECUTE:
                        self.execute_command(data[4:], 0)
                    else:
                        event = decode_command(data[4:], 0, data)
                        self.handlers[event.__class__](self, event)
                except Exception:  # a bug must cost one statement, never the process
                    self.internal_error("command failed")
                return
        state = wire.state
        if state is CLOSED:
            return
        wire.receive_data(data)
        if state is LOGIN:
            # The login coroutine asks for more when it needs it: an SSLRequest must not be
            # followed by reads of the TLS handshake before the upgrade takes the socket.
            # (Not while the TLS layer is being set up: it may deliver the first decrypted
            # bytes before `_start_tls` has the TLS transport, which is the one to pause.)
            if not self._upgrading:
                self.transport.pause_reading()  # type: ignore[union-attr]
            self._wake_reader()
        elif not self.busy:
            self.drain()
        else:  # a slow path reading more packets of the command (COM_CHANGE_USER's auth)
            self._wake_reader()

    def connection_lost(self, exc: Exception | None) -> None:
        self.wire.close()
        if not self.busy:  # else the command in flight gives the backend back when it ends
            self.release_backend()
        self.server.sessions.discard(self)  # type: ignore[arg-type]
        if self._read_timer is not None:
            self._read_timer.cancel()
        waiter = self._login_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client went away"))
        if self.batch_waiter is not None and not self.batch_waiter.done():
            self.batch_waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self._login_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- login (slow path) -------------------------------------------------------------------

    async def read_packet(self) -> tuple[int, bytes]:
        """The next packet of an authentication exchange: (sequence id, payload). Waits at
        most server.login_timeout for it."""
        while True:
            packet = self.wire.next_auth_packet()
            if packet is not None:
                return packet.seq, packet.payload
            self._login_waiter = asyncio.get_running_loop().create_future()
            self.transport.resume_reading()  # type: ignore[union-attr]
            await asyncio.wait_for(self._login_waiter, self.server.config.server.login_timeout)

    async def _start_tls(self) -> None:
        """Upgrade the client transport to TLS (after an SSLRequest); this protocol object
        keeps receiving the decrypted data."""
        early = self.wire.take_rest()
        self._upgrading = True
        try:
            self.transport = await tls.upgrade_server(
                self.transport, self, self.server.tls_context, early,  # type: ignore[arg-type]
                self.server.config.server.login_timeout)
        finally:
            self._upgrading = False
        self.sink.transport = self.transport
        self.tls = True

    async def _login(self) -> None:
        server = self.server
        try:
            result = await server.authenticator.login(
                self.read_packet, self.send, server.version,
                self.id, self.peer, self._start_tls if server.tls_context else None)
        except LoginFailed as exc:
            self.fail(exc.err, exc.seq)
            server.count_login(False)
            return
        except ProtocolError as exc:
            self.fail(ERR(exc.code, f"Bad handshake: {exc}", exc.sqlstate), 2)
            return
        except (TimeoutError, ConnectionResetError, asyncio.CancelledError, OSError):
            self.abort()  # also a failed TLS handshake (ssl.SSLError is an OSError)
            return
        self.transport.resume_reading()  # type: ignore[union-attr]
        problem = self.open_session(result)
        if problem is not None:
            self.fail(problem, result.next_seq)
            return
        server.count_login(True)
        self.wire.logged_in()
        self.send(ok_packet(result.next_seq, self.status))
        self.drain()

    # -- command phase -----------------------------------------------------------------------

    def drain(self) -> None:
        """Run buffered commands until one has to wait for a backend."""
        if self.batch_waiter is not None:  # a statement of a batch is done: the batch goes on
            self.busy = True
            if not self.batch_waiter.done():
                self.batch_waiter.set_result(None)
            return
        wire = self.wire
        handlers = self.handlers
        while not self.busy and wire.state is COMMAND:
            if not wire.held:  # the common case: nothing came in meanwhile
                if self._read_timer is not None:
                    self._read_timer.cancel()
                    self._read_timer = None
                return
            try:
                event = wire.next_event()
            except ProtocolViolation as exc:
                self.fail(ERR(exc.code, str(exc), exc.sqlstate), exc.seq)
                return
            if event is None:
                self._watch_partial_packet()
                return
            self._seq = wire.reply_seq
            self.commands += 1
            try:
                handlers[event.__class__](self, event)
            except Exception:  # a bug must cost one statement, never the process
                self.internal_error("command failed")


    def command_ended(self) -> None:
        """The command in flight ended (the session is no longer busy): run what the client
        sent meanwhile, or give back what the session holds if the client is gone."""
        if self.wire.state is CLOSED:
            self.release_backend()
        else:
            self.drain()

    def _watch_partial_packet(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        if self.wire.pending():
            self._read_timer = asyncio.get_running_loop().call_later(
                self.server.config.server.read_timeout, self._partial_packet_timeout)

    def _partial_packet_timeout(self) -> None:
        self._read_timer = None
        pending = self.wire.pending()
        if pending and not self.busy and self.wire.state is COMMAND:
            self.fail(ERR(errors.READ_TIMEOUT[0], "Got timeout reading communication packets: "
                          f"{pending} bytes of an incomplete packet, then nothing for "
                          f"{self.server.config.server.read_timeout:g} s",
                          errors.READ_TIMEOUT[1]), 1)

    def internal_error(self, what: str, exc: BaseException | None = None) -> None:
        """A bug costs the statement, never the session: log it (``exc``, else the exception
        being handled) and answer 1105."""
        log.error("session %d: %s", self.id, what, exc_info=exc if exc is not None else True)
        self.busy = False
        self.error(errors.UNKNOWN_ERROR, "DAL internal error; see the DAL log")

    # -- output and teardown -----------------------------------------------------------------

    @property
    def reply_seq(self) -> int:
        """The sequence id of the reply to the current command."""
        return self._seq

    @reply_seq.setter
    def reply_seq(self, seq: int) -> None:
        self._seq = seq

    def send(self, data: bytes) -> None:
        """Write framed packets to the result sink: the client (dropped once it is closing),
        or the buffer of a multi-statement batch."""
        self.sink.write(data)

    def error(self, pair: tuple[int, str], message: str) -> None:
        """Answer the current command with DAL's error ``pair`` (code, sqlstate)."""
        self.send_error(ERR(pair[0], message, pair[1]))

    def send_error(self, err: ERR) -> None:
        """Answer the current command with ``err`` (counted by code)."""
        self.server.count_refusal(err.code)
        self.send(err_packet(err, self._seq))


    def fail(self, err: ERR, seq: int) -> None:
        """Send a last ERR and close. Bytes the client is still sending are read and dropped
        for a moment first: closing with unread data would reset the connection, and the
        client could lose the ERR that says why."""
        self.send(err_packet(err, seq))
        self.wire.close()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.resume_reading()  # paused during login
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def close_connection(self) -> None:
        """End this client connection (COM_QUIT, KILL CONNECTION): whatever it holds is
        given back when the transport reports the loss."""
        self.wire.close()
        if self.transport is not None:
            self.transport.close()


    def shutdown(self) -> None:
        """Server shutdown: tell an idle client why, then close."""
        if self.wire.state is COMMAND and not self.busy:
            self.error(errors.SHUTTING_DOWN, "Server shutdown in progress")
        self.close_connection()
        if not self.busy:
            self.release_backend()

    def abort(self) -> None:
        """Drop the connection at once (no ERR: the client could not read one)."""
        self.wire.close()
        if self.transport is not None:
            self.transport.abort()

