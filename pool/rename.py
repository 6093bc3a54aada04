"""Relay sinks that rewrite column definitions: a shard's schema becomes the logical one.

A single-shard result names ``user_017`` as the schema of its columns; the client must see
``trade``. Only the column-definition packets at the head of a result are rewritten, from a
cache keyed by their raw bytes; rows pass through untouched, as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from dal.wire.buffer import Reader, lenenc_bytes
from dal.wire.results import DONE, ResponseScanner

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


_headers: dict[bytes, dict[bytes, bytes]] = {}


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


def rename_result(data: bytes, new_schema: bytes) -> bytes:
    """Rewrite the column definitions of the result set at the head of ``data`` (which holds
    the whole header).

    The header (column count and definitions, with their sequence ids) of a statement shape is
    the same on every execution, so the rewritten header is cached by its raw bytes."""
    pos = header_end(data)
    if not pos:
        return data
    if pos < 0:
        return _rename_slow(data, new_schema)
    cache = _headers.get(new_schema)
    if cache is None:
        cache = _headers[new_schema] = {}
    head = data[:pos]
    renamed = cache.get(head)
    if renamed is None:
        if len(cache) >= MAX_CACHED:
            cache.clear()
        renamed = cache[head] = _rename_slow(head, new_schema)
    return renamed + data[pos:]


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
    """Holds a response back until its column definitions are complete, rewrites them, then
    relays everything else raw."""

    __slots__ = ("_pending", "new_schema", "scanner", "sink")

    def __init__(self, sink: Callable[[bytes], None], scanner: ResponseScanner,
                 new_schema: bytes) -> None:
        self.sink = sink
        self.scanner = scanner
        self.new_schema = new_schema
        self._pending: bytearray | None = bytearray()

    def __call__(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self.sink(data)
            return
        if not pending and header_end(data) is not None:  # usual: the header in one chunk
            self._pending = None
            self.sink(rename_result(data, self.new_schema))
            return
        pending += data
        if header_end(pending) is None and self.scanner.state != DONE:
            return
        self._pending = None
        self.sink(rename_result(bytes(pending), self.new_schema))
