"""Statements DAL runs for itself beside a session's: a transaction of its own on one backend
(a dual write's authoritative side) and single autocommitted statements (its mirror writes).

Both take pooled connections with the pool's default session state (the session's variables
are not replayed: what DAL writes here is copied by id, not computed by the session). They
read text as utf8mb4, so a session whose character set is another may not send its literals
there (`foreign_charset`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal import timeouts
from dal.wire.framing import frame
from pool.connection import BackendConnection, BackendError, Result, decode_response
from pool.state import apply_state

if TYPE_CHECKING:
    from dal.ports import SessionPort

_DEFAULTS: dict[str, str] = {}  # the pool's own state: autocommit on
# What DAL's own connections read the same as utf8mb4 (a client's ascii or utf8mb3 bytes are
# utf8mb4 bytes); character_set_results may also be NULL (the columns' own, utf8mb4).
_UTF8 = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
_CHARSET_KEYS = ("names", "character_set_client", "character_set_connection",
                 "character_set_results", "collation_connection")


def foreign_charset(state: dict[str, str]) -> str | None:
    """The character set (or collation) of a session ``state`` that DAL's own connections
    would read differently, else None."""
    for key in _CHARSET_KEYS:
        fragment = state.get(key)
        if fragment is None:
            continue
        value = fragment.split()[1] if key == "names" else fragment.partition("=")[2]
        name = value.strip("'\"` ").lower()
        charset = name.partition("_")[0] if key == "collation_connection" else name
        if charset not in _UTF8 and (key != "character_set_results" or charset != "null"):
            return name
    return None


async def _run(session: SessionPort, conn: BackendConnection, sql: bytes) -> Result:
    raw = await timeouts.timed_command(session.server, conn, frame(b"\x03" + sql, 0))
    return decode_response(raw)


class OwnTransaction:
    """BEGIN ... COMMIT on one pooled connection, apart from the session's transaction."""

    def __init__(self, session: SessionPort, conn: BackendConnection) -> None:
        self.session = session
        self.conn: BackendConnection | None = conn

    async def run(self, sql: bytes) -> Result:
        """One statement inside the transaction."""
        assert self.conn is not None
        return await _run(self.session, self.conn, sql)

    async def commit(self) -> None:
        """COMMIT, and give the connection back."""
        conn = self.conn
        assert conn is not None
        self.conn = None
        try:
            await _run(self.session, conn, b"COMMIT")
        except BackendError:
            self.session.server.pools[conn.instance].release(conn, reusable=False)
            raise
        self.session.server.pools[conn.instance].release(conn, reusable=not conn.closed)

    async def rollback(self) -> None:
        """ROLLBACK if still open, and give the connection back; never raises."""
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        reusable = False
        try:
            await _run(self.session, conn, b"ROLLBACK")
            reusable = not conn.closed
        except Exception:
            pass
        self.session.server.pools[conn.instance].release(conn, reusable=reusable)


async def begin(session: SessionPort, instance: str) -> OwnTransaction:
    """A transaction of DAL's own on ``instance``, BEGIN sent."""
    pool = session.server.pools[instance]
    conn = await pool.acquire(session.flavour)
    try:
        await apply_state(conn, None, _DEFAULTS)
        await _run(session, conn, b"BEGIN")
    except BaseException:
        pool.release(conn, reusable=False)
        raise
    return OwnTransaction(session, conn)


async def run_pooled(session: SessionPort, instance: str, sql: bytes) -> Result:
    """One autocommitted statement on a pooled connection of ``instance``."""
    pool = session.server.pools[instance]
    conn = await pool.acquire(session.flavour)
    reusable = True
    try:
        await apply_state(conn, None, _DEFAULTS)
        return await _run(session, conn, sql)
    except BackendError:
        reusable = not conn.closed
        raise
    except BaseException:
        reusable = False
        raise
    finally:
        pool.release(conn, reusable=reusable and not conn.closed)
