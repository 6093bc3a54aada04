"""``SHOW [SESSION|LOCAL] VARIABLES``, answered for the client's session.

The backend lists the variables of the connection that runs the SHOW: the session's own when
it holds one (a transaction, a pin), else a pooled one with the session's tracked settings
replayed first, so most values are the session's own. Three describe what the connection
did last, for whoever used it: DAL writes the session's values into them (`last_insert_id`
and `identity` as LAST_INSERT_ID() answers, `last_gtid` empty: DAL does not know the GTID of
a session's last write). `pseudo_thread_id` stays the backend connection's thread id, as
@@pseudo_thread_id does: which connection served the statement. A LIKE filters the names on
the backend; a WHERE, which may test the values, is applied to those three rows by a second
query over their session values.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dal.execute.leases import run_in_session
from dal.wire.results import encode_result_set
from router.sqltext import LINE_COMMENT, NO_BACKSLASH_ESCAPES, QUOTED_NAME, STRING_LITERALS

# The WHERE of a SHOW, outside strings, quoted names and comments (however the statement is
# spelled: `/* tag */ SHOW /* c */ VARIABLES WHERE(...)`); router/show.py keeps what follows
# it to comparisons of the columns with literals. One pattern per string reading: with
# backslash escapes, and under NO_BACKSLASH_ESCAPES. Every /* */ comment is skipped.
_SKIP_OR_WHERE = tuple(re.compile(
    "(" + "|".join((strings, QUOTED_NAME, r"/\*.*?\*/", LINE_COMMENT)) + r")|\b(WHERE)\b",
    re.I | re.S) for strings in STRING_LITERALS)

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.rows.columns import ColumnDefinition


def where_tail(sql: str, backslashes: bool = True) -> str | None:
    """What follows the WHERE of a SHOW statement (its trailing ``;`` dropped); None
    without one."""
    for match in _SKIP_OR_WHERE[0 if backslashes else 1].finditer(sql):
        if match.group(2):
            return sql[match.end():].rstrip().rstrip(";")
    return None


def _text(sql: str) -> bytes:
    return sql.encode("utf-8", "surrogateescape")  # as the client sent it


def own_values(session: SessionPort) -> dict[bytes, bytes]:
    """The session's values of the variables that describe a backend connection."""
    last_insert_id = str(session.last_insert_id).encode()
    return {b"last_insert_id": last_insert_id, b"identity": last_insert_id, b"last_gtid": b""}


async def session_variables(session: SessionPort, sql: str
                            ) -> tuple[list[ColumnDefinition], list[list[bytes | None]]]:
    """The columns and rows of the session-scope SHOW VARIABLES ``sql`` (raises
    pool.connection.BackendError as the backend answered)."""
    pinned = session.pinned  # in a transaction or pinned: that connection's own values
    instance = pinned.instance if pinned is not None else session.server.default_instance
    result = await run_in_session(session, instance, _text(sql))
    own = own_values(session)
    where = where_tail(sql, not session.lexer_modes() & NO_BACKSLASH_ESCAPES)
    if where is None:  # all rows, or LIKE on the names: the names are the backend's
        rows = [[row[0], own.get((row[0] or b"").lower(), row[1])] if len(row) == 2
                else list(row) for row in result.rows]
        return result.columns, rows
    # A WHERE may test the values: the session's rows are filtered by it on their own.
    rows = [list(row) for row in result.rows if (row[0] or b"").lower() not in own]
    mine = " UNION ALL ".join(  # typed as SHOW VARIABLES' own columns, for the comparisons
        f"SELECT _utf8mb3'{name.decode()}' COLLATE utf8mb3_general_ci AS Variable_name, "
        f"_utf8mb3'{value.decode()}' COLLATE utf8mb3_general_ci AS Value"
        for name, value in own.items())
    kept = await run_in_session(session, instance, _text(f"SELECT Variable_name, Value FROM "
                                                         f"({mine}) AS v WHERE {where}"))
    rows += [list(row) for row in kept.rows]
    rows.sort(key=lambda row: (row[0] or b"").lower())
    return result.columns, rows


async def show_variables(session: SessionPort, sql: str) -> bytes:
    """The framed text result of the session-scope SHOW VARIABLES ``sql``."""
    columns, rows = await session_variables(session, sql)
    return encode_result_set(columns, rows, deprecate_eof=False, status=session.status,
                             seq=session.reply_seq, extended=session.extended_metadata)
