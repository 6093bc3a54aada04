"""Collected backend responses decoded: OK fields, or columns and text rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    rows: Sequence[list[bytes | None]] = field(default_factory=list)
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


def decode_lazily(response: bytes, extended: bool = False,
                  known: dict[int, list[ColumnDefinition]] | None = None) -> Result:
    """`decode_response`, but the rows stay undecoded until read (`LazyRows`): a merge under
    ``ORDER BY ... LIMIT n`` over many shards reads n rows and the head of each shard's, not
    all of them. An ERR anywhere in the response still raises here.

    ``known``: column definitions by column count, shared by the answers of one statement on
    many shards (they differ in the shard's database name only, which the merge, reading the
    first shard's, never uses): decoded for the first answer, reused for the others."""
    payloads = split_packets(response)
    last = payloads[-1] if payloads else b""
    if is_err(last):
        err = ERR.decode(last)
        raise BackendError(err.code, err.message, err.sqlstate)
    ncols = payloads[0][0] if payloads else 0
    if not 0 < ncols < 0xFB or not is_eof(last):
        return decode_response(response, extended)  # an OK, or a wide result: as ever
    result = Result()
    end = 1 + ncols
    columns = None if known is None else known.get(ncols)
    if columns is None:
        columns = [ColumnDefinition.decode(p, extended) for p in payloads[1:end]]
        if known is not None:
            known[ncols] = columns
    result.columns = columns
    if end < len(payloads) - 1 and is_eof(payloads[end]):
        end += 1
    result.status = int.from_bytes(last[3:5], "little") if len(last) >= 5 else 0
    result.rows = LazyRows(payloads[end:-1], ncols)
    return result


class LazyRows(Sequence[list[bytes | None]]):
    """Text rows kept as their packets, each decoded when it is read."""

    __slots__ = ("_columns", "_payloads")

    def __init__(self, payloads: list[bytes], columns: int) -> None:
        self._payloads = payloads
        self._columns = columns

    def __len__(self) -> int:
        return len(self._payloads)

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        if isinstance(index, slice):
            return [decode_text_row(p, self._columns) for p in self._payloads[index]]
        return decode_text_row(self._payloads[index], self._columns)

    def __iter__(self) -> Iterator[list[bytes | None]]:
        columns = self._columns
        for payload in self._payloads:
            yield decode_text_row(payload, columns)


def split_packets(response: bytes) -> list[bytes]:
    """Packet payloads of a collected response: a loop over the length headers (the common
    case, packets under 16 MiB), else `decode_packets`."""
    payloads = []
    pos, n = 0, len(response)
    while pos + 4 <= n:
        length = response[pos] | response[pos + 1] << 8 | response[pos + 2] << 16
        if length == 0xFFFFFF:
            return decode_packets(response)
        start = pos + 4
        pos = start + length
        payloads.append(response[start:pos])
    if pos != n:
        raise ProtocolError("response ends inside a packet")
    return payloads


def decode_packets(response: bytes) -> list[bytes]:
    """Split a collected response into packet payloads."""
    buf = PacketBuffer()
    buf.feed(response)
    payloads = []
    while (packet := buf.next_packet()) is not None:
        payloads.append(packet[2])
    return payloads
