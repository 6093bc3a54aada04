"""Server-side prepared statements on one backend connection, prepared lazily and cached.

Each `BackendConnection` keeps its statements in ``conn.prepared`` (by `statement_key`: the
database, sql_mode and character set it was prepared under, and the SQL text),
least recently used first. A new connection starts empty, so statements are prepared again
after a reconnect; COM_RESET_CONNECTION deallocates them on the backend, so whoever sends it
clears the cache. The cache is bounded (`MAX_PER_CONNECTION`): the backend's
max_prepared_stmt_count is global to the instance and shared by every pooled connection.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dal.wire.binary import PrepareOk
from dal.wire.constants import Command
from dal.wire.framing import frame
from dal.wire.messages import ERR, is_eof, is_err
from pool.connection import BackendConnection, BackendError
from router.rows.buffer import u32

MAX_PER_CONNECTION = 256


@dataclass(slots=True, frozen=True)
class BackendStatement:
    """A statement prepared on one backend connection, with its definitions (payloads)."""

    id: int
    params: tuple[bytes, ...]
    columns: tuple[bytes, ...]
    execute_head: bytes  # COM_STMT_EXECUTE and this id: how an execution payload starts


async def prepare(conn: BackendConnection, sql: bytes) -> BackendStatement:
    """``sql`` prepared on ``conn`` (from its cache, else COM_STMT_PREPARE now).

    Raises `BackendError` with the backend's error if it refuses the statement, and
    `ConnectionLost` if the connection fails."""
    cache: OrderedDict[tuple, BackendStatement] = conn.prepared
    key = conn.statement_key(sql)
    found = cache.get(key)
    if found is not None:
        cache.move_to_end(key)
        return found
    conn.start_command()  # raises if one is in flight already
    err = None
    try:
        conn.write(frame(bytes((Command.STMT_PREPARE,)) + sql, 0))
        _, first = await conn.read_packet()
        if is_err(first):
            err = ERR.decode(first)
        else:
            ok = PrepareOk.decode(first)
            params = await _definitions(conn, ok.params)
            columns = await _definitions(conn, ok.columns)
    except BaseException:
        conn.abort()  # a half-read reply leaves the connection unusable
        raise
    finally:
        conn.command_done()
    if err is not None:
        raise BackendError(err.code, err.message, err.sqlstate)
    statement = BackendStatement(ok.statement_id, params, columns,
                                 bytes((Command.STMT_EXECUTE,)) + u32(ok.statement_id))
    cache[key] = statement
    while len(cache) > MAX_PER_CONNECTION:
        _, old = cache.popitem(last=False)
        conn.write(frame(bytes((Command.STMT_CLOSE,)) + u32(old.id), 0))  # no reply
    return statement


async def _definitions(conn: BackendConnection, count: int) -> tuple[bytes, ...]:
    """``count`` definition packets and the EOF after them (none when count is 0)."""
    if not count:
        return ()
    out = []
    for _ in range(count):
        out.append((await conn.read_packet())[1])
    _, eof = await conn.read_packet()
    if not is_eof(eof):
        raise BackendError(1105, "backend sent no EOF after prepared statement definitions")
    return tuple(out)

