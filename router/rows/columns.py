"""Column definitions (ColumnDefinition41, with MariaDB's extended type info) and text rows.

Decoding raises only `ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.rows.buffer import Reader, lenenc_bytes, u16, u32
from router.rows.errors import ProtocolError
from router.rows.types import UTF8MB4_GENERAL_CI


@dataclass(slots=True)
class ColumnDefinition:
    """ColumnDefinition41."""

    name: bytes
    type: int
    schema: bytes = b""
    table: bytes = b""
    org_table: bytes = b""
    org_name: bytes = b""
    charset: int = UTF8MB4_GENERAL_CI
    length: int = 0
    flags: int = 0
    decimals: int = 0
    catalog: bytes = b"def"
    default: bytes | None = None
    # MariaDB's extended type info (MARIADB_CLIENT_EXTENDED_METADATA): its entries, each
    # key int<1> + lenenc value; None when the connection did not negotiate it.
    extended: bytes | None = None

    def encode(self, extended: bool | None = None) -> bytes:
        """The payload; ``extended``: with the extended type info block (empty when the
        definition has none) or without it, for a client that did or did not negotiate it;
        None: as decoded."""
        parts = [lenenc_bytes(self.catalog), lenenc_bytes(self.schema), lenenc_bytes(self.table),
                 lenenc_bytes(self.org_table), lenenc_bytes(self.name),
                 lenenc_bytes(self.org_name)]
        if extended is None:
            extended = self.extended is not None
        if extended:
            parts.append(lenenc_bytes(self.extended or b""))
        parts += [b"\x0c", u16(self.charset), u32(self.length), bytes((self.type,)),
                  u16(self.flags), bytes((self.decimals,)), b"\x00\x00"]
        if self.default is not None:
            parts.append(lenenc_bytes(self.default))
        return b"".join(parts)

    def type_info(self) -> dict[int, bytes]:
        """The extended type info entries: EXTENDED_TYPE_NAME / EXTENDED_FORMAT -> value."""
        out: dict[int, bytes] = {}
        r = Reader(self.extended or b"")
        while r.remaining():
            key = r.u8()
            out[key] = r.lenenc_str()
        return out

    @classmethod
    def decode(cls, payload: bytes, extended: bool = False) -> ColumnDefinition:
        """``extended``: the connection negotiated MARIADB_CLIENT_EXTENDED_METADATA."""
        r = Reader(payload)
        catalog = r.lenenc_str()
        schema = r.lenenc_str()
        table = r.lenenc_str()
        org_table = r.lenenc_str()
        name = r.lenenc_str()
        org_name = r.lenenc_str()
        info = r.lenenc_str() if extended else None
        fixed_len = r.lenenc_int()
        if fixed_len is None or fixed_len < 10:
            raise ProtocolError("column definition: bad fixed-length block")
        block = Reader(r.fixed(fixed_len))
        charset = block.u16()
        length = block.u32()
        col_type = block.u8()
        flags = block.u16()
        decimals = block.u8()
        default = r.lenenc_bytes() if r.remaining() else None
        return cls(name, col_type, schema, table, org_table, org_name, charset, length, flags,
                   decimals, catalog, default, info)


def column_schema(payload: bytes) -> bytes:
    """The schema of a column definition payload (with or without extended type info)."""
    r = Reader(payload)
    r.lenenc_str()  # catalog
    return r.lenenc_str()


def strip_extended(payload: bytes) -> bytes:
    """A column definition payload made with MARIADB_CLIENT_EXTENDED_METADATA, without its
    extended type info: what a client that did not ask for it reads."""
    r = Reader(payload)
    for _ in range(6):  # catalog, schema, table, org_table, name, org_name
        r.lenenc_str()
    start = r.pos
    r.lenenc_str()
    return payload[:start] + payload[r.pos:]


def encode_text_row(values: list[bytes | None]) -> bytes:
    """A text-protocol row: each value a length-encoded string, NULL as 0xFB."""
    return b"".join(lenenc_bytes(v) for v in values)


def decode_text_row(payload: bytes, columns: int) -> list[bytes | None]:
    """Split a text-protocol row into ``columns`` values."""
    r = Reader(payload)
    values = [r.lenenc_bytes() for _ in range(columns)]
    if r.remaining():
        raise ProtocolError(f"text row has {r.remaining()} bytes after its {columns} values")
    return values
