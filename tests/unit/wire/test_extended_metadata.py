"""MariaDB's extended type info in column definitions (MARIADB_CLIENT_EXTENDED_METADATA): decoded,
re-encoded byte for byte, and stripped for a client that did not ask for it. The samples are
what MariaDB 10.11 sent for `SELECT j, i, n` from a table (j JSON, i INET6, n INT)."""

from __future__ import annotations

from dal.wire.constants import EXTENDED_FORMAT, EXTENDED_TYPE_NAME
from router.rows.columns import ColumnDefinition, strip_extended

JSON = (b"\x03def\x05trade\x02tj\x02tj\x01j\x01j\x06\x01\x04json"
        b"\x0c-\x00\xff\xff\xff\xff\xfc\x90\x00\x00\x00\x00")
INET6 = (b"\x03def\x05trade\x02tj\x02tj\x01i\x01i\x07\x00\x05inet6"
         b"\x0c-\x00\x9c\x00\x00\x00\xfe\xa0\x00\x00\x00\x00")
INT = b"\x03def\x05trade\x02tj\x02tj\x01n\x01n\x00\x0c?\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00"


def test_type_info_is_read_and_written_back_unchanged() -> None:
    for payload in (JSON, INET6, INT):
        column = ColumnDefinition.decode(payload, extended=True)
        assert column.encode() == payload
    assert ColumnDefinition.decode(JSON, extended=True).type_info() == {EXTENDED_FORMAT: b"json"}
    assert ColumnDefinition.decode(INET6, extended=True).type_info() == {
        EXTENDED_TYPE_NAME: b"inet6"}
    assert ColumnDefinition.decode(INT, extended=True).type_info() == {}


def test_stripped_definitions_are_the_plain_ones() -> None:
    for payload in (JSON, INET6, INT):
        extended = ColumnDefinition.decode(payload, extended=True)
        plain = strip_extended(payload)
        column = ColumnDefinition.decode(plain)
        assert column.extended is None
        assert (column.name, column.type, column.charset, column.length, column.flags) == (
            extended.name, extended.type, extended.charset, extended.length, extended.flags)
        assert column.encode() == plain
