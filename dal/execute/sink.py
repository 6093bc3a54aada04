"""Result sinks: where the framed packets of a command's answer go.

The client's transport is the ordinary sink. A multi-statement batch gives the session a
`BatchSink` while one of its statements runs, so that the statement's packets can be renumbered
and flagged (SERVER_MORE_RESULTS_EXISTS) before they go out; nothing swaps transports.
"""

from __future__ import annotations

from collections.abc import Callable


class ClientSink:
    """Writes to the client's transport. ``write`` is the transport's own (a C method on the
    hot path, as asyncio's transports drop what is written once they are closing)."""

    __slots__ = ("_transport", "write")

    def __init__(self, transport: object) -> None:
        self._transport = None
        self.write: Callable[[bytes], None] = _nowhere
        self.transport = transport

    @property
    def transport(self) -> object:
        """The client's transport (the TLS one after an upgrade)."""
        return self._transport

    @transport.setter
    def transport(self, transport: object) -> None:
        self._transport = transport
        self.write = _nowhere if transport is None else transport.write  # type: ignore[attr-defined]


def _nowhere(data: bytes) -> None:
    """Before the connection is made (or after it is gone): nothing to write to."""


class BatchSink:
    """Collects one batch statement's packets."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write: Callable[[bytes], None] = self._write

    def _write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
