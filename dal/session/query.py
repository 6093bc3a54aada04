"""COM_QUERY: the path of one text statement, from its bytes to its plan's tree.

A repeated statement routed to one backend goes fingerprint -> express lane or plan cache ->
idle pooled connection -> relay, in callbacks, with no coroutine, no sqlglot and no row
decoding. A multi-statement batch, an admin statement, a rate limit's delay and everything DAL
answers itself run in a coroutine, the slow path.
"""


from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, NamedTuple

from dal import (
    errors,
    multi,
    xa,
)
from dal.execute.bindings import TextBindings
from dal.execute.cursor import run_tree
from dal.login import ok_packet
from dal.migration import admin as migration_admin
from dal.migration import txn as migration_txn
from dal.session.planning import (
    READ_AWAY_BYTES,
    in_planner_thread,
    interrupted,
    plan_later,
    plan_now,
)
from dal.session.state import SessionState
from dal.shard_route import express_route
from dal.wire.constants import Status
from dal.wire.framing import packet_count
from dal.wire.messages import ERR
from dal.wire.results import RESULT
from dal.wire.server import CLOSED, COMMAND
from pool.limits import Limiter, Throttled
from router.express import PASS, Express
from router.fingerprint import (
    MAX_TRAILING_DIGITS,
    Fingerprint,
    fingerprint,
    fingerprint_in_modes,
)
from router.plan import LOCAL, MIGRATED, ROUTE, SHARDED, Plan
from router.session_functions import rewrites as rewrites_session_functions
from router.split import split_statements

if TYPE_CHECKING:
    pass

_ADMIN = re.compile(rb"(?i)\s*(SHOW|SET|RELOAD|EXPLAIN)\s+DAL\b")
# What an admin statement can start with: the regex runs only for these, not for every SELECT.
_ADMIN_HEADS = frozenset({b"SHO", b"SET", b"REL", b"EXP"})
_SPACE = frozenset(b" \t\r\n\x0b\x0c")
_DIGITS = b"0123456789"
# Plain ints: IntFlag arithmetic is slow Python code, and this runs per statement.
_IN_TRANS = int(Status.IN_TRANS)
_AUTOCOMMIT = int(Status.AUTOCOMMIT)
# The express lane and its learning: autocommit, outside a transaction, read with the ordinary
# lexer (no NO_BACKSLASH_ESCAPES: its heads were learnt under the default reading).
_LANE_BITS = int(Status.IN_TRANS | Status.AUTOCOMMIT | Status.NO_BACKSLASH_ESCAPES)
_NO_SLOTS: list[list[bytes]] = []  # a plan that routes by no literal
_SLOTTED = (SHARDED, MIGRATED)  # plans whose trees read the statement's literal slots



class _Text(NamedTuple):
    """A text statement as the backend reads it (`QuerySession._read`): ``sql`` with session
    functions replaced and executable comments expanded (``original``: the client's text
    then), the ``payload`` and ``raw`` packet to send, its fingerprint, the lexer modes."""

    sql: bytes
    payload: bytes
    raw: bytes | None
    original: bytes | None
    fp: Fingerprint
    modes: int


class QuerySession(SessionState):
    """A session that runs text statements."""

    def query_command(self, payload: bytes, last_seq: int, raw: bytes | None) -> None:
        """Run one COM_QUERY (the front end's hook)."""
        self.statement_started = perf_counter()
        sql = payload[1:]
        server = self.server
        head = sql.rstrip(_DIGITS)
        if 0 < len(sql) - len(head) < MAX_TRAILING_DIGITS:  # the integers the lane learns
            entry = server.router.express.get(head)
            if (entry is not None and entry.lane and entry.schema == self.schema
                    and entry.admin == self.admin and self.databases is None
                    and self.pinned is None
                    and self.status & _LANE_BITS == _AUTOCOMMIT and self.txn_pending is None
                    and not self.ansi_quotes
                    and self.xa is None and not (entry.multi and self.multi_statements)):
                self.statement_text = entry.key
                server.router.cache.hits += 1  # the express lane is a plan-cache hit
                if server.limiter is not None and self.throttle(
                        server.limiter, entry.plan, entry.key, self._express, entry, sql,
                        len(head), payload, last_seq, raw):
                    return
                self._express(entry, sql, len(head), payload, last_seq, raw)
                return
        if len(sql) >= READ_AWAY_BYTES:
            self.spawn(self._long_query(payload, last_seq, raw))
            return
        self._go(self._read(payload, last_seq, raw), last_seq)

    def _go(self, text: _Text | list | bytes, last_seq: int) -> None:
        """Run what `_read` made of a COM_QUERY."""
        if text.__class__ is list:
            self.spawn(multi.run_batch(self, text))  # type: ignore[arg-type]
        elif text.__class__ is bytes:
            self.spawn(self._admin(text))  # type: ignore[arg-type]
        else:
            self.statement_text = text.fp.key  # type: ignore[union-attr]
            plan = plan_now(self, text.sql, text.fp, text.modes, text.original)  # type: ignore[union-attr]
            if plan is not None:  # the common case: no closure
                self._planned(plan, text, last_seq)  # type: ignore[arg-type]
            else:
                plan_later(self, text.sql, text.fp, text.modes, text.original,  # type: ignore[union-attr]
                           lambda plan: self._planned(plan, text, last_seq))  # type: ignore[arg-type]

    def _read(self, payload: bytes, last_seq: int, raw: bytes | None) -> _Text | list | bytes:
        """A COM_QUERY read as the backend reads it, ready to plan; or the statements of a
        multi-statement batch; or an admin statement's text. It only reads the session, so
        the planner thread may run it (dal/session/planning.py)."""
        sql = payload[1:]
        if self.multi_statements and b";" in sql:
            statements = split_statements(sql)
            if len(statements) > 1:
                return statements
        if (sql[:3].upper() in _ADMIN_HEADS or (sql and sql[0] in _SPACE)) and _ADMIN.match(sql):
            return sql
        if rewrites_session_functions(sql):
            sql = self.session_values_in(sql)
            payload = payload[:1] + sql
            raw = None
        modes = self.lexer_modes()
        original = None
        if b"/*" in sql:  # executable comments: planned and sent as the backend reads them
            expanded = self.server.router.expand(sql, modes)
            if expanded is not None and packet_count(len(expanded) + 1) == last_seq + 1:
                original, sql, payload, raw = sql, expanded, b"\x03" + expanded, None
        fp = fingerprint_in_modes(sql, modes) if modes else fingerprint(sql)
        return _Text(sql, payload, raw, original, fp, modes)

    async def _long_query(self, payload: bytes, last_seq: int, raw: bytes | None) -> None:
        """A long COM_QUERY, read on the planner thread."""
        self.planning = True
        try:
            text = await in_planner_thread(self._read, payload, last_seq, raw)
        finally:
            self.planning = False
        self.busy = False
        if not self.closed and not interrupted(self):
            self._go(text, last_seq)

    def _planned(self, plan: Plan, text: _Text, last_seq: int) -> None:
        """A planned text statement, through the rate limits, to its tree."""
        limiter = self.server.limiter
        if limiter is not None and self.throttle(limiter, plan, text.fp.key, self._run_plan,
                                                 plan, text.fp, text.sql, text.payload,
                                                 last_seq, text.raw):
            return
        self._run_plan(plan, text.fp, text.sql, text.payload, last_seq, text.raw)

    def _run_plan(self, plan: Plan, fp: Fingerprint, sql: bytes, payload: bytes, last_seq: int,
                  raw: bytes | None) -> None:
        """Run a planned text statement: its tree, through the execution context."""
        kind = plan.kind
        if kind == ROUTE:
            if plan.handler == "end" and self._end_transaction(sql):
                return
            if self.status & _LANE_BITS == _AUTOCOMMIT and not self.ansi_quotes:
                self.server.router.learn_express(sql, fp, plan, self.schema, self.admin)
        elif (kind == LOCAL and plan.handler == "session_functions"
              and self.pin_reason == "found_rows" and self.pinned is not None):
            # FOUND_ROWS() of SQL_CALC_FOUND_ROWS: the pinned connection holds it
            self.relay.route(Plan(ROUTE, instance=self.pinned.instance, anywhere=True,
                                  statement="select"), payload, last_seq, RESULT, raw)
            return
        slots = fp.slots(sql) if kind in _SLOTTED else _NO_SLOTS
        run_tree(self, plan, TextBindings(slots, plan, sql, payload, last_seq, raw, fp))

    def _end_transaction(self, sql: bytes) -> bool:
        """COMMIT or ROLLBACK DAL answers itself (mode xa, or nothing open): True if it did."""
        if self.xa is not None:
            self.spawn(self._xa_end(xa.is_commit(sql)))
            return True
        self.snapshot = False
        if self.migration_txn is not None:  # it wrote a live migration's tables
            self.spawn(migration_txn.end(self, sql, xa.is_commit(sql)))
            return True
        if self.pinned is not None:
            return False
        xa.clear_pending(self)  # a BEGIN not sent yet ends here
        self.status &= ~_IN_TRANS
        self.send(ok_packet(self._seq, self.status))
        return True

    def throttle(self, limiter: Limiter, plan: Plan, key: bytes, resume: Callable[..., None],
                 *args: object) -> bool:
        """Rate limits (pool/limits.py) of a statement with fingerprint ``key``. True when it
        was refused, or delayed: ``resume(*args)`` then runs it when its token is due, and the
        session reads nothing else meanwhile."""
        try:
            wait = limiter.check(self.user, key, plan.tables)
        except Throttled as exc:
            self.server.protection.count_throttled(exc.rule)
            self.send_error(ERR(exc.code, str(exc), exc.sqlstate))
            return True
        if not wait:
            return False
        self.busy = True
        asyncio.get_running_loop().call_later(wait, self._run_delayed, resume, args)
        return True

    def _run_delayed(self, resume: Callable[..., None], args: tuple) -> None:
        self.busy = False
        if self.phase != COMMAND:
            if self.phase == CLOSED:
                self.release_backend()
            return
        try:
            resume(*args)
        except Exception:
            self.internal_error("command failed")
        if not self.busy:
            self.drain()

    def _express(self, entry: Express, sql: bytes, cut: int, payload: bytes, last_seq: int,
                 raw: bytes | None) -> None:
        """The express lane (router/express.py): ``sql[:cut]`` is a head whose route is known,
        and ``sql[cut:]`` the integer that ends the statement."""
        if entry.lane == PASS:
            self.relay.route(entry.plan, payload, last_seq, RESULT, raw)
            return
        key = sql[cut:]
        route, head, rename = express_route(entry, entry.shard_of(int(key)))
        self.relay.route(route, head + key, 0, RESULT, None, rename)

    async def _xa_end(self, commit: bool) -> None:
        if self.migration_txn is not None:  # it wrote a live migration's tables
            failed = await migration_txn.end_xa(self, commit)
        else:
            failed = await xa.end(self, commit) is not None
        self.server.finish_statement("transaction", failed, self.statement_started,
                                    self.statement_text)
        self.busy = False

    def run_query(self, payload: bytes, seq: int) -> None:
        """Run one COM_QUERY ``payload`` of a multi-statement batch, its reply framed from
        ``seq`` (dal/multi.py)."""
        self._seq = seq
        self.query_command(payload, 0, None)

    async def _admin(self, sql: bytes) -> None:
        from dal import admin

        if sql.lstrip()[:7].upper() == b"EXPLAIN":  # for every user: it runs nothing
            self.send(await admin.explain(self.server, sql, self.schema, self.admin,
                                          seq=self._seq, status=self.status,
                                          extended=self.extended_metadata,
                                          databases=self.databases,
                                          session_values=self.session_values_in))
        elif not self.admin:
            self.error(errors.SPECIFIC_ACCESS_DENIED, "Access denied; you need (at least one "
                        "of) the DAL admin privilege(s) for this operation")
        elif migration_admin.matches(sql):  # waits for the fleet: not on the event loop
            self.send(await migration_admin.execute(self.server, sql.decode("utf-8", "replace"),
                                                    seq=self._seq, status=self.status))
        else:
            response = await admin.answer(self.server, sql.decode("utf-8", "replace"),
                                          seq=self._seq, status=self.status,
                                          extended=self.extended_metadata)
            self.send(response)
        self.busy = False
