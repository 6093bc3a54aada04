"""Relay sinks that rewrite column definitions: a shard's schema becomes the logical one.

A single-shard result names ``user_017`` as the schema of its columns; the client must see
``trade``. Only the column-definition packets at the head of a result are rewritten, from a
cache keyed by their raw bytes; rows pass through untouched, as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable

from dal.wire.buffer import Reader, lenenc_bytes
from dal.wire.results import COLUMNS, DONE, FIRST, ResponseScanner

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


def rename_result(data: bytes, new_schema: bytes) -> bytes:
    """Rewrite the column definitions of the result set at the head of ``data``."""
    if len(data) < 5 or data[4] in (0x00, 0xFF, 0xFB):
        return data
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
        pending += data
        if self.scanner.state in (FIRST, COLUMNS) and self.scanner.state != DONE:
            return
        self._pending = None
        self.sink(rename_result(bytes(pending), self.new_schema))
