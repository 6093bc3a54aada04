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

# SHOW [SESSION|LOCAL] VARIABLES WHERE <tail>: router/show.py keeps the tail to comparisons
# of the columns with literals.
_WHERE = re.compile(r"(?is)\s*SHOW\s+(?:(?:SESSION|LOCAL)\s+)?VARIABLES\s+WHERE\s+(.*?)\s*;?\s*$")

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.rows.columns import ColumnDefinition


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
    result = await run_in_session(session, instance, sql.encode())
    own = own_values(session)
    where = _WHERE.match(sql)
    if where is None:  # all rows, or LIKE on the names: the names are the backend's
        rows = [[row[0], own.get((row[0] or b"").lower(), row[1])] if len(row) == 2
                else list(row) for row in result.rows]
        return result.columns, rows
    # A WHERE may test the values: the session's rows are filtered by it on their own.
    rows = [list(row) for row in result.rows if (row[0] or b"").lower() not in own]
    mine = " UNION ALL ".join(f"SELECT '{name.decode()}' AS Variable_name, "
                              f"'{value.decode()}' AS Value" for name, value in own.items())
    kept = await run_in_session(session, instance, f"SELECT Variable_name, Value FROM "
                                f"({mine}) AS v WHERE {where.group(1)}".encode())
    rows += [list(row) for row in kept.rows]
    rows.sort(key=lambda row: (row[0] or b"").lower())
    return result.columns, rows


async def show_variables(session: SessionPort, sql: str) -> bytes:
    """The framed text result of the session-scope SHOW VARIABLES ``sql``."""
    columns, rows = await session_variables(session, sql)
    return encode_result_set(columns, rows, deprecate_eof=False, status=session.status,
                             seq=session.reply_seq, extended=session.extended_metadata)
