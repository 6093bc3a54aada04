"""TLS for clients: the server SSL context, and the server-side upgrade of a client connection.

A client asks for TLS with an SSLRequest packet and starts its TLS handshake right after it,
without waiting for an answer. The session pauses reading after each login packet, so the
ClientHello is often still in the socket when ``loop.start_tls`` (uvloop's TLS layer) takes
over. Often it is not: it arrived in the same read as the SSLRequest (pymysql sends both
back to back), and ``start_tls`` has no parameter for bytes already read. Then they are fed
to the TLS layer start_tls installed, right after its handshake has started. Either way the
session protocol object stays the application protocol: it keeps receiving (decrypted) data
in ``data_received`` after the upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from config.model import ServerTLS

log = logging.getLogger("dal.tls")


def server_context(tls: ServerTLS) -> ssl.SSLContext:
    """The context DAL serves clients with; raises OSError/ssl.SSLError on bad files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    return context


async def upgrade_server(transport: asyncio.Transport, protocol: asyncio.BaseProtocol,
                         context: ssl.SSLContext, early: bytes,
                         timeout: float) -> asyncio.Transport:
    """Run the server side of a TLS handshake on ``transport``; returns the TLS transport.

    ``early``: bytes of the client's handshake already read from the socket.
    """
    loop = asyncio.get_running_loop()
    log.debug("TLS upgrade; %d bytes of the client's handshake already read", len(early))
    upgrade = asyncio.ensure_future(loop.start_tls(
        transport, protocol, context, server_side=True, ssl_handshake_timeout=timeout))
    if early:
        # start_tls's first step installs its SSL protocol on the transport and schedules
        # the start of the handshake; the bytes go in right after that, before the client
        # can send anything more (it waits for the ServerHello).
        await asyncio.sleep(0)
        loop.call_soon(_feed, transport, protocol, early)
    return await upgrade  # type: ignore[return-value]


def _feed(transport: asyncio.Transport, app_protocol: asyncio.BaseProtocol,
          early: bytes) -> None:
    """Give the TLS layer the handshake bytes that were read before it took the socket."""
    tls = transport.get_protocol()
    if tls is app_protocol or not hasattr(tls, "buffer_updated"):
        log.error("TLS upgrade: the TLS layer is not in place; closing the connection")
        transport.abort()
        return
    fed = 0
    while fed < len(early):  # the TLS layer's buffer may be smaller than what arrived
        view = tls.get_buffer(len(early) - fed)
        n = min(len(view), len(early) - fed)
        view[:n] = early[fed:fed + n]
        tls.buffer_updated(n)
        fed += n
