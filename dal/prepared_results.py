"""Results of prepared statements that DAL builds itself: merged rows re-encoded in the
binary format, and cursors (DAL keeps the rows and serves COM_STMT_FETCH)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal import errors
from dal.prepared_statements import Cursor
from dal.wire.binary import column_types, encode_binary_row, value_from_text
from dal.wire.constants import Status
from dal.wire.framing import frame, packet_count
from dal.wire.messages import EOF, is_eof, is_err
from router.rows.buffer import Reader, lenenc_int
from router.rows.columns import ColumnDefinition
from router.rows.types import ColumnType

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from dal.prepared_statements import Statement

NO_CURSOR = (1421, "HY000")
_CURSOR_EXISTS = int(Status.CURSOR_EXISTS)
_LAST_ROW_SENT = int(Status.LAST_ROW_SENT)


def binary_result(columns: list[ColumnDefinition], rows: list[list[bytes | None]],
                  status: int, extended: bool | None = None) -> list[bytes]:
    """A text result (column definitions, text values) as binary-protocol payloads. A column
    whose values do not fit its declared type is sent as VAR_STRING. ``extended``: the
    client negotiated MariaDB's extended metadata (None: definitions as decoded)."""
    types = column_types(columns)
    converted: list[list] = [[None] * len(columns) for _ in rows]
    for j, (code, unsigned) in enumerate(types):
        try:
            for i, row in enumerate(rows):
                text = row[j]
                converted[i][j] = None if text is None else value_from_text(code, unsigned, text)
        except ValueError:
            columns[j].type = ColumnType.VAR_STRING
            types[j] = (ColumnType.VAR_STRING, False)
            for i, row in enumerate(rows):
                converted[i][j] = row[j]
    out = [lenenc_int(len(columns)), *(c.encode(extended) for c in columns),
           EOF(0, status).encode()]
    out += [encode_binary_row(types, values) for values in converted]
    out.append(EOF(0, status).encode())
    return out


def reply(session: SessionPort, payloads: list[bytes], cursor: Statement | None) -> None:
    """Send a whole response; with a cursor, only its header, the rows kept for fetches."""
    if cursor is not None and payloads and payloads[0][0] not in (0x00, 0xFF):
        count = Reader(payloads[0]).lenenc_int() or 0
        rows = payloads[2 + count:]
        end = rows.pop() if rows and is_eof(rows[-1]) else b""
        if rows and is_err(rows[-1]):
            send(session, [rows[-1]])
            return
        status = int.from_bytes(end[3:5], "little") if len(end) >= 5 else session.status
        limit = session.server.config.server.max_merge_rows
        if len(rows) > limit:
            session.error(errors.UNKNOWN_ERROR, f"a cursor would hold {len(rows)} rows, more "
                           f"than server.max_merge_rows ({limit}); add a LIMIT or fetch "
                           "without a cursor")
            return
        payloads = [*payloads[:1 + count], EOF(0, status | _CURSOR_EXISTS).encode()]
        cursor.cursor = Cursor(rows, status)
    send(session, payloads)


def send(session: SessionPort, payloads: list[bytes]) -> None:
    """Frame payloads as the reply to the session's current command."""
    seq = session.reply_seq
    out = []
    for body in payloads:
        out.append(frame(body, seq))
        seq += packet_count(len(body))
    session.send(b"".join(out))


# -- COM_STMT_FETCH ------------------------------------------------------------------------------


def fetch(session: SessionPort, statement: Statement, payload: bytes) -> None:
    """COM_STMT_FETCH: the next rows of the statement's cursor, then EOF (LAST_ROW_SENT and
    the cursor closed after the last)."""
    cursor = statement.cursor
    if cursor is None:
        session.error(NO_CURSOR, f"The statement ({statement.id}) has no open cursor: "
                       "execute it with a read-only cursor first")
        return
    wanted = int.from_bytes(payload[5:9], "little") if len(payload) >= 9 else 1
    rows = cursor.rows[cursor.position:cursor.position + max(wanted, 1)]
    cursor.position += len(rows)
    status = cursor.status | _CURSOR_EXISTS
    if cursor.position >= len(cursor.rows):
        status |= _LAST_ROW_SENT
        statement.cursor = None
    send(session, [*rows, EOF(0, status).encode()])
