"""Pipelining: requests of other sessions written behind the one in flight on a connection.

A `Flight` is one relayed request queued behind the connection's current one: its packets, the
sink its answer goes to and the callback at its end. The backend answers requests in the order
they arrive, so the connection relays each response to the flight at the head of its queue and
moves on to the next when the scanner finds the end.

Flights queued in the same event-loop turn go out in one write. Each records the
byte offset its request ends at on the connection, so that after a loss DAL knows which of
them the backend cannot have read (`unacked_bytes`: what its kernel never acknowledged); only
those may run again elsewhere.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from dal.wire.results import ResponseScanner
    from pool.rename import HeaderRenamer

NOT_WRITTEN = -1


class Flight:
    """One request queued behind the connection's current one."""

    __slots__ = ("done", "end", "packets", "rename", "sent_at", "shape", "sink")

    def __init__(self, packets: bytes, sink: Callable[[bytes], None],
                 done: Callable[..., None], shape: int,
                 rename: HeaderRenamer | None) -> None:
        self.packets = packets
        self.sink = sink
        self.done: Callable[[object, ResponseScanner | None], None] = done
        self.shape = shape
        self.rename = rename
        self.sent_at = time.monotonic()
        self.end = NOT_WRITTEN  # the connection's byte count once this request is written


def unacked_bytes(transport: asyncio.Transport) -> int:
    """Bytes written to ``transport`` that the peer's kernel has not acknowledged: still in
    the transport's buffer, or in the socket's send queue (Linux TIOCOUTQ). Where the socket
    cannot be asked, the buffered bytes only: a lower bound, so that nothing is taken for
    unread that may have been read."""
    buffered = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return buffered
    try:
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return buffered
    return buffered + queued
