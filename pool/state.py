"""Session state replay: make a backend connection's schema and variables match a session's.

A session's replayable state is a mapping of variable key -> SET fragment (``names`` ->
``NAMES utf8mb4``, ``sql_mode`` -> ``@@session.sql_mode='ANSI'``). A connection remembers the
mapping it last had applied. Only the difference is sent, as one combined SET; keys the session
no longer has are put back to their defaults.

Some keys are recorded for the session but never sent (`NOT_REPLAYED`): a client's
``wait_timeout`` on a shared pooled connection would make the backend drop that connection
under whichever session holds it next (enforcing it on the client's own DAL connection is
issue 22).
"""

from __future__ import annotations

from pool.connection import BackendConnection

DEFAULT_NAMES = "NAMES utf8mb4"
NOT_REPLAYED = frozenset({"wait_timeout"})


def reset_fragment(key: str) -> str:
    """The SET fragment that puts one key back to the connection's default."""
    if key == "names":
        return DEFAULT_NAMES
    return f"@@session.{key}=DEFAULT"


def state_diff(current: dict[str, str], wanted: dict[str, str]) -> str | None:
    """The SET statement that turns ``current`` into ``wanted``, or None if they match."""
    if current == wanted:
        return None
    parts = [value for key, value in wanted.items()
             if current.get(key) != value and key not in NOT_REPLAYED]
    parts += [reset_fragment(key) for key in current
              if key not in wanted and key not in NOT_REPLAYED]
    return "SET " + ", ".join(parts) if parts else None


async def apply_state(conn: BackendConnection, schema: str | None,
                      wanted: dict[str, str]) -> None:
    """Replay schema and variables onto ``conn``; raises `BackendError` if the backend refuses."""
    if schema is not None and conn.schema != schema:
        await conn.init_db(schema)
    statement = state_diff(conn.variables, wanted)
    if statement is not None:
        try:
            await conn.query(statement)
        except Exception:
            conn.close()  # its state is now unknown: the pool discards it on release
            raise
    if conn.variables != wanted:
        conn.variables = dict(wanted)
