"""Long statements are read and planned on a planner thread, not on the event loop.

sqlglot takes about 5-7 ms per KiB of statement to plan, and DAL's own readers (fingerprint,
batch split) about 0.2 ms per KiB; on the event loop that time is taken from every client of
the process. So a plan-cache miss of `PLAN_AWAY_BYTES` or more is planned on one planner
thread, and a statement of `READ_AWAY_BYTES` or more is also read there. Shorter statements,
and every cache hit, stay on the loop: the hop costs more than they do. The installed sqlglot
is compiled and keeps the GIL through a whole parse, so the loop gets the time between those
calls, not every 5 ms (docs/design-notes.md, "Long statements", has the measured waits).

The thread only reads: `Router.analysed` builds a plan from the router's config and changes
nothing. The loop keeps the plan in the cache (`Router.keep`) and, when the router dropped its
plans meanwhile (a live migration's phase switch, CREATE DATABASE, new rules: its
``generation``), plans again, so that no plan of the old state runs after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from dal import errors
from router.fingerprint import Fingerprint
from router.plan import Plan
from router.planner import Router

if TYPE_CHECKING:
    from dal.ports import SessionPort

# A cache miss this long is planned on the planner thread (about 5 ms of sqlglot and more).
PLAN_AWAY_BYTES = 1024
# A statement this long is also fingerprinted and split there (about 3 ms and more).
READ_AWAY_BYTES = 16 * 1024
INTERRUPTED = (1317, "70100")  # ER_QUERY_INTERRUPTED: KILL QUERY while it was being planned

T = TypeVar("T")


class _PlannerThread:
    """One daemon thread running jobs in order: long statements queue behind each other
    instead of taking turns at the GIL with the loop, a job whose caller went away (its
    future cancelled: the client disconnected) is skipped, and a shutdown does not wait for
    the queue (a ThreadPoolExecutor's threads are joined at exit)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, work: Callable[..., T], args: tuple) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dal-planner", daemon=True)
            self._thread.start()
        self._jobs.put((loop, future, work, args))
        return future

    def _run(self) -> None:
        while True:
            loop, future, work, args = self._jobs.get()
            if future.cancelled():
                continue
            try:
                result, failure = work(*args), None
            except BaseException as exc:  # handed to the caller, as an executor would
                result, failure = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, future, result, failure)


def _settle(future: asyncio.Future, result: Any, failure: BaseException | None) -> None:
    if future.cancelled():
        return
    if failure is not None:
        future.set_exception(failure)
    else:
        future.set_result(result)


_PLANNER = _PlannerThread()


async def in_planner_thread(work: Callable[..., T], *args: object) -> T:
    """``work(*args)`` on the planner thread; it must only read shared state."""
    return await _PLANNER.submit(work, args)


async def plan_away(router: Router, sql: bytes, fp: Fingerprint, schema: str | None,
                    admin: bool, modes: int, original: bytes | None,
                    databases: frozenset[str] | None) -> Plan:
    """`Router.plan` with its reading of ``original`` and its analysis on the planner
    thread; arguments as there. Without ``original`` the plan cache is not asked (the
    caller did: `plan_now`)."""
    plan = None
    if original is not None:
        plan = await in_planner_thread(router.original_refusal, original, modes, admin)
        if plan is None:
            plan = router.cached(fp, schema, admin, modes, databases)
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
    short (`plan_now`), else after the planner thread made it (`plan_later`)."""
    plan = plan_now(session, sql, fp, modes, original)
    if plan is not None:
        then(plan)
    else:
        plan_later(session, sql, fp, modes, original, then)


def plan_now(session: SessionPort, sql: bytes, fp: Fingerprint, modes: int,
             original: bytes | None) -> Plan | None:
    """The session's plan for ``sql`` when it is cached or short enough to make on the loop;
    None when the planner thread must make it (`plan_later`)."""
    router = session.server.router
    if len(sql) < PLAN_AWAY_BYTES:
        return router.plan(sql, fp, session.schema, session.admin, modes, original,
                           session.databases)
    if original is not None:  # the access check reads it away too
        return None
    return router.cached(fp, session.schema, session.admin, modes, session.databases)


def plan_later(session: SessionPort, sql: bytes, fp: Fingerprint, modes: int,
               original: bytes | None, then: Callable[[Plan], None]) -> None:
    """``then(plan)`` once the planner thread made the plan `plan_now` did not: the session
    is busy meanwhile; ``then`` is not called if the client went away, and a KILL QUERY
    meanwhile ends the statement with 1317."""
    session.spawn(_plan_then(session, session.server.router, sql, fp, modes, original, then))


async def _plan_then(session: SessionPort, router: Router, sql: bytes, fp: Fingerprint,
                     modes: int, original: bytes | None, then: Callable[[Plan], None]) -> None:
    session.planning = True
    try:
        plan = await plan_away(router, sql, fp, session.schema, session.admin, modes, original,
                               session.databases)
    finally:
        session.planning = False
    session.busy = False
    if not session.closed and not interrupted(session):
        then(plan)


def interrupted(session: SessionPort) -> bool:
    """True, with the 1317 sent, when a KILL QUERY came while the session's statement was
    read or planned on the planner thread (no backend statement existed to kill)."""
    if not session.kill_requested:
        return False
    session.kill_requested = False
    session.send_error(errors.err(INTERRUPTED, "Query execution was interrupted"))
    return True
