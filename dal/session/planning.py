"""Long statements are read and planned on a planner thread, not on the event loop.

sqlglot takes about 5-7 ms per KiB of statement to plan, and DAL's own readers (fingerprint,
batch split) about 0.2 ms per KiB. On the event loop that time is taken from every client of
the process: one 100 KiB OR chain held them all for 2.4 s, and a mysqldump restore's 1 MiB
INSERTs for seconds each. So a plan-cache miss of `PLAN_AWAY_BYTES` or more is planned on one
planner thread, and a statement of `READ_AWAY_BYTES` or more is also read there, while the
loop serves everybody else (the GIL is handed back every 5 ms). Shorter statements, and every
cache hit, stay on the loop: the hop costs more than they do.

The thread only reads: `Router.analysed` builds a plan from the router's config and changes
nothing. The loop keeps the plan in the cache (`Router.keep`) and, when the router dropped its
plans meanwhile (a live migration's phase switch, CREATE DATABASE, new rules: its
``generation``), plans again, so that no plan of the old state runs after the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from router.fingerprint import Fingerprint
from router.plan import Plan
from router.planner import Router

if TYPE_CHECKING:
    from dal.ports import SessionPort

# A cache miss this long is planned on the planner thread (about 5 ms of sqlglot and more).
PLAN_AWAY_BYTES = 1024
# A statement this long is also fingerprinted and split there (about 3 ms and more).
READ_AWAY_BYTES = 16 * 1024

T = TypeVar("T")

# One thread: long statements queue behind each other instead of taking turns at the GIL
# with the loop, which then gets at least every other 5 ms slice.
_PLANNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dal-planner")


async def in_planner_thread(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` on the planner thread; it must only read shared state."""
    return await asyncio.get_running_loop().run_in_executor(_PLANNER, work, *args)


async def plan_away(router: Router, sql: bytes, fp: Fingerprint, schema: str | None,
                    admin: bool, modes: int, original: bytes | None,
                    databases: frozenset[str] | None) -> Plan:
    """`Router.plan` with its analysis on the planner thread; arguments as there."""
    plan = router.cached(fp, schema, admin, modes, original, databases)
    while plan is None:
        generation = router.generation
        try:
            made = await in_planner_thread(router.analysed, sql, fp, schema, admin, modes,
                                           databases)
        except RuntimeError:  # a dict the loop changed mid-read: made again below
            if router.generation == generation:
                raise
            continue
        if router.generation == generation:
            plan = router.keep(sql, fp, schema, admin, modes, databases, made)
    return plan


def with_plan(session: SessionPort, sql: bytes, fp: Fingerprint, modes: int,
              original: bytes | None, then: Callable[[Plan], None]) -> None:
    """``then(plan)`` with the session's plan for ``sql``: at once when it is cached or
    short, else after the planner thread made it (the session is busy meanwhile, and
    ``then`` is not called if the client went away)."""
    router = session.server.router
    plan = router.cached(fp, session.schema, session.admin, modes, original, session.databases)
    if plan is None:
        if len(sql) >= PLAN_AWAY_BYTES:
            session.spawn(_plan_then(session, router, sql, fp, modes, original, then))
            return
        plan = router.keep(sql, fp, session.schema, session.admin, modes, session.databases,
                           router.analysed(sql, fp, session.schema, session.admin, modes,
                                           session.databases))
    then(plan)


async def _plan_then(session: SessionPort, router: Router, sql: bytes, fp: Fingerprint,
                     modes: int, original: bytes | None, then: Callable[[Plan], None]) -> None:
    plan = await plan_away(router, sql, fp, session.schema, session.admin, modes, original,
                           session.databases)
    session.busy = False
    if not session.closed:
        then(plan)
