"""KILL QUERY over a connection of its own, for the per-statement timeout.

The pool may be full (that is often why a statement runs long), so the kill never borrows a
pooled connection: it opens one, sends ``KILL QUERY <thread id>`` and closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from config.model import Instance
from pool.connection import BackendConnection, BackendError

log = logging.getLogger("dal.killer")


async def kill_query(name: str, instance: Instance, thread_id: int,
                     still_running: Callable[[], bool], timeout: float = 5.0,
                     sql: bytes | None = None) -> bool:
    """Interrupt the statement running on backend thread ``thread_id`` of ``instance``.

    ``still_running`` is asked again once the kill connection is ready, so that a statement
    that ended meanwhile (and a connection serving someone else by now) is left alone.
    With ``sql`` (a statement pipelined behind or ahead of other sessions' on the thread),
    only a query of that text is killed, by its query id: the one the thread runs next may
    be someone else's. Returns True if KILL QUERY was sent and accepted."""
    try:
        conn = await BackendConnection.open(f"{name}-kill", instance.host, instance.port,
                                            instance.user, instance.password, timeout=timeout)
    except BackendError as exc:
        log.warning("cannot kill a timed-out statement on %s: %s", name, exc.message)
        return False
    try:
        if not still_running():
            return False
        if sql is None:
            await conn.query(f"KILL QUERY {int(thread_id)}")
            return True
        found = await conn.query(f"SELECT QUERY_ID FROM information_schema.PROCESSLIST WHERE "
                                 f"ID = {int(thread_id)} AND INFO = X'{sql.hex()}'")
        if not found.rows or found.rows[0][0] is None:
            return False  # it ended meanwhile
        await conn.query(f"KILL QUERY ID {int(found.rows[0][0])}")
        return True
    except BackendError as exc:  # e.g. 1094 unknown thread: it ended on its own
        log.info("KILL QUERY %d on %s: %s", thread_id, name, exc.message)
        return False
    finally:
        conn.close()
