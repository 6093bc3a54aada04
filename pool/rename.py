"""Relay sinks that rewrite column definitions: a shard's schema becomes the logical one.

A single-shard result names ``user_017`` as the schema of its columns; the client must see
``trade``. Only the column-definition packets at the head of a result are rewritten: each
statement shape and shard keeps its last header and the rewrite of it (`HeaderRenamer`); rows
pass through untouched, as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from dal.wire.results import DONE, ResponseScanner
from router.rows.buffer import Reader, lenenc_bytes

_cache: dict[tuple[bytes, bytes], bytes] = {}
MAX_CACHED = 20000


def rename_column(payload: bytes, new_schema: bytes) -> bytes:
    """A column definition payload with its schema replaced (cached by the raw bytes)."""
    key = (payload, new_schema)
    found = _cache.get(key)
    if found is not None:
        return found
    r = Reader(payload)
    catalog = r.lenenc_str()
    r.lenenc_str()  # the shard's schema
    renamed = lenenc_bytes(catalog) + lenenc_bytes(new_schema) + payload[r.pos:]
    if len(_cache) >= MAX_CACHED:
        _cache.clear()
    _cache[key] = renamed
    return renamed


def header_end(data: bytes | bytearray) -> int | None:
    """Where the column definitions at the head of a response end: 0 for an OK/ERR reply,
    None while the header has not fully arrived."""
    if len(data) < 5:
        return None
    if data[4] in (0x00, 0xFF, 0xFB):
        return 0
    first = data[4]
    if first > 0xFA or data[0] != 1 or data[1] or data[2]:  # odd header: decode it slowly
        return -1
    pos = 5
    for _ in range(first):
        if pos + 4 > len(data):
            return None
        pos += 4 + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
    return pos if pos <= len(data) else None


def _rename_slow(data: bytes, new_schema: bytes) -> bytes:
    out = []
    pos = 0
    length = data[0] | data[1] << 8 | data[2] << 16
    count = Reader(data[4:4 + length]).lenenc_int() or 0
    pos = 4 + length
    out.append(data[:pos])
    for _ in range(count):
        length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
        seq = data[pos + 3]
        body = rename_column(data[pos + 4:pos + 4 + length], new_schema)
        out.append(len(body).to_bytes(3, "little") + bytes((seq,)) + body)
        pos += 4 + length
    out.append(data[pos:])
    return b"".join(out)


class HeaderRenamer:
    """Renames the headers of one statement shape on one shard. The backend sends the same
    header every time, so the last one seen and its rewrite are kept: a header that starts the
    next response is swapped with one comparison."""

    __slots__ = ("new_schema", "raw", "renamed")

    def __init__(self, new_schema: bytes) -> None:
        self.new_schema = new_schema
        self.raw = b""
        self.renamed = b""

    def apply(self, data: bytes) -> bytes | None:
        """``data`` with its header renamed, or None while the header is incomplete."""
        raw = self.raw
        if raw and data.startswith(raw):
            return self.renamed + data[len(raw):]
        end = header_end(data)
        if end is None:
            return None
        if end <= 0:
            return data if end == 0 else _rename_slow(data, self.new_schema)
        self.raw = data[:end]
        self.renamed = _rename_slow(self.raw, self.new_schema)
        return self.renamed + data[end:]


class RenamingSink:
    """Holds back a response whose header spans chunks until the header is complete, relays
    it renamed by ``renamer``, then everything else raw."""

    __slots__ = ("_pending", "renamer", "scanner", "sink")

    def __init__(self, sink: Callable[[bytes], None], scanner: ResponseScanner,
                 renamer: HeaderRenamer) -> None:
        self.sink = sink
        self.scanner = scanner
        self.renamer = renamer
        self._pending: bytearray | None = bytearray()

    def __call__(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self.sink(data)
            return
        pending += data
        renamed = self.renamer.apply(bytes(pending))
        if renamed is None:
            if self.scanner.state != DONE:
                return
            renamed = bytes(pending)  # the response ended without a whole header
        self._pending = None
        self.sink(renamed)
