"""``SHOW TABLE STATUS`` of a logical database, and ``SHOW PROCEDURE|FUNCTION STATUS``,
answered by DAL.

The default database answers for its own (unsharded and broadcast) tables; sharded and bound
tables answer from the first shard of the authoritative dimension, whose copy of the table has
the logical name. So Engine, Row_format, Collation, Create_options and Comment are the table's,
and Rows, Avg_row_length, Data_length, Index_length, Data_free and Auto_increment describe
that one shard only (an estimate of 1/shards of the table): InnoDB's Rows is an estimate
anyway, and summing it would cost a query per shard. The client's LIKE or WHERE goes to both
backends as written, so it filters exactly as MariaDB does.

The backend lists the routines of every database DAL's account sees: shard databases,
dal_meta, sys. ``SHOW PROCEDURE|FUNCTION STATUS`` keeps the rows of the logical databases
the session may use (a user's `databases:` list), named as the client names them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.model import TableKind
from dal.execute.leases import apply_state
from dal.wire.results import encode_result_set
from pool.connection import Result

if TYPE_CHECKING:
    from dal.ports import SessionPort

_SHARDED = (TableKind.SHARDED, TableKind.BOUND)


async def _run(session: SessionPort, instance: str, database: str | None, sql: str) -> Result:
    pool = session.server.pools[instance]
    conn = await pool.acquire()
    try:
        # The client's LIKE or WHERE is read under the session's sql_mode and character set,
        # as DAL's checks read it, and in the database shown, not in whatever database and
        # state the pooled connection's last user left (router/show.py keeps it to literals).
        await apply_state(conn, database, session.state)
        return await conn.query(sql)
    finally:
        pool.release(conn, reusable=not conn.closed)


async def table_status(session: SessionPort, db: str, tail: str) -> bytes:
    """The framed result set of ``SHOW TABLE STATUS FROM db<tail>`` for the logical ``db``
    (raises pool.connection.BackendError as the backend answered)."""
    config = session.server.config
    cfg = config.databases[db]
    sharded = {name for name, table in cfg.tables.items() if table.kind in _SHARDED}
    result = await _run(session, cfg.default_instance, cfg.default_database,
                        f"SHOW TABLE STATUS FROM `{cfg.default_database}`{tail}")
    rows = [row for row in result.rows if (row[0] or b"").decode() not in sharded]
    if sharded:
        shard_db = cfg.dimensions[cfg.authoritative].database(0)
        first = await _run(session, config.shard_instance(db, cfg.authoritative, 0), shard_db,
                           f"SHOW TABLE STATUS FROM `{shard_db}`{tail}")
        rows += [row for row in first.rows if (row[0] or b"").decode() in sharded]
    rows.sort(key=lambda row: row[0] or b"")
    return encode_result_set(result.columns, rows, deprecate_eof=False, status=session.status,
                             seq=session.reply_seq, extended=session.extended_metadata)


async def routine_status(session: SessionPort, kind: str, tail: str) -> bytes:
    """The framed result set of ``SHOW {kind} STATUS<tail>`` (kind PROCEDURE or FUNCTION),
    limited to the routines of the logical databases the session may use."""
    config = session.server.config
    logical: dict[str, dict[str, str]] = {}  # instance -> its default database -> logical
    for db in session.visible_databases():
        cfg = config.databases[db]
        logical.setdefault(cfg.default_instance, {})[cfg.default_database] = db
    columns, rows = None, []
    for instance, names in (logical or {session.server.default_instance: {}}).items():
        result = await _run(session, instance, next(iter(names), None),
                            f"SHOW {kind} STATUS{tail}")
        columns = result.columns
        for row in result.rows:
            name = names.get((row[0] or b"").decode())
            if name is not None:
                rows.append([name.encode(), *row[1:]])
    rows.sort(key=lambda row: (row[0], row[1] or b""))
    return encode_result_set(columns, rows, deprecate_eof=False, status=session.status,
                             seq=session.reply_seq, extended=session.extended_metadata)
