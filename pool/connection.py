"""One backend connection: an `asyncio.Protocol` feeding the client-role wire codec.

Two ways to run a command:
- `relay()`: the hot path. Response chunks go straight to a sink (the client's transport) as
  they arrive, a `ResponseScanner` finds the end, and a callback fires. No rows are decoded.
- `query()` / `command()`: the slow path, a coroutine that collects the whole response and
  decodes it (state replay, metadata, tools).

One command is in flight at a time; starting a second one is an error, not a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import socket
import ssl
import struct
import termios
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dal.wire.client import AUTH, ClientConnection, LoginRefused
from dal.wire.constants import Capability, Command
from dal.wire.framing import PacketBuffer, frame
from dal.wire.messages import ERR, OK, is_eof, is_err
from dal.wire.results import RESULT, ResponseScanner
from pool.rename import HeaderRenamer, RenamingSink
from router.rows.buffer import Reader
from router.rows.columns import ColumnDefinition, decode_text_row
from router.rows.errors import ProtocolError

if TYPE_CHECKING:
    from pool.breaker import Breaker

_ids = itertools.count(1)


class BackendError(Exception):
    """The backend answered with an ERR packet, or the connection failed."""

    def __init__(self, code: int, message: str, sqlstate: str = "HY000") -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.sqlstate = sqlstate

    def to_err(self) -> ERR:
        return ERR(self.code, self.message, self.sqlstate)


LOST_DURING_QUERY = (2013, "HY000")  # CR_SERVER_LOST, sent as an ERR (docs/errors.md)


class ConnectionLost(BackendError):
    """The backend connection closed or failed: mid-command (2013), or while connecting or
    shutting down (1105)."""

    def __init__(self, message: str, code: int = 1105) -> None:
        super().__init__(code, message, "HY000")


def lost_during_query(instance: str, detail: str = "") -> ConnectionLost:
    """The error of a command whose backend connection broke under it."""
    return ConnectionLost(f"Lost connection to backend instance '{instance}' during query"
                          f"{detail}", LOST_DURING_QUERY[0])


@dataclass(slots=True)
class Result:
    """A decoded response: OK fields, or columns and text rows."""

    columns: list[ColumnDefinition] = field(default_factory=list)
    rows: list[list[bytes | None]] = field(default_factory=list)
    ok: OK | None = None
    status: int = 0


class BackendConnection(ClientConnection, asyncio.Protocol):
    """A client-role MySQL connection to one backend instance: the socket and asyncio side of
    the sans-IO `ClientConnection` it extends, which names its state (GREETING, AUTH, READY,
    BUSY, LOST, CLOSED) and keeps ``busy`` and ``closed``."""

    def __init__(self, instance: str, flavour: int = 0) -> None:
        super().__init__()
        self.id = next(_ids)
        self.instance = instance
        self.flavour = flavour  # dal.wire.constants.FLAVOUR_*: what the pool matches on
        self.transport: asyncio.Transport | None = None
        self.server_version = b""
        self.thread_id = 0
        self.schema: str | None = None
        self.charset: str | None = None
        self.variables: dict[str, str] = {}
        self.created = time.monotonic()
        self.last_used = self.created
        self.breaker: Breaker | None = None  # set by the pool; told each call's outcome
        self.sent_at = 0.0
        self.aborted = False  # closed by DAL itself: not a backend failure
        # The command in flight, and, once the connection is lost (a lost connection is never
        # used again, so these are never reset): whether it was not even written, and whether
        # the backend cannot have read it (`unread_request`).
        self.request = b""
        self.unsent = False
        self.unread = False
        self.retried: bytes | None = None  # a request DAL already ran again (dal/lost.py)
        self._waiter: asyncio.Future | None = None
        self._scanner = ResponseScanner(deprecate_eof=False)
        self._sink: Callable[[bytes], None] | None = None
        self._rename: HeaderRenamer | None = None
        self._done: Callable[[BackendConnection, ResponseScanner | None], None] | None = None
        self._collect: bytearray | None = None
        # `pipeline`: the responses answered so far, how many are expected, and their shape.
        self._answered: list[bytes] | None = None
        self._expected = 0
        self._pipeline_shape = RESULT
        self._shape = RESULT  # of the relayed command in flight
        self._tls: ssl.SSLContext | None = None
        self._host = ""
        self.prepared: OrderedDict = OrderedDict()  # SQL -> pool.statements.BackendStatement

    @property
    def response_started(self) -> bool:
        """Some of the current response arrived (and may have been relayed already)."""
        scanner = self._scanner
        return bool(scanner.packets or scanner._carry or scanner._skip)

    # -- connecting --------------------------------------------------------------------------

    @classmethod
    async def open(cls, instance: str, host: str, port: int, user: str, password: str,
                   schema: str | None = None, *, flavour: int = 0,
                   timeout: float = 5.0,
                   tls: ssl.SSLContext | None = None) -> BackendConnection:
        """Connect and authenticate (over TLS with ``tls``); raises `BackendError` on failure."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: cls(instance, flavour), host, port), timeout)
            conn._tls, conn._host = tls, host
            await asyncio.wait_for(conn._login(user, password.encode(), schema), timeout)
        except (TimeoutError, OSError, ConnectionLost) as exc:  # ssl.SSLError is an OSError
            reason = exc.message if isinstance(exc, ConnectionLost) else exc or "timed out"
            raise ConnectionLost(
                f"cannot connect to backend {instance} at {host}:{port}: {reason}") from None
        return conn

    async def _login(self, user: str, password: bytes, schema: str | None) -> None:
        try:
            hello = self.greeting(*await self._read_packet(), flavour=self.flavour,
                                  schema=schema, tls=self._tls is not None)
            self.server_version, self.thread_id = hello.server_version, hello.connection_id
            if self._tls is not None:
                if not hello.capabilities & Capability.SSL:
                    raise BackendError(1105, f"backend {self.instance} does not offer TLS, but "
                                       f"instances.{self.instance}.tls is set", "HY000")
                self._write(self.ssl_request())
                self.transport = await asyncio.get_running_loop().start_tls(  # type: ignore[assignment]
                    self.transport, self, self._tls,  # type: ignore[arg-type]
                    server_hostname=self._host if self._tls.check_hostname else None)
            self._write(self.login_response(user, password, schema))
            while self.state is AUTH:
                reply = self.auth_reply(*await self._read_packet())
                if reply:
                    self._write(reply)
        except LoginRefused as exc:
            raise BackendError(exc.code, exc.message, exc.sqlstate) from None
        self.schema = schema

    async def _read_packet(self) -> tuple[int, bytes]:
        while True:
            packet = self.next_packet()
            if packet is not None:
                return packet
            if self.closed:
                raise lost_during_query(self.instance)
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None:  # hot path: relay while scanning
            scanner = self._scanner
            try:
                used = scanner.feed(data)
            except ProtocolError as exc:
                self._fail(str(exc))
                return
            chunk = data if used == len(data) else data[:used]
            renamer = self._rename
            if renamer is not None:  # the first chunk of a shard's result: rename its header
                self._rename = None
                renamed = renamer.apply(chunk)
                if renamed is None:  # the header spans chunks: hold it back until complete
                    sink = self._sink = RenamingSink(sink, scanner, renamer)
                else:
                    chunk = renamed
            try:
                sink(chunk)
            except Exception:  # the client went away: finish reading, drop the rest
                self._sink = _discard
            if scanner.state == 6:  # DONE
                self._finish(scanner)
            return
        collect = self._collect
        if collect is not None:
            scanner = self._scanner
            while True:
                try:
                    used = scanner.feed(data)
                except ProtocolError as exc:
                    self._fail(str(exc))
                    return
                collect += data if used == len(data) else data[:used]
                if scanner.state != 6:  # DONE
                    return
                answered = self._answered
                if answered is None or self._expected == len(answered) + 1:
                    self._finish(scanner)
                    return
                answered.append(bytes(collect))  # a pipelined response; the next one follows
                collect.clear()
                scanner.reset(self._pipeline_shape)
                data = data[used:]
                if not data:
                    return
        self.receive_data(data)
        self._wake()

    def eof_received(self) -> None:
        """The backend closed its side (killed the connection, `wait_timeout`, shutdown):
        dead from now on, so that the pool skips it before `connection_lost` comes."""
        self.mark_closed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.mark_closed()
        if self.busy and not self.unread:
            self.unread = self._request_unread()
        self._fail(f"lost connection to backend {self.instance}")

    # -- commands ----------------------------------------------------------------------------

    def relay(self, packets: bytes, sink: Callable[[bytes], None],
              done: Callable[[BackendConnection, ResponseScanner | None], None],
              shape: int = RESULT, rename: HeaderRenamer | None = None) -> None:
        """Send framed command packets; stream the response to ``sink``; call ``done`` at its end.

        ``done(conn, scanner)`` gets None for the scanner if the connection failed mid-way.
        ``rename`` puts the logical schema into the result's column definitions.
        """
        self.start_command()
        self._scanner.reset(shape)
        self._rename = rename
        self._sink = sink
        self._done = done
        self.sent_at = time.monotonic()
        self.request = packets
        self._shape = shape
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            # Found dead before anything was written (the backend closed it while it was idle
            # or pinned): report the loss from the event loop, as any other, but unread.
            self.unsent = self.unread = True
            asyncio.get_running_loop().call_soon(self._fail, "closed before use")
            return
        transport.write(packets)

    async def command(self, packets: bytes, shape: int = RESULT) -> bytes:
        """Send framed command packets and return the whole raw response."""
        if self.busy:
            raise RuntimeError("backend connection already has a command in flight")
        if self.closed or self.transport is None or self.transport.is_closing():
            self.unsent = self.unread = True
            self.mark_closed()
            raise lost_during_query(self.instance)
        self.start_command()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._collect = bytearray()

        def done(conn: BackendConnection, scanner: ResponseScanner | None) -> None:
            if waiter.done():
                return
            if scanner is None:
                waiter.set_exception(lost_during_query(self.instance))
            else:
                waiter.set_result(bytes(self._collect or b""))

        self._scanner.reset(shape)
        self._done = done
        self.sent_at = time.monotonic()
        self.request = packets
        self._write(packets)
        try:
            return await waiter
        finally:
            self._collect = None

    async def pipeline(self, commands: list[bytes], shape: int = RESULT) -> list[bytes]:
        """Send several framed commands at once and return their raw responses, in order.

        The server runs them one after another, as if sent one by one, so an ERR answers its
        own command only; what saves time is that there is one round trip instead of many.
        """
        if len(commands) == 1:
            return [await self.command(commands[0], shape)]
        self._answered, self._expected, self._pipeline_shape = [], len(commands), shape
        try:
            last = await self.command(b"".join(commands), shape)
            return [*self._answered, last]
        finally:
            self._answered = None

    async def query(self, sql: str | bytes) -> Result:
        """Run one statement and decode its result; raises `BackendError` on ERR."""
        raw = sql.encode() if isinstance(sql, str) else sql
        response = await self.command(frame(bytes((Command.QUERY,)) + raw, 0))
        return decode_response(response, self.extended_metadata)

    async def init_db(self, schema: str) -> None:
        """COM_INIT_DB; remembers the schema on success."""
        response = await self.command(frame(bytes((Command.INIT_DB,)) + schema.encode(), 0))
        decode_response(response)
        self.schema = schema

    def hold_response(self) -> bytearray | None:
        """Keep the rest of the relayed response here instead of sending it to the sink; None
        (nothing held) if part of it was relayed already or no relay is in flight."""
        if self._sink is None or self._scanner.packets or isinstance(self._sink, RenamingSink):
            return None
        held = bytearray()
        self._sink = held.extend
        return held

    def close(self) -> None:
        """Send COM_QUIT and close; safe to call twice."""
        if self.transport is not None and not self.closed:
            self.mark_closed()
            with contextlib.suppress(Exception):
                self.transport.write(b"\x01\x00\x00\x00\x01")
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (after a protocol error or a timeout)."""
        self.mark_closed()
        self.aborted = True
        if self.transport is not None:
            self.transport.abort()

    # -- internals ---------------------------------------------------------------------------

    def unread_request(self) -> tuple[bytes, int, HeaderRenamer | None] | None:
        """After a loss: the command in flight (packets, response shape, renamer) if the
        backend cannot have read it and nothing of its answer arrived, else None."""
        if not self.unread or not self.request or self.response_started:
            return None
        return self.request, self._shape, self._rename

    def _request_unread(self) -> bool:
        """Whether the backend cannot have read the command in flight: it never left DAL, or
        the backend's kernel never acknowledged all of it (the connection was closed when it
        arrived, and a reset answered it). Linux only; elsewhere: False (may have been read)."""
        transport = self.transport
        if self.unsent or transport is None or transport.get_write_buffer_size():
            return True
        sock = transport.get_extra_info("socket")
        if sock is None or not hasattr(termios, "TIOCOUTQ"):
            return False
        try:
            unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                     b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            return False
        return unacked > 0

    def _write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise lost_during_query(self.instance)
        self.transport.write(data)

    def _finish(self, scanner: ResponseScanner) -> None:
        done = self._done
        self._sink = None
        self._done = None
        self.command_done()
        self.status = scanner.status
        self.last_used = now = time.monotonic()
        breaker = self.breaker
        if breaker is not None:
            breaker.success(now - self.sent_at, now)
        if done is not None:
            done(self, scanner)

    def _fail(self, reason: str) -> None:
        self.mark_closed()
        if self.transport is not None:
            self.transport.abort()
        done = self._done
        self._sink = None
        self._done = None
        self._collect = None
        self.command_done()
        if done is not None:
            # A connection found closed before use is not a failure of a call: the pool
            # replaces it, as one that died idle.
            if self.breaker is not None and not self.aborted and not self.unsent:
                self.breaker.failure()
            done(self, None)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)


def _discard(data: bytes) -> None:
    """The sink of a response whose client is gone: the connection still reads it to the end."""


def decode_response(response: bytes, extended: bool = False) -> Result:
    """Decode a whole collected response (its first result set if there are several);
    ``extended``: its connection negotiated MariaDB's extended metadata."""
    result = Result()
    packets = decode_packets(response)
    if not packets:
        raise ProtocolError("empty response")
    first = packets[0]
    if is_err(first):
        err = ERR.decode(first)
        raise BackendError(err.code, err.message, err.sqlstate)
    if first[0] == 0x00:
        result.ok = OK.decode(first)
        result.status = result.ok.status
        return result
    ncols = Reader(first).lenenc_int() or 0
    i = 1
    for _ in range(ncols):
        result.columns.append(ColumnDefinition.decode(packets[i], extended))
        i += 1
    if i < len(packets) and is_eof(packets[i]):
        i += 1
    for payload in packets[i:]:
        if is_err(payload):
            err = ERR.decode(payload)
            raise BackendError(err.code, err.message, err.sqlstate)
        if is_eof(payload):  # backend connections never ask for DEPRECATE_EOF
            result.status = int.from_bytes(payload[3:5], "little") if len(payload) >= 5 else 0
            break
        result.rows.append(decode_text_row(payload, ncols))
    return result


def decode_packets(response: bytes) -> list[bytes]:
    """Split a collected response into packet payloads."""
    buf = PacketBuffer()
    buf.feed(response)
    payloads = []
    while (packet := buf.next_packet()) is not None:
        payloads.append(packet[2])
    return payloads
