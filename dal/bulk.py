"""COM_STMT_BULK_EXECUTE (MariaDB): one prepared statement run for many rows of parameters.

DAL offers it in the extended capabilities (MARIADB_CLIENT_STMT_BULK_OPERATIONS), so the
MariaDB connectors send ``executemany`` as one command. Packet: statement id (4), flags (2;
128 = types follow, 64 = per-row results wanted), the types (2 bytes per parameter) when
flagged, then for each row and each parameter an indicator byte (0 a value follows, 1 NULL,
2 DEFAULT, 3 IGNORE) and the value.

- An INSERT or REPLACE with one VALUES tuple becomes one multi-row text statement, which the
  ordinary path splits by shard (as a text multi-row INSERT): one OK with the rows affected and
  the first generated id.
- Any other statement runs row by row on the ordinary path; the OK sums the rows affected. The
  first error stops the bulk and is the reply; the rows before it stay applied (as MariaDB does
  outside a transaction; run the bulk in a transaction to make it all or nothing).
- Per-row results (flag 64) are not supported: DAL does not advertise them, and a client that
  asks anyway gets ERR 1235.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dal import multi
from dal.login import err_packet
from dal.wire.binary import KNOWN_TYPES, UNSIGNED_PARAM, ParamType, decode_value, sql_literal
from dal.wire.framing import frame
from dal.wire.messages import ERR, OK
from router.params import fill_markers, param_positions
from router.rows.buffer import Reader
from router.rows.errors import ProtocolError

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from dal.prepared_statements import Statement

SEND_TYPES = 128
SEND_UNIT_RESULTS = 64
NONE, NULL, DEFAULT, IGNORE = range(4)
WRONG_ARGUMENTS = (1210, "HY000")
NOT_SUPPORTED = (1235, "42000")
_VALUES = re.compile(rb"(?is)^\s*(?:INSERT|REPLACE)\b.*?\bVALUES?\s*\(")


def parse_rows(payload: bytes, params: int, bound: list[ParamType] | None
               ) -> tuple[list[ParamType], list[list[bytes]]]:
    """The types and, per row, each parameter as an SQL literal (``NULL``/``DEFAULT`` for the
    indicators). Raises `ProtocolError` on a malformed packet."""
    r = Reader(payload, 5)
    flags = r.u16()
    if flags & SEND_TYPES:
        types = []
        for _ in range(params):
            code, flag = r.u8(), r.u8()
            if code not in KNOWN_TYPES:
                raise ProtocolError(f"unknown parameter type {code}")
            types.append((code, bool(flag & UNSIGNED_PARAM)))
    elif bound is not None and len(bound) == params:
        types = list(bound)
    else:
        raise ProtocolError("bulk execution without parameter types before any with them")
    if not params:  # each row would take no bytes: nothing could end the rows
        raise ProtocolError("bulk execution of a statement without parameters")
    rows = []
    while r.remaining():
        row = []
        for code, unsigned in types:
            indicator = r.u8()
            if indicator == NONE:
                row.append(sql_literal(code, decode_value(code, unsigned, r)))
            elif indicator == NULL:
                row.append(b"NULL")
            elif indicator in (DEFAULT, IGNORE):
                row.append(b"DEFAULT")
            else:
                raise ProtocolError(f"unknown parameter indicator {indicator}")
        rows.append(row)
    if not rows:
        raise ProtocolError("bulk execution with no rows")
    return types, rows


def statements_for(sql: bytes, rows: list[list[bytes]]) -> list[bytes]:
    """The text statements that run the bulk: one multi-row INSERT/REPLACE when the markers
    all sit in its one VALUES tuple, else one statement per row."""
    markers = param_positions(sql)
    tuple_span = _values_tuple(sql, markers)
    if tuple_span is not None:
        start, end = tuple_span
        head, body, tail = sql[:start], sql[start:end], sql[end:]
        inner = [m - start for m in markers]
        return [head + b", ".join(fill_markers(body, inner, row) for row in rows) + tail]
    return [fill_markers(sql, markers, row) for row in rows]


def _values_tuple(sql: bytes, markers: list[int]) -> tuple[int, int] | None:
    """Where the one VALUES tuple of an INSERT/REPLACE is, if every marker is inside it."""
    match = _VALUES.match(sql)
    if match is None or not markers:
        return None
    start = match.end() - 1
    depth, pos, quote = 0, start, None
    while pos < len(sql):
        ch = sql[pos:pos + 1]
        if quote is not None:
            if ch == b"\\" and quote != b"`":
                pos += 1
            elif ch == quote:
                quote = None
        elif ch in (b"'", b'"', b"`"):
            quote = ch
        elif ch == b"(":
            depth += 1
        elif ch == b")":
            depth -= 1
            if depth == 0:
                break
        pos += 1
    end = pos + 1
    if markers[0] < start or markers[-1] >= end or re.match(rb"\s*,", sql[end:]):
        return None  # markers outside the tuple, or several tuples already
    return start, end


async def run(session: SessionPort, statement: Statement, payload: bytes) -> None:
    """Run one COM_STMT_BULK_EXECUTE and send its one reply."""
    seq = session.reply_seq
    try:
        flags = int.from_bytes(payload[5:7], "little") if len(payload) >= 7 else None
        if flags is None:
            raise ProtocolError("bulk execution packet too short")
        if flags & SEND_UNIT_RESULTS:
            _reply_error(session, seq, NOT_SUPPORTED, "COM_STMT_BULK_EXECUTE with per-row "
                         "results (STMT_BULK_FLAG_SEND_UNIT_RESULTS) is not supported; DAL does "
                         "not advertise it")
            return
        types, rows = parse_rows(payload, statement.shape.params, statement.types)
    except (ProtocolError, IndexError, ValueError) as exc:
        _reply_error(session, seq, WRONG_ARGUMENTS,
                     f"Incorrect arguments to mysqld_stmt_bulk_execute: {exc}")
        return
    statement.types = types
    statement.fast = None
    affected, first_id = 0, 0
    for sql in statements_for(statement.sql, rows):
        payloads = await multi.run_captured(session, sql, seq)
        if not payloads:
            return  # the client went away
        head = payloads[-1]
        if head[:1] != b"\x00":  # an ERR (or a result set, which a bulk does not return)
            session.send(b"".join(frame(p, seq + i) for i, p in enumerate(payloads)))
            session.busy = False
            return
        ok = OK.decode(head)
        affected += ok.affected_rows
        first_id = first_id or ok.last_insert_id
    status = session.status
    session.send(frame(OK(affected, first_id, status).encode(), seq))
    session.busy = False


def _reply_error(session: SessionPort, seq: int, pair: tuple[int, str], message: str) -> None:
    session.send(err_packet(ERR(pair[0], message, pair[1]), seq))
    session.busy = False
