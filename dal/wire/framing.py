"""Packet framing: 3-byte length, 1-byte sequence id, payloads split at 16 MiB.

`PacketBuffer` accumulates bytes from a stream and yields whole logical packets (a payload of
0xFFFFFF bytes continues in the next packet; an exact multiple ends with an empty packet).
`frame()` does the reverse.
"""

from __future__ import annotations

from dal.wire.constants import MAX_PAYLOAD
from router.rows.errors import ProtocolError


def frame(payload: bytes | bytearray | memoryview, seq: int) -> bytes:
    """Frame a payload as one or more packets starting at sequence id ``seq``."""
    n = len(payload)
    if n < MAX_PAYLOAD:
        return n.to_bytes(3, "little") + bytes((seq & 0xFF,)) + payload
    parts = []
    view = memoryview(payload)
    offset = 0
    while True:
        chunk = view[offset:offset + MAX_PAYLOAD]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq & 0xFF,)))
        parts.append(bytes(chunk))
        seq += 1
        offset += len(chunk)
        if len(chunk) < MAX_PAYLOAD:
            break
    return b"".join(parts)


def packet_count(payload_len: int) -> int:
    """How many packets a payload of this length is framed into."""
    return payload_len // MAX_PAYLOAD + 1


class PacketBuffer:
    """Reassembles logical packets from stream bytes.

    ``feed(data)`` appends; ``next_packet()`` returns ``(first_seq, last_seq, payload)`` of the
    next complete logical packet, or None. A payload larger than ``max_payload`` raises
    `ProtocolError` (code 1153) as soon as its size is known.

    ``held`` is the buffer itself, for a test with no call: it is empty exactly when nothing
    is pending (bytes returned as packets are dropped once none is left).
    """

    __slots__ = ("_buf", "_pos", "held", "max_payload")

    def __init__(self, max_payload: int = 1 << 30) -> None:
        self._buf = self.held = bytearray()
        self._pos = 0
        self.max_payload = max_payload

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def pending(self) -> int:
        """Bytes received and not yet returned as packets."""
        return len(self._buf) - self._pos

    def take_rest(self) -> bytes:
        """Every byte not returned as a packet yet, removed from the buffer."""
        rest = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = 0
        return rest

    def next_packet(self) -> tuple[int, int, bytes] | None:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if end - pos < 4:
            self._compact()
            return None
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        first_seq = buf[pos + 3]
        if length < MAX_PAYLOAD:
            self._check_size(length)
            if end - pos - 4 < length:
                self._compact()
                return None
            payload = bytes(buf[pos + 4:pos + 4 + length])
            self._pos = pos + 4 + length
            if self._pos == end:
                buf.clear()
                self._pos = 0
            return first_seq, first_seq, payload
        return self._next_split(first_seq)

    def _next_split(self, first_seq: int) -> tuple[int, int, bytes] | None:
        """A payload split over several packets; returned only when all have arrived."""
        buf = self._buf
        pos = self._pos
        parts = []
        total = 0
        seq = first_seq
        expected = first_seq
        while True:
            if len(buf) - pos < 4:
                self._check_size(total)
                self._compact()
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            seq = buf[pos + 3]
            if seq != expected:
                raise ProtocolError(
                    f"packets out of order: sequence id {seq}, expected {expected}",
                    code=1156, sqlstate="08S01",
                )
            total += length
            self._check_size(total)
            if len(buf) - pos - 4 < length:
                self._compact()
                return None
            parts.append((pos + 4, pos + 4 + length))
            pos += 4 + length
            expected = (expected + 1) & 0xFF
            if length < MAX_PAYLOAD:
                break
        payload = b"".join(bytes(buf[a:b]) for a, b in parts)
        self._pos = pos
        self._compact()
        return first_seq, seq, payload

    def _check_size(self, size: int) -> None:
        if size > self.max_payload:
            raise ProtocolError(
                f"Got a packet bigger than 'max_allowed_packet' bytes "
                f"({size} > {self.max_payload})",
                code=1153, sqlstate="08S01",
            )

    def _compact(self) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
