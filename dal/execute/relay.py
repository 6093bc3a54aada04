"""One statement on one backend, its answer relayed raw to the session's result sink.

The hot path runs in callbacks, with no coroutine: a connection from the pool (an idle one
now, or a callback when one is released), the packets written, the response relayed as it
arrives, the connection kept pinned or given back by `leases.after_statement`. A connection
without the session's state (or a statement that needs rewriting or preparing) takes the slow
path, a coroutine that replays the state first. Text statements, prepared executions, the
express lane and a sharded plan's one target all come through `Relay.route`.

When the pool is full, an autocommit statement that holds no state (a `SHAREABLE` kind) may be
pipelined behind other sessions' statements on a connection (pool/pool.py `offer`, `_join`):
its answer comes back in order, to this session's sink and `done`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dal import errors, local, lost, timeouts, xa
from dal.execute import leases
from dal.execute.home import confined
from dal.execute.leases import AUTOCOMMIT, TXN_BITS
from dal.wire.constants import Command
from dal.wire.framing import frame, packet_count
from dal.wire.results import RESULT, ResponseScanner, encode_result_set
from pool.connection import BackendConnection, BackendError
from pool.rename import HeaderRenamer, rename_column
from pool.responses import decode_packets

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from pool.pool import Pool
    from router.plan import Plan

# Statement kinds that may be pipelined behind other sessions' (with no pin, no rewrite, in
# autocommit): they change no session state on the backend connection.
_QUERY = int(Command.QUERY)  # a plain int: an IntEnum member is slow to read
SHAREABLE = frozenset({"select", "insert", "update", "delete", "shard:select", "shard:insert",
                       "shard:update", "shard:delete"})


def quick_shape(session: SessionPort, pool: Pool) -> bool:
    """May others queue behind the session's statement before ``pool`` is full
    (`pool.pipeline_spread`)? Only if its shape is quick (dal/stats.py `quick`); not looked up
    while spreading is off."""
    return (pool.config.pipeline_spread > 0
            and session.server.stats.quick(session.statement_text))


def refuse_own_connection(session: SessionPort, what: str) -> None:
    """The refusal of ``what`` (FOUND_ROWS() and the like) outside the session's own
    backend connection."""
    session.send_error(errors.err(errors.NOT_SUPPORTED, f"{what} is answered only inside a "
                                  "transaction or after SQL_CALC_FOUND_ROWS, on the session's "
                                  "own backend connection: outside one, the pooled "
                                  "connection's value belongs to whichever session used it "
                                  "last"))


class Relay:
    """The relaying state of one session: the statement in flight (its plan, the connection
    serving it, its statement-timeout timer) and a request queued for a pooled connection."""

    __slots__ = ("offer_quick", "offer_to", "pending", "plan", "serving", "session", "timer")

    def __init__(self, session: SessionPort) -> None:
        self.session = session
        self.plan: Plan | None = None
        self.serving: BackendConnection | None = None  # for KILL QUERY and the timeout
        self.timer: object | None = None  # statement timeout (dal/timeouts.py)
        self.pending: tuple | None = None
        # The pool whose other sessions may pipeline behind the statement about to start (set
        # by `route` for that statement only), or None.
        self.offer_to: Pool | None = None
        self.offer_quick = False  # its shape is quick: others may join before the pool is full

    def route(self, plan: Plan, payload: bytes, last_seq: int, shape: int = RESULT,
              raw: bytes | None = None, rename: HeaderRenamer | None = None) -> None:
        """Run ``payload`` (a command) on ``plan.instance`` and relay its answer; ``raw`` is
        the client's framed packet when it can go unchanged."""
        session = self.session
        if plan.schema is None and session.databases is not None:
            plan = confined(session, plan)  # not wherever the last user left it
        conn = session.pinned
        if conn is not None and (conn.closed or (conn.instance != plan.instance
                                 and not plan.anywhere)):  # a dead soft pin is replaced too
            conn = leases.drop_soft_pin(session)
        if plan.own_connection is not None and conn is None:
            refuse_own_connection(session, plan.own_connection)
            return
        if plan.diagnostics and conn is None:
            # The previous statement left no warnings on any connection of this session; a
            # pooled connection's diagnostics belong to whoever used it before.
            columns, rows = local.no_diagnostics(plan.args[0])
            session.send(encode_result_set(columns, rows, deprecate_eof=False,
                                           status=session.status, seq=session.reply_seq,
                                           extended=session.extended_metadata))
            return
        if conn is not None:
            self.offer_to = None
            if not self._fits_pin(conn, plan, payload):
                return
            if conn.instance != plan.instance and plan.anywhere:
                plan = confined(session, replace(plan, instance=conn.instance,
                                                        schema=None))
            elif conn.instance != plan.instance:  # mode xa: another branch
                session.spawn(self.route_slow(plan, payload, last_seq, None, shape, rename))
                return
        else:
            pool = session.server.pools[plan.instance]  # type: ignore[index]
            # May it be pipelined behind other sessions' statements? A passthrough COM_QUERY of
            # a `SHAREABLE` kind, no pin, autocommit with no transaction open, pending or XA,
            # and no statement timeout to enforce (its KILL QUERY would reach whatever the
            # connection runs). Inline: this runs per statement.
            share = None
            if (pool.config.pipeline_depth and plan.statement in SHAREABLE and plan.sql is None
                    and plan.pin is None and payload[0] == _QUERY
                    and session.txn_pending is None and session.xa is None
                    and session.status & TXN_BITS == AUTOCOMMIT
                    and not session.server.statement_timeout):
                quick = self.offer_quick = quick_shape(session, pool)
                share = plan.schema, session.state, None, quick
                self.offer_to = pool
            try:
                conn = pool.request(session.flavour, self._connection_ready, share)
            except BackendError as exc:
                self.offer_to = None
                session.send_error(exc.to_err())
                return
            if conn is None:  # queued: `_connection_ready` continues
                session.busy = True
                self.pending = (plan, payload, last_seq, shape, raw, rename)
                return
        self._run_on(conn, plan, payload, last_seq, shape, raw, rename)

    def _fits_pin(self, conn: BackendConnection, plan: Plan, payload: bytes) -> bool:
        """May the statement run beside the session's pinned ``conn``? False after the
        refusal went out."""
        session = self.session
        if session.xa is not None and plan.anywhere and xa.savepoint_refusal(payload[1:]):
            session.send_error(errors.err(errors.NOT_SUPPORTED, "SAVEPOINT, RELEASE SAVEPOINT "
                               "and ROLLBACK TO are not supported in transaction mode 'xa' (a "
                               "savepoint would cover one backend only); ROLLBACK the whole "
                               "transaction instead"))
            return False
        if conn.instance == plan.instance or plan.anywhere or session.xa is not None:
            return True
        session.send_error(errors.err(errors.NOT_SUPPORTED, f"this session is pinned to "
                           f"backend {conn.instance} ({session.pin_reason or 'open transaction'})"
                           f"; the statement needs backend {plan.instance}. Finish the "
                           "transaction (COMMIT or ROLLBACK) first"))
        return False

    def _connection_ready(self, conn: BackendConnection | None,
                          error: BackendError | None) -> None:
        """Pool callback: the connection this session queued for, or why there is none."""
        session = self.session
        pending = self.pending
        self.pending = None
        if conn is None or pending is None:
            session.busy = False
            self.offer_to = None
            if error is not None:
                session.send_error(error.to_err())
            session.drain()
            return
        if session.closed:
            session.busy = False
            self.offer_to = None
            session.server.pools[conn.instance].release(conn)
            return
        self._run_on(conn, *pending)

    def _run_on(self, conn: BackendConnection, plan: Plan, payload: bytes, last_seq: int,
                shape: int, raw: bytes | None, rename: HeaderRenamer | None = None) -> None:
        session = self.session
        if (plan.sql is None and (plan.schema is None or conn.schema == plan.schema)
                and conn.variables == session.state and session.txn_pending is None):
            self.start(conn, raw or frame(payload, 0), plan, shape, rename)
            return
        if conn.busy:  # joined for a pipeline (the pool checked the state): never expected
            session.server.pools[conn.instance].release(conn)
            session.busy = False
            session.send_error(errors.err(errors.NOT_SUPPORTED, "DAL: a pipelined statement "
                                          "met a backend connection in another state"))
            session.drain()
            return
        session.spawn(self.route_slow(plan, payload, last_seq, conn, shape, rename))

    def start(self, conn: BackendConnection, packets: bytes, plan: Plan | None,
              shape: int = RESULT, rename: HeaderRenamer | None = None) -> None:
        """Send ``packets`` on ``conn`` (ready: state replayed) and relay the answer."""
        session = self.session
        session.busy = True
        self.plan = plan
        self.serving = conn
        pool = self.offer_to
        if pool is not None:  # set by `route` for this statement only
            self.offer_to = None
            if not conn.shared and session.pinned is not conn:
                pool.offer(conn, self.offer_quick)
        conn.relay(packets, session.sink.write, self.done, shape, rename)
        if session.server.statement_timeout:
            timeouts.arm(session, conn)

    def done(self, conn: BackendConnection, scanner: ResponseScanner | None) -> None:
        """Relay callback: the answer is complete (``scanner``), or the connection broke."""
        session = self.session
        plan = self.plan
        self.plan = None
        self.serving = None
        session.busy = False
        if self.timer is not None:
            timeouts.ended(session, conn, scanner)  # a held answer or the timeout ERR goes out
        if scanner is None:
            if not lost.retry(session, conn, plan):  # run again on a fresh connection if safe
                self.backend_lost(conn)
            return
        if scanner.insert_id:
            session.last_insert_id = scanner.insert_id
        session.note_counts(scanner)
        # Warnings or an error stay readable for one more statement; SHOW WARNINGS itself
        # clears nothing, so they stay readable after it too.
        leases.after_statement(session, conn, scanner.status, scanner.warnings > 0
                               or scanner.error or (plan is not None and plan.diagnostics), plan)
        session.server.finish_statement(plan.statement if plan else "other", scanner.error,
                                        session.statement_started, session.statement_text)
        if scanner.warnings:
            session.server.stats.note_warnings(session.statement_text)
        session.command_ended()

    def backend_lost(self, conn: BackendConnection) -> None:
        """``conn`` broke under the session's statement: 2013 (or a broken client link when
        part of the answer already went out)."""
        session = self.session
        relayed = conn.response_started
        error = lost.lost_error(session, conn)
        session.pinned = None
        session.pin_reason = None
        xa.forget(session, conn)
        session.server.pools[conn.instance].release(conn, reusable=False)
        if relayed:  # part of a result already went out: the client must see a broken link
            session.abort()
            return
        session.send_error(error)
        session.drain()

    async def route_slow(self, plan: Plan, payload: bytes, last_seq: int,
                         conn: BackendConnection | None, shape: int,
                         rename: HeaderRenamer | None = None) -> None:
        """`route` for a connection that needs the session's state replayed first."""
        session = self.session
        conn = await leases.ready_connection(session, plan.instance,  # type: ignore[arg-type]
                                             plan.schema, session.state, conn)
        if conn is None:
            return
        if plan.sql is not None:
            payload = bytes((Command.QUERY,)) + plan.sql
            if packet_count(len(payload)) != last_seq + 1:  # sequence ids would not line up
                await self.collect_and_send(conn, frame(payload, 0), plan, shape)
                return
        self.start(conn, frame(payload, 0), plan, shape, rename)

    async def collect_and_send(self, conn: BackendConnection, packets: bytes,
                               plan: Plan | None, shape: int,
                               rewrite: bytes | None = None) -> None:
        """Run a command, then send its response with sequence ids (and schema) rewritten."""
        session = self.session
        try:
            raw = await conn.command(packets, shape)
        except BackendError:
            session.busy = False
            self.backend_lost(conn)
            return
        seq = session.reply_seq
        out = []
        for body in decode_packets(raw):
            if rewrite is not None and body[:1] not in (b"\xfe", b"\xff"):
                body = rename_column(body, rewrite)
            out.append(frame(body, seq))
            seq += packet_count(len(body))
        session.send(b"".join(out))
        leases.give_back(session, conn, conn.status, plan)
        session.busy = False
