"""Collected backend responses decoded: OK fields, or columns and text rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from dal.wire.framing import PacketBuffer
from dal.wire.messages import ERR, OK, is_eof, is_err
from pool.errors import BackendError
from router.rows.buffer import Reader
from router.rows.columns import ColumnDefinition, decode_text_row
from router.rows.errors import ProtocolError


@dataclass(slots=True)
class Result:
    """A decoded response: OK fields, or columns and text rows."""

    columns: list[ColumnDefinition] = field(default_factory=list)
    rows: list[list[bytes | None]] = field(default_factory=list)
    ok: OK | None = None
    status: int = 0


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
