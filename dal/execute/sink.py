"""Result sinks: where the framed packets of a command's answer go.

The client's transport is the ordinary sink. A multi-statement batch gives the session a
`BatchSink` while one of its statements runs, so that the statement's packets can be renumbered
and flagged (SERVER_MORE_RESULTS_EXISTS) before they go out; nothing swaps transports.
"""

from __future__ import annotations

from collections.abc import Callable


class ClientSink:
    """Writes to the client's transport (a closing transport drops what is written)."""

    __slots__ = ("transport", "write")

    def __init__(self, transport: object) -> None:
        self.transport = transport
        self.write: Callable[[bytes], None] = self._write

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():  # type: ignore[attr-defined]
            transport.write(data)  # type: ignore[attr-defined]


class BatchSink:
    """Collects one batch statement's packets."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write: Callable[[bytes], None] = self._write

    def _write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
