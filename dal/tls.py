"""TLS for clients: the server SSL context, and the server-side upgrade of a client connection.

A client asks for TLS with an SSLRequest packet and starts its TLS handshake right after it,
without waiting for an answer. The session pauses reading after each login packet, so the
bytes of that handshake are usually still in the socket when the upgrade starts, and
``loop.start_tls`` (uvloop's TLS layer) takes over. If they arrived in the same read as the
SSLRequest, they are already in DAL's buffer; ``start_tls`` has no way to take them, so the
upgrade then wires asyncio's own `SSLProtocol` by hand and feeds it those bytes first.
Either way the session protocol object stays the application protocol: it keeps receiving
(decrypted) data in ``data_received`` after the upgrade.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto

from config.model import ServerTLS


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
    if not early:
        return await loop.start_tls(transport, protocol, context, server_side=True,
                                    ssl_handshake_timeout=timeout)  # type: ignore[return-value]
    waiter = loop.create_future()
    tls = sslproto.SSLProtocol(loop, protocol, context, waiter, server_side=True,
                               call_connection_made=False, ssl_handshake_timeout=timeout)
    transport.pause_reading()
    transport.set_protocol(tls)
    tls.connection_made(transport)
    fed = 0
    while fed < len(early):  # the SSL buffer may be smaller than what arrived
        view = tls.get_buffer(len(early) - fed)
        n = min(len(view), len(early) - fed)
        view[:n] = early[fed:fed + n]
        tls.buffer_updated(n)
        fed += n
    transport.resume_reading()
    await waiter
    return tls._get_app_transport()
