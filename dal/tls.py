"""TLS for clients: the server SSL context, and DAL's own small TLS transport.

A client asks for TLS with an SSLRequest packet and starts its TLS handshake right after it,
without waiting for an answer; part of that handshake may already have been read with the
SSLRequest. `upgrade_server` puts a `TLSTransport` between the TCP transport and the session:
it is the TCP transport's protocol (encrypted bytes in) and the session's transport
(plaintext out), so the session protocol object keeps receiving decrypted data in
``data_received``.

Why not ``loop.start_tls``: uvloop's TLS layer allocates a 256 KiB read buffer for every
connection and was measured at 25 KiB of DAL memory per idle TLS client above a plain one.
This layer keeps one `ssl.SSLObject` and its two memory BIOs, and bounds what those BIOs
keep after traffic: encrypted input is fed and plaintext output written in slices of
`SLICE` bytes (a memory BIO never shrinks back from the largest write it held).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from config.model import ServerTLS

log = logging.getLogger("dal.tls")

SLICE = 4096  # bytes of ciphertext fed, or of plaintext encrypted, at a time
READ = 65536  # plaintext read from the TLS object at a time


def server_context(tls: ServerTLS) -> ssl.SSLContext:
    """The context DAL serves clients with; raises OSError/ssl.SSLError on bad files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    # MySQL clients do not resume TLS sessions: TLS 1.3 tickets would only cost every
    # handshake. (OP_NO_TICKET would do the same for TLS 1.2, but then OpenSSL keeps each
    # session in the context's cache instead: 20,480 of them, about 1 KiB each.)
    context.num_tickets = 0
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


async def upgrade_server(transport: asyncio.Transport, protocol: asyncio.Protocol,
                         context: ssl.SSLContext, early: bytes,
                         timeout: float) -> TLSTransport:
    """Run the server side of a TLS handshake on ``transport``; returns the TLS transport,
    whose protocol is ``protocol``. ``early``: bytes of the client's handshake already read.
    Raises OSError (ssl.SSLError, ConnectionResetError) or TimeoutError; the connection is
    then aborted."""
    tls = TLSTransport(transport, protocol, context)
    transport.set_protocol(tls)
    if early:
        tls.data_received(early)
    transport.resume_reading()
    try:
        await asyncio.wait_for(tls.handshake, timeout)
    except BaseException:
        transport.abort()
        raise
    return tls


class TLSTransport(asyncio.Transport, asyncio.Protocol):
    """Server-side TLS over a TCP transport: its protocol below, a transport above."""

    __slots__ = ("_app", "_backlog", "_closing", "_in", "_out", "_paused", "_raw", "_tls",
                 "handshake")

    def __init__(self, raw: asyncio.Transport, app: asyncio.Protocol,
                 context: ssl.SSLContext) -> None:
        self._raw = raw
        self._app = app
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._paused = False  # the session paused reading
        self._closing = False
        self._backlog = memoryview(b"")  # ciphertext not fed yet (the session paused)
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- below: the TCP transport's protocol -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._backlog = memoryview(bytes(self._backlog) + data if self._backlog else data)
        self._pump()

    def eof_received(self) -> bool | None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionResetError("client closed during the TLS "
                                                              "handshake"))
            return None
        return self._app.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionResetError(
                "client went away during the TLS handshake"))
        self._app.connection_lost(exc)  # the session saw connection_made: it leaves the server

    def pause_writing(self) -> None:
        pause = getattr(self._app, "pause_writing", None)
        if pause is not None:
            pause()

    def resume_writing(self) -> None:
        resume = getattr(self._app, "resume_writing", None)
        if resume is not None:
            resume()

    def _pump(self) -> None:
        """Feed received ciphertext slice by slice, finishing the handshake and handing
        plaintext to the session, until all is fed or the session pauses reading."""
        try:
            while self._backlog and not self._paused and not self._closing:
                self._in.write(self._backlog[:SLICE])
                self._backlog = self._backlog[SLICE:]
                if not self.handshake.done() and not self._shake():
                    continue
                self._deliver()
        except ssl.SSLError as exc:
            self._flush()  # the alert, if OpenSSL wrote one
            if not self.handshake.done():
                self.handshake.set_exception(exc)
            else:
                log.debug("TLS error from %s: %s", self._raw.get_extra_info("peername"), exc)
            self.abort()
            return
        if not self._backlog:
            self._backlog = memoryview(b"")  # let go of the bytes it viewed

    def _shake(self) -> bool:
        """Advance the handshake; True once it is complete."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        self._flush()
        self.handshake.set_result(None)
        return True

    def _deliver(self) -> None:
        tls, app = self._tls, self._app
        while not self._paused and not self._closing:
            try:
                chunk = tls.read(READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify
                if not app.eof_received():
                    self.close()
                break
            if not chunk:
                break
            app.data_received(chunk)
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data and not self._raw.is_closing():
            self._raw.write(data)

    # -- above: the session's transport ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        view = memoryview(data)
        tls, out, parts = self._tls, self._out, []
        try:
            for start in range(0, len(view), SLICE):
                tls.write(view[start:start + SLICE])
                parts.append(out.read())
        except ssl.SSLError as exc:
            log.debug("TLS write failed: %s", exc)
            self.abort()
            return
        if parts and not self._raw.is_closing():
            self._raw.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def pause_reading(self) -> None:
        self._paused = True
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._raw.resume_reading()
        if self._backlog or self._tls.pending():
            asyncio.get_running_loop().call_soon(self._resume_pump)

    def _resume_pump(self) -> None:
        if self._backlog:
            self._pump()
        elif not self._paused and not self._closing:
            self._deliver()

    def is_reading(self) -> bool:
        return not self._paused

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close; close() sends close_notify

    def write_eof(self) -> None:
        raise NotImplementedError("TLS cannot half-close")

    def close(self) -> None:
        """Send close_notify, then close the TCP connection once written."""
        if self._closing:
            return
        self._closing = True
        # No answer is awaited: close_notify is in the BIO (unless TLS never started).
        with contextlib.suppress(ssl.SSLError, ValueError):
            self._tls.unwrap()
        self._flush()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "cipher":
            return self._tls.cipher()
        if name == "peercert":
            return self._tls.getpeercert()
        return self._raw.get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol  # type: ignore[assignment]

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)
