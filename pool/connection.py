"""One backend connection: an `asyncio.Protocol` feeding the client-role wire codec.

Two ways to run a command:
- `relay()`: the hot path. Response chunks go straight to a sink (the client's transport) as
  they arrive, a `ResponseScanner` finds the end, and a callback fires. No rows are decoded.
- `query()` / `command()`: the slow path, a coroutine that collects the whole response and
  decodes it (state replay, metadata, tools).

One command is in flight at a time, except relayed ones: a `relay()` while another is in
flight is a pipelined request of another session (pool/flights.py), written behind it and
answered in order. The slow path never shares a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
from collections import OrderedDict, deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from dal.wire.client import AUTH, BUSY, READY, ClientConnection, LoginRefused
from dal.wire.constants import Capability, Command
from dal.wire.framing import frame
from dal.wire.results import RESULT, ResponseScanner
from pool.errors import BackendError, ConnectionLost, lost_during_query
from pool.flights import NOT_WRITTEN, Flight, unacked_bytes
from pool.rename import HeaderRenamer, RenamingSink
from pool.responses import Result, decode_response
from router.rows.errors import ProtocolError

if TYPE_CHECKING:
    from pool.breaker import Breaker

_ids = itertools.count(1)


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
        self.created = monotonic()
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
        # Bytes written since connect, and where the command in flight ends among them; after a
        # loss, how many of them the backend's kernel acknowledged (None: unknown).
        self.written = 0
        self.request_end = 0
        self.acked: int | None = None
        # Pipelining (pool/flights.py): requests queued behind the one in flight, those of
        # them not written yet, whether others may join (set by the pool), and how many more
        # sessions than one hold the connection (the pool counts them down on release).
        self._flights: deque[Flight] = deque()
        self._outbox: list[Flight] = []
        self.shared = False
        self.quick = False  # every request in flight is of a quick shape (`pool.pipeline_spread`)
        self.joined = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # asking for it costs a getpid()
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
        # `statement_key` -> pool.statements.BackendStatement
        self.prepared: OrderedDict = OrderedDict()

    def statement_key(self, sql: bytes) -> tuple:
        """The key of ``sql`` prepared on this connection now: MariaDB resolves a prepared
        statement's tables in the database, and reads its text under the sql_mode and
        character set, in force when it was prepared, so one prepared under others is not
        this one."""
        variables = self.variables
        return (self.schema, variables.get("sql_mode"), variables.get("names"),
                variables.get("character_set_client"), variables.get("character_set_connection"),
                variables.get("collation_connection"), sql)

    @property
    def depth(self) -> int:
        """Requests in flight: the current one and those pipelined behind it."""
        return len(self._flights) + self.busy

    @property
    def response_started(self) -> bool:
        """Some of the current response arrived (and may have been relayed already)."""
        return self._scanner.started

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
            hello = self.greeting(*await self.read_packet(), flavour=self.flavour,
                                  schema=schema, tls=self._tls is not None)
            self.server_version, self.thread_id = hello.server_version, hello.connection_id
            if self._tls is not None:
                if not hello.capabilities & Capability.SSL:
                    raise BackendError(1105, f"backend {self.instance} does not offer TLS, but "
                                       f"instances.{self.instance}.tls is set", "HY000")
                self.write(self.ssl_request())
                self.transport = await asyncio.get_running_loop().start_tls(  # type: ignore[assignment]
                    self.transport, self, self._tls,  # type: ignore[arg-type]
                    server_hostname=self._host if self._tls.check_hostname else None)
            self.write(self.login_response(user, password, schema))
            while self.state is AUTH:
                reply = self.auth_reply(*await self.read_packet())
                if reply:
                    self.write(reply)
        except LoginRefused as exc:
            raise BackendError(exc.code, exc.message, exc.sqlstate) from None
        self.schema = schema

    async def read_packet(self) -> tuple[int, bytes]:
        """The next whole packet of the reply (sequence id, payload), waiting for it."""
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
        self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        while sink is not None:  # hot path: relay while scanning (pipelined: answer by answer)
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
            if scanner.state != 6:  # DONE
                return
            if not self._finish(scanner) or used >= len(data):
                return  # bytes past the last answer are not the backend's to send: dropped
            data = data[used:]  # the next pipelined request's answer
            sink = self._sink
            if sink is None:  # failed meanwhile
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
        ``rename`` puts the logical schema into the result's column definitions. On a
        connection with a relayed command in flight, the request is pipelined behind it.
        """
        state = self.state
        if state is READY:  # `start_command`'s step, taken inline: this runs per statement
            self.state = BUSY
            self.busy = True
        elif state is BUSY and self._sink is not None:
            self._follow(Flight(packets, sink, done, shape, rename))
            return
        else:
            self.start_command()
        self._scanner.reset(shape)
        self._rename = rename
        self._sink = sink
        self._done = done
        self.sent_at = monotonic()
        self.request = packets
        self._shape = shape
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            # Found dead before anything was written (the backend closed it while it was idle
            # or pinned): report the loss from the event loop, as any other, but unread.
            self.unsent = self.unread = True
            asyncio.get_running_loop().call_soon(self._fail, "closed before use")
            return
        self.written += len(packets)
        self.request_end = self.written
        transport.write(packets)

    def _follow(self, flight: Flight) -> None:
        """Queue ``flight`` behind the requests in flight; written at the end of this loop
        turn, together with any other queued in it."""
        self._flights.append(flight)
        outbox = self._outbox
        outbox.append(flight)
        if len(outbox) == 1:
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _flush(self) -> None:
        outbox = self._outbox
        if not outbox or self.closed or self.transport is None:
            return  # a loss fails them, unwritten
        self._outbox = []
        written = self.written
        for flight in outbox:
            written += len(flight.packets)
            flight.end = written
        self.written = written
        if self.request_end == NOT_WRITTEN:  # the first of them is in flight already
            self.request_end = outbox[0].end
        self.transport.write(outbox[0].packets if len(outbox) == 1
                             else b"".join([flight.packets for flight in outbox]))

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
        self.sent_at = monotonic()
        self.request = packets
        self.write(packets)
        self.request_end = self.written
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

    def relayed_for(self, done: Callable[..., None]) -> tuple[int, bytes] | None:
        """The relayed request that reports to ``done``: how many requests run before it (0:
        it is running) and its packets; None when it is not on this connection."""
        if self.busy and self._done == done:
            return 0, self.request
        for place, flight in enumerate(self._flights, 1):
            if flight.done == done:
                return place, flight.packets
        return None

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
        arrived, and a reset answered it). Also notes how much was acknowledged, for the
        requests pipelined behind it. Linux only; elsewhere only what DAL still buffers counts
        as unread."""
        transport = self.transport
        if self.unsent or transport is None or self.request_end == NOT_WRITTEN:
            return True
        self.acked = self.written - unacked_bytes(transport)
        return self.acked < self.request_end

    def write(self, data: bytes) -> None:
        """Send framed packets (a lost connection raises the 2013 BackendError)."""
        if self.closed or self.transport is None:
            raise lost_during_query(self.instance)
        self.written += len(data)
        self.transport.write(data)

    def _finish(self, scanner: ResponseScanner) -> bool:
        """The answer in flight is complete: report it. True when a pipelined request is
        now the one in flight (its answer may follow in the same chunk)."""
        done = self._done
        self.status = scanner.status
        self.last_used = now = monotonic()
        breaker = self.breaker
        if breaker is not None:
            breaker.success(now - self.sent_at, now)
        flights = self._flights
        if flights:  # the next request's answer comes next, scanned by a scanner of its own
            flight = flights.popleft()
            self._scanner = ResponseScanner(deprecate_eof=False, shape=flight.shape)
            self._sink, self._done, self._rename = flight.sink, flight.done, flight.rename
            self.request, self._shape, self.sent_at = flight.packets, flight.shape, flight.sent_at
            self.request_end = flight.end
            if done is not None:
                done(self, scanner)
            return True
        self._sink = None
        self._done = None
        self.shared = False
        if self.state is BUSY:  # `command_done`'s step, taken inline
            self.state = READY
            self.busy = False
        else:
            self.command_done()
        if done is not None:
            done(self, scanner)
        return False

    def _fail(self, reason: str) -> None:
        self.mark_closed()
        if self.transport is not None:
            self.transport.abort()
        done = self._done
        self._sink = None
        self._done = None
        self._collect = None
        self.shared = False
        self.command_done()
        flights, self._flights, self._outbox = self._flights, deque(), []
        if done is not None:
            # A connection found closed before use is not a failure of a call: the pool
            # replaces it, as one that died idle.
            if self.breaker is not None and not self.aborted and not self.unsent:
                self.breaker.failure()
            done(self, None)
        acked = self.acked
        for flight in flights:  # each pipelined request fails too, retried only if unread
            self._scanner = ResponseScanner(deprecate_eof=False, shape=flight.shape)
            self.request, self._shape, self._rename = flight.packets, flight.shape, flight.rename
            self.unread = flight.end == NOT_WRITTEN or (acked is not None and acked < flight.end)
            flight.done(self, None)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(None)


def _discard(data: bytes) -> None:
    """The sink of a response whose client is gone: the connection still reads it to the end."""
