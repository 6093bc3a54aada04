"""``SHOW [SESSION|LOCAL] VARIABLES``, answered for the client's session.

The backend lists the variables of the pooled connection that runs the SHOW: the session's
tracked settings are replayed there first, so most values are the session's own. A few
describe the connection itself, whoever used it last: its last insert id, its GTID and its
thread id. DAL writes the session's values into those rows (`last_insert_id` and `identity`
as LAST_INSERT_ID() answers, `pseudo_thread_id` as CONNECTION_ID(), `last_gtid` empty: DAL
does not know the GTID of a session's last write). The client's LIKE or WHERE filters on the
backend, by the backend's values (router/show.py keeps it to literals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal.table_status import run_show
from dal.wire.results import encode_result_set

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.rows.columns import ColumnDefinition


def own_values(session: SessionPort) -> dict[bytes, bytes]:
    """The session's values of the variables that describe a backend connection."""
    last_insert_id = str(session.last_insert_id).encode()
    return {b"last_insert_id": last_insert_id, b"identity": last_insert_id,
            b"pseudo_thread_id": str(session.id).encode(), b"last_gtid": b""}


async def session_variables(session: SessionPort, sql: str
                            ) -> tuple[list[ColumnDefinition], list[list[bytes | None]]]:
    """The columns and rows of the session-scope SHOW VARIABLES ``sql`` (raises
    pool.connection.BackendError as the backend answered)."""
    result = await run_show(session, session.server.default_instance, None, sql)
    own = own_values(session)
    rows = [[row[0], own.get((row[0] or b"").lower(), row[1])] if len(row) == 2 else list(row)
            for row in result.rows]
    return result.columns, rows


async def show_variables(session: SessionPort, sql: str) -> bytes:
    """The framed text result of the session-scope SHOW VARIABLES ``sql``."""
    columns, rows = await session_variables(session, sql)
    return encode_result_set(columns, rows, deprecate_eof=False, status=session.status,
                             seq=session.reply_seq, extended=session.extended_metadata)
