"""Statements DAL answers itself: the logical view of databases and tables."""

from __future__ import annotations

import re

from dal.wire.results import encode_result_set, text_column
from router.rows.columns import ColumnDefinition
from router.rows.types import ColumnFlag, ColumnType


def like_matcher(pattern: str | None) -> re.Pattern[str] | None:
    """A regex for a SQL LIKE pattern (``%``, ``_``, backslash escapes), case-insensitive."""
    if pattern is None:
        return None
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S | re.I)


def show_databases(names: list[str], like: str | None, *, seq: int, status: int,
                   extended: bool) -> bytes:
    """``SHOW DATABASES``: information_schema and the logical databases, never shard databases."""
    matcher = like_matcher(like)
    rows = [[n.encode()] for n in sorted(names) if matcher is None or matcher.match(n)]
    header = "Database" + (f" ({like})" if like is not None else "")
    return encode_result_set([text_column(header, length=256)], rows, deprecate_eof=False,
                             status=status, seq=seq, extended=extended)


def show_tables(db: str, tables: dict[str, str], full: bool, like: str | None, *, seq: int,
                status: int, extended: bool) -> bytes:
    """``SHOW [FULL] TABLES``: ``tables`` maps each logical table name to its type."""
    matcher = like_matcher(like)
    header = f"Tables_in_{db}" + (f" ({like})" if like is not None else "")
    columns = [text_column(header, length=256)]
    if full:
        columns.append(text_column("Table_type", length=64))
    rows = []
    for name in sorted(tables):
        if matcher is None or matcher.match(name):
            rows.append([name.encode(), tables[name].encode()] if full else [name.encode()])
    return encode_result_set(columns, rows, deprecate_eof=False, status=status, seq=seq,
                             extended=extended)


def no_diagnostics(what: str) -> tuple[list[ColumnDefinition], list[list[bytes | None]]]:
    """The answer, as columns and text rows, of ``SHOW WARNINGS``/``SHOW ERRORS`` (``what``
    "list") or of a warning or error count (``what`` its column name) when the session's last
    statement left no diagnostics: no rows, or a count of 0."""
    if what == "list":
        return [text_column("Level", length=28),
                text_column("Code", type_=ColumnType.LONG, length=4, charset=63),
                text_column("Message", length=2048)], []
    return value_columns([(what, 0)]), [[b"0"]]


def value_columns(values: list[tuple[str, int | str]]) -> list[ColumnDefinition]:
    """One column per value: an unsigned (or signed) integer, or a string."""
    flags = int(ColumnFlag.UNSIGNED | ColumnFlag.NOT_NULL | ColumnFlag.BINARY | ColumnFlag.NUM)
    return [text_column(name, length=384) if isinstance(value, str) else
            text_column(name, type_=ColumnType.LONGLONG, length=21, charset=63,
                        flags=flags if value >= 0 else flags & ~ColumnFlag.UNSIGNED)
            for name, value in values]


def session_values(values: list[tuple[str, int | str]], *, seq: int, status: int,
                   extended: bool) -> bytes:
    """One row of unsigned integers or strings, e.g. ``SELECT LAST_INSERT_ID(),
    CONNECTION_ID(), CURRENT_USER()``."""
    row = [str(value).encode() for _, value in values]
    return encode_result_set(value_columns(values), [row], deprecate_eof=False, status=status,
                             seq=seq, extended=extended)
