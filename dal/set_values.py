"""``SET v = <expression>``: evaluated once on a backend, replayed as a literal.

Connector/J sends ``SET sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')`` at connect.
MariaDB evaluates the expression once, at SET time; DAL does the same on a connection that
carries the session's state, and records the value like any ``SET v = <literal>``, so the
session is not pinned and the value follows it onto every pooled connection.
"""

from __future__ import annotations

import re

from pool.connection import BackendConnection, BackendError
from router.rows.types import ColumnType

_MODE_NAMES = re.compile(rb"[A-Za-z_, ]*")

_NUMERIC = frozenset({ColumnType.DECIMAL, ColumnType.TINY, ColumnType.SHORT, ColumnType.LONG,
                      ColumnType.FLOAT, ColumnType.DOUBLE, ColumnType.LONGLONG,
                      ColumnType.INT24, ColumnType.NEWDECIMAL, ColumnType.YEAR})


def literal(value: bytes | None, column_type: int) -> str:
    """``value`` (a text-protocol cell) as a SQL literal that reads the same under any
    sql_mode: numbers as written, strings quoted (or hex when they hold a quote or a
    backslash), NULL."""
    if value is None:
        return "NULL"
    if column_type in _NUMERIC:
        return value.decode("ascii")
    if b"'" in value or b"\\" in value:
        return "X'" + value.hex() + "'"
    return "'" + value.decode("utf-8", "surrogateescape") + "'"


async def evaluate(conn: BackendConnection, pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """SET fragments (``@@session.name=<literal>``) for (name, expression) pairs, evaluated
    in one SELECT on ``conn``; raises `BackendError` when the backend refuses it, or when
    sql_mode's value is not a list of mode names (a number sets modes by their bits, which
    DAL would not read: `SET sql_mode = 2+2` is ANSI_QUOTES)."""
    result = await conn.query("SELECT " + ", ".join(expression for _, expression in pairs))
    fragments = {}
    for (name, _), cell, column in zip(pairs, result.rows[0], result.columns, strict=True):
        if name == "sql_mode" and (column.type in _NUMERIC or cell is None
                                   or not _MODE_NAMES.fullmatch(cell)):
            raise BackendError(1235, "DAL reads sql_mode from its names (SET sql_mode = "
                               "'STRICT_TRANS_TABLES,...'): this expression gives a number or "
                               "something else", "42000")
        fragments[name] = f"@@session.{name}={literal(cell, column.type)}"
    return fragments
