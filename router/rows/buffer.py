"""Length-encoded integers and strings: a bounds-checked reader and plain writers.

Every read checks the bounds and raises `ProtocolError`, never IndexError or struct.error, so
that arbitrary bytes can only produce the codec's own error.
"""

from __future__ import annotations

import struct

from router.rows.errors import ProtocolError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Reader:
    """Reads protocol fields from one payload, front to back."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.data = bytes(data)
        self.pos = pos

    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ProtocolError(f"truncated packet: wanted {n} bytes at offset {self.pos}, "
                                f"{len(self.data) - self.pos} left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError(f"truncated packet: wanted 1 byte at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def u24(self) -> int:
        b = self._take(3)
        return b[0] | b[1] << 8 | b[2] << 16

    def u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self._take(8))[0]

    def fixed(self, n: int) -> bytes:
        """Exactly n bytes."""
        return self._take(n)

    def rest(self) -> bytes:
        """Everything left."""
        return self._take(self.remaining())

    def null_terminated(self) -> bytes:
        """Bytes up to a NUL, which is consumed and not returned."""
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolError(f"missing NUL terminator after offset {self.pos}")
        chunk = self.data[self.pos:end]
        self.pos = end + 1
        return chunk

    def null_terminated_or_rest(self) -> bytes:
        """Bytes up to a NUL or the end (some clients omit the final NUL)."""
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            return self.rest()
        chunk = self.data[self.pos:end]
        self.pos = end + 1
        return chunk

    def lenenc_int(self) -> int | None:
        """A length-encoded integer; None for the NULL marker 0xFB."""
        first = self.u8()
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.u16()
        if first == 0xFD:
            return self.u24()
        if first == 0xFE:
            return self.u64()
        raise ProtocolError("0xFF is not a valid length-encoded integer")

    def lenenc_bytes(self) -> bytes | None:
        """A length-encoded string; None for NULL."""
        n = self.lenenc_int()
        if n is None:
            return None
        return self._take(n)

    def lenenc_str(self) -> bytes:
        """A length-encoded string where NULL is not allowed."""
        value = self.lenenc_bytes()
        if value is None:
            raise ProtocolError(f"unexpected NULL string at offset {self.pos - 1}")
        return value


def lenenc_int(value: int) -> bytes:
    """Encode a length-encoded integer."""
    if value < 0:
        raise ValueError("length-encoded integers are unsigned")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + _U16.pack(value)
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    if value < 1 << 64:
        return b"\xfe" + _U64.pack(value)
    raise ValueError("length-encoded integers hold at most 64 bits")


def lenenc_bytes(value: bytes | None) -> bytes:
    """Encode a length-encoded string; None becomes the NULL marker 0xFB."""
    if value is None:
        return b"\xfb"
    return lenenc_int(len(value)) + value


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)
