"""Hand-built column definitions, as MariaDB 10.11 sends them, for merge unit tests."""

from __future__ import annotations

from router.rows.columns import ColumnDefinition
from router.rows.types import ColumnFlag, ColumnType


def col(name: str, type_: int = ColumnType.LONG, *, decimals: int = 0, charset: int = 63,
        flags: int = 0, length: int = 11) -> ColumnDefinition:
    raw = name.encode()
    return ColumnDefinition(name=raw, org_name=raw, type=type_, decimals=decimals,
                            charset=charset, flags=flags, length=length)


def text(name: str, *, binary_collation: bool = False, charset: int = 45) -> ColumnDefinition:
    """A VARCHAR: utf8mb4_general_ci unless ``binary_collation`` (a *_bin column)."""
    return col(name, ColumnType.VAR_STRING, charset=charset, length=40,
               flags=ColumnFlag.BINARY if binary_collation else 0)


def count(name: str = "COUNT(*)") -> ColumnDefinition:
    return col(name, ColumnType.LONGLONG, flags=ColumnFlag.NOT_NULL | ColumnFlag.BINARY,
               length=21)


def decimal(name: str, decimals: int, length: int = 33) -> ColumnDefinition:
    return col(name, ColumnType.NEWDECIMAL, decimals=decimals, length=length,
               flags=ColumnFlag.BINARY)


def double(name: str) -> ColumnDefinition:
    return col(name, ColumnType.DOUBLE, decimals=31, length=23, flags=ColumnFlag.BINARY)


def b(*values: object) -> list[bytes | None]:
    """A text row from Python values (None is NULL)."""
    return [None if v is None else str(v).encode() for v in values]
