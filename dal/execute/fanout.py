"""A scatter's statements on pooled connections, several pipelined on each.

One statement per pooled connection costs DAL a pool acquire, a state check, a write and a
wake-up per shard: at 120 shards that per-shard Python work, not the backend, was most of a
primary-key ``ORDER BY id DESC LIMIT 20`` (docs/performance.md). Instead an instance's
statements are split over at most `CONNECTIONS` pooled connections, and each connection gets
its share in one write (`BackendConnection.pipeline`): the backend runs them one after another
and answers in order, so each answer, and each ERR, still belongs to exactly its statement.
Rows stay undecoded until the merge reads them (`pool.responses.decode_lazily`).

What keeps one statement per connection (`one_each`): a write (after a lost connection DAL
could not say which of a connection's writes applied), and the statement timeout (its KILL
QUERY names a connection's running statement, which must be the timed one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dal.execute.home import home_schema
from dal.timeouts import timed_command
from dal.wire.constants import Command
from dal.wire.framing import frame
from pool.connection import BackendError, Result, decode_response
from pool.responses import decode_lazily
from pool.state import apply_state

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.rows.columns import ColumnDefinition
    from router.targets import Target

CONNECTIONS = 4  # pooled connections an instance's share of one scatter read is split over

Outcome = Result | BaseException


async def run(session: SessionPort, targets: Sequence[Target], sqls: Sequence[bytes],
              state: dict[str, str], write: bool) -> list[Outcome]:
    """Each target's outcome (its `Result`, or the exception that failed it), in order."""
    if write or session.server.statement_timeout:
        return await asyncio.gather(*(one_each(session, t, sql, state)
                                      for t, sql in zip(targets, sqls, strict=True)),
                                    return_exceptions=True)
    by_instance: dict[str, list[int]] = {}
    for i, target in enumerate(targets):
        by_instance.setdefault(target.instance, []).append(i)
    outcomes: list[Outcome] = [None] * len(targets)  # type: ignore[list-item]
    known: dict[int, list[ColumnDefinition]] = {}  # one statement: the same columns
    runs = []
    for instance, indexes in by_instance.items():
        count = min(CONNECTIONS, len(indexes))
        for k in range(count):
            share = indexes[k::count]
            runs.append(_pipelined(session, instance, share, [sqls[i] for i in share], state,
                                   outcomes, known))
    await asyncio.gather(*runs)
    return outcomes


async def _pipelined(session: SessionPort, instance: str, indexes: list[int],
                     sqls: list[bytes], state: dict[str, str], outcomes: list[Outcome],
                     known: dict[int, list[ColumnDefinition]]) -> None:
    """``sqls`` in one write on one pooled connection of ``instance``; each outcome goes to
    ``outcomes`` at its index. A lost connection fails all of them with its error."""
    pool = session.server.pools[instance]
    try:
        conn = await pool.acquire(session.flavour)
    except BackendError as exc:
        for i in indexes:
            outcomes[i] = exc
        return
    reusable = False
    try:
        await apply_state(conn, home_schema(session, instance), state)
        responses = await conn.pipeline([frame(bytes((Command.QUERY,)) + sql, 0)
                                         for sql in sqls])
        reusable = True
    except BackendError as exc:
        for i in indexes:
            outcomes[i] = exc
        return
    finally:
        pool.release(conn, reusable=reusable and not conn.closed)
    extended = conn.extended_metadata
    for i, raw in zip(indexes, responses, strict=True):
        try:
            outcomes[i] = decode_lazily(raw, extended, known)
        except BackendError as exc:  # this statement's own ERR
            outcomes[i] = exc


async def one_each(session: SessionPort, target: Target, sql: bytes,
                   state: dict[str, str]) -> Result:
    """One statement on one shard through the pool, with the given session state."""
    pool = session.server.pools[target.instance]
    conn = await pool.acquire(session.flavour)
    reusable = True
    try:
        await apply_state(conn, home_schema(session, target.instance), state)
        raw = await timed_command(session.server, conn, frame(bytes((Command.QUERY,)) + sql, 0))
        return decode_response(raw, conn.extended_metadata)
    except BackendError:
        reusable = not conn.closed
        raise
    finally:
        pool.release(conn, reusable=reusable and not conn.closed)
