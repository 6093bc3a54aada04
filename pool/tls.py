"""TLS from DAL to a backend: the SSL context that instances.<name>.tls asks for."""

from __future__ import annotations

import ssl

from config.model import BackendTLS


def client_context(tls: BackendTLS) -> ssl.SSLContext:
    """The context DAL connects to one backend instance with."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(tls.ca)
        context.check_hostname = tls.check_hostname
    if tls.cert is not None:
        context.load_cert_chain(tls.cert, tls.key)
    return context
