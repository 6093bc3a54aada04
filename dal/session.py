"""One client connection: login, then commands, each planned by the router and executed.

The front end (`dal.frontend.Frontend`, which this class extends) reads the client's bytes as
`dal.wire` events; each goes to its handler through the dispatch table at the end of the
command-phase section. The command phase runs in `asyncio.Protocol` callbacks: a repeated
statement routed to one backend goes fingerprint -> plan cache -> idle pooled connection ->
relay, with no coroutine, no sqlglot and no row decoding. Everything else (login, state
replay, waiting for a pooled connection, statements DAL answers itself) runs in a coroutine,
the slow path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING

from dal import (
    bulk,
    change_user,
    errors,
    executor,
    idle,
    local,
    lost,
    multi,
    prepared,
    sessions_view,
    set_values,
    table_status,
    timeouts,
    xa,
)
from dal.frontend import Frontend
from dal.login import LoginResult, err_packet, ok_packet
from dal.shard_route import route_plan, shard_renamer
from dal.wire.constants import MARIADB_CLIENT_STMT_BULK_OPERATIONS, Capability, Command, Status
from dal.wire.events import (
    ComChangeUser,
    ComFieldList,
    ComInitDb,
    ComPing,
    ComQuery,
    ComQuit,
    ComResetConnection,
    ComSetOption,
    ComStatistics,
    ComStmtBulkExecute,
    ComStmtClose,
    ComStmtExecute,
    ComStmtFetch,
    ComStmtPrepare,
    ComStmtReset,
    ComStmtSendLongData,
    EmptyPacket,
    StmtCommand,
    UnknownCommand,
)
from dal.wire.framing import frame, packet_count
from dal.wire.messages import ERR
from dal.wire.results import FIELD_LIST, ONE_PACKET, RESULT, ResponseScanner
from dal.wire.server import CLOSED, COMMAND
from pool.connection import (
    BackendConnection,
    BackendError,
    Result,
    decode_packets,
    decode_response,
)
from pool.limits import Limiter, Throttled
from pool.rename import HeaderRenamer
from pool.state import apply_state
from router.access import BAD_CHARSET, unsafe_charset_refusal
from router.express import PASS, Express
from router.fingerprint import (
    MAX_TRAILING_DIGITS,
    Fingerprint,
    fingerprint,
    fingerprint_in_modes,
)
from router.plan import LOCAL, REFUSE, ROUTE, SET, SHARDED, Plan
from router.rows.buffer import u16
from router.rows.columns import ColumnDefinition
from router.rows.errors import ProtocolError
from router.session_functions import rewrites as rewrites_session_functions
from router.session_functions import substitute_session_functions
from router.split import split_statements
from router.sqltext import ANSI_QUOTES, modes_of
from router.targets import single_target

if TYPE_CHECKING:
    from dal.prepared import Registry
    from dal.server import Server
    from dal.xa import XaTransaction

log = logging.getLogger("dal.session")

_ADMIN = re.compile(rb"(?i)\s*(SHOW|SET|RELOAD|EXPLAIN)\s+DAL\b")
# What an admin statement can start with: the regex runs only for these, not for every SELECT.
_ADMIN_HEADS = frozenset({b"SHO", b"SET", b"REL", b"EXP"})
_SPACE = frozenset(b" \t\r\n\x0b\x0c")
_DIGITS = b"0123456789"
# Plain ints: IntFlag arithmetic is slow Python code, and this runs per statement.
# NO_BACKSLASH_ESCAPES follows the session's sql_mode (replayed on every backend connection
# it uses): drivers escape string parameters by it, so DAL's own OK/EOF packets carry it too.
_SESSION_STATUS = int(Status.IN_TRANS | Status.AUTOCOMMIT | Status.IN_TRANS_READONLY
                      | Status.NO_BACKSLASH_ESCAPES)
_NBE = int(Status.NO_BACKSLASH_ESCAPES)
_IN_TRANS = int(Status.IN_TRANS)
_AUTOCOMMIT = int(Status.AUTOCOMMIT)
_TXN_BITS = _IN_TRANS | _AUTOCOMMIT  # anything but AUTOCOMMIT alone: inside a transaction
# The express lane and its learning: autocommit, outside a transaction, read with the ordinary
# lexer (no NO_BACKSLASH_ESCAPES: its heads were learnt under the default reading).
_LANE_BITS = _TXN_BITS | _NBE


class ClientSession(Frontend):
    """One client's session: its state, and a handler for each command event."""

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.user = ""
        self.admin = False
        self.capabilities = 0
        self.bulk = False  # COM_STMT_BULK_EXECUTE negotiated (MariaDB extended capability)
        self.scramble = b""  # the last one sent to the client (COM_CHANGE_USER answers over it)
        self.wait_timeout = 0  # the client's SET wait_timeout (dal/idle.py); 0: not enforced
        self.idle_since: float | None = None
        self.idle_mark = 0
        self.found_rows = False
        self.schema: str | None = None
        self.state: dict[str, str] = {}
        self.login_names: str | None = None  # the handshake's character set, as SET NAMES
        self.pinned: BackendConnection | None = None
        self.soft_pin = False  # pinned only to keep the last statement's diagnostics
        self.pin_reason: str | None = None
        self.last_insert_id = 0
        self.row_count = -1  # ROW_COUNT() of the last statement (-1 after a result set)
        self.found_rows_count = 0  # FOUND_ROWS(): rows of the last result set
        self.txn_pending: str | None = None  # BEGIN asked for, not yet sent to a backend
        self.txn_shard: bytes | None = None  # the shard database the open transaction uses
        self.xa: XaTransaction | None = None  # the open transaction in mode xa (dal/xa.py)
        # Begun WITH CONSISTENT SNAPSHOT (a dump): scatter reads may run beside it (executor).
        self.snapshot = False
        self.status = int(Status.AUTOCOMMIT)
        self.ansi_quotes = 0  # sqltext.ANSI_QUOTES when the session's sql_mode has it
        self._plan: Plan | None = None
        self.serving: BackendConnection | None = None  # the relay's connection (for KILL QUERY)
        self._pending: tuple | None = None
        self._timer: object | None = None  # statement timeout (dal/timeouts.py)
        self.multi_statements = False
        self._started = 0.0  # perf_counter() when the current statement arrived
        self._fp: bytes | None = None  # its fingerprint, for SHOW DAL STATEMENTS
        self.prepared: Registry | None = None  # COM_STMT_* statements, made at first use

    # -- login -------------------------------------------------------------------------------

    def open_session(self, result: LoginResult) -> ERR | None:
        """Take the logged-in user's session (the front end's hook); an ERR refuses it."""
        self.user = result.user
        self.admin = result.user_config.role.value == "admin"
        self.capabilities = result.capabilities
        self.found_rows = bool(result.capabilities & Capability.FOUND_ROWS)
        self.multi_statements = bool(result.capabilities & Capability.MULTI_STATEMENTS)
        self.bulk = bool(result.extended & MARIADB_CLIENT_STMT_BULK_OPERATIONS)
        self.scramble = result.scramble
        names = self.login_names = self.server.names_for_collation(result.collation)
        if names is not None and (unsafe := unsafe_charset_refusal(names.split()[1])):
            return ERR(BAD_CHARSET[0], unsafe, BAD_CHARSET[1])
        if names is not None:
            self.state["names"] = names
        if result.database is not None:
            problem = self._check_database(result.database)
            if problem is not None:
                return problem
            self.schema = result.database
        return None

    def _check_database(self, name: str) -> ERR | None:
        if name.lower() == "information_schema":  # its tables unqualified would bypass the view
            return ERR(errors.DB_ACCESS_DENIED[0], f"Access denied for user '{self.user}'@"
                       f"'{self.peer}' to database '{name}' (DAL shows information_schema as "
                       "its logical view: qualify its tables, information_schema.TABLES)",
                       errors.DB_ACCESS_DENIED[1])
        if name not in self.server.config.databases:
            return ERR(errors.BAD_DB[0], f"Unknown database '{name}'", errors.BAD_DB[1])
        allowed = self.server.config.users[self.user].databases
        if allowed is not None and name not in allowed:
            return ERR(errors.DB_ACCESS_DENIED[0], f"Access denied for user '{self.user}'@"
                       f"'{self.peer}' to database '{name}'", errors.DB_ACCESS_DENIED[1])
        return None

    # -- command phase -----------------------------------------------------------------------

    def _on_query(self, event: ComQuery) -> None:
        self._query(event.payload, event.last_seq, event.raw)

    def _on_execute(self, event: ComStmtExecute) -> None:  # the other hot path
        self._started = perf_counter()
        prepared.execute(self, event.payload, event.last_seq)

    def _on_ping(self, event: ComPing) -> None:
        self._write(ok_packet(self._seq, self.status))

    def _on_quit(self, event: ComQuit) -> None:
        self._close_backend()
        self._close()

    def _on_init_db(self, event: ComInitDb) -> None:
        self._use(event.name)

    def _on_field_list(self, event: ComFieldList) -> None:
        self._spawn(self._field_list(event.payload))

    def _on_statistics(self, event: ComStatistics) -> None:
        plan = self.server.router.default_plan(self.schema)
        self._route(plan, event.payload, event.last_seq, shape=ONE_PACKET)

    def _on_reset_connection(self, event: ComResetConnection) -> None:
        self._spawn(self._reset_connection())

    def _on_change_user(self, event: ComChangeUser) -> None:
        self._spawn(change_user.run(self, event.payload))

    def _on_set_option(self, event: ComSetOption) -> None:
        if event.option not in (0, 1):
            self._error(errors.UNKNOWN_COMMAND, "COM_SET_OPTION: bad option")
        else:  # 0: MYSQL_OPTION_MULTI_STATEMENTS_ON, 1: OFF
            self.multi_statements = event.option == 0
            self._write(frame(b"\xfe\x00\x00" + u16(self.status), self._seq))

    def _on_stmt(self, event: StmtCommand) -> None:
        prepared.dispatch(self, event.code, event.payload, event.last_seq)

    def _on_bulk_execute(self, event: ComStmtBulkExecute) -> None:
        if not self.bulk:  # not negotiated: as unknown as any other
            self._on_unknown(UnknownCommand(Command.STMT_BULK_EXECUTE))
            return
        statement = prepared.named_statement(self, event.payload, "mysqld_stmt_bulk_execute")
        if statement is not None:
            self._started = perf_counter()
            self._spawn(bulk.run(self, statement, event.payload))

    def _on_unknown(self, event: UnknownCommand) -> None:
        code = event.code
        name = Command(code).name if code in Command._value2member_map_ else "?"
        self._error(errors.UNKNOWN_COMMAND,
                    f"Unknown command 0x{code:02x} (COM_{name}): DAL does not support it")

    def _on_empty(self, event: EmptyPacket) -> None:
        self._error(errors.UNKNOWN_COMMAND, "Unknown command: empty packet")

    handlers = {
        ComQuery: _on_query, ComStmtExecute: _on_execute, ComPing: _on_ping,
        ComQuit: _on_quit, ComInitDb: _on_init_db, ComFieldList: _on_field_list,
        ComStatistics: _on_statistics, ComResetConnection: _on_reset_connection,
        ComChangeUser: _on_change_user, ComSetOption: _on_set_option,
        ComStmtPrepare: _on_stmt, ComStmtClose: _on_stmt, ComStmtReset: _on_stmt,
        ComStmtSendLongData: _on_stmt, ComStmtFetch: _on_stmt,
        ComStmtBulkExecute: _on_bulk_execute, UnknownCommand: _on_unknown,
        EmptyPacket: _on_empty,
    }

    def _query(self, payload: bytes, last_seq: int, raw: bytes | None) -> None:
        self._started = perf_counter()
        sql = payload[1:]
        server = self.server
        head = sql.rstrip(_DIGITS)
        if 0 < len(sql) - len(head) < MAX_TRAILING_DIGITS:  # the integers the lane learns
            entry = server.router.express.get(head)
            if (entry is not None and entry.lane and entry.schema == self.schema
                    and entry.admin == self.admin and self.pinned is None
                    and self.status & _LANE_BITS == _AUTOCOMMIT and self.txn_pending is None
                    and not self.ansi_quotes
                    and self.xa is None and not (entry.multi and self.multi_statements)):
                self._fp = entry.key
                server.router.cache.hits += 1  # the express lane is a plan-cache hit
                if server.limiter is not None and self.throttle(
                        server.limiter, entry.plan, entry.key, self._express, entry, sql,
                        len(head), payload, last_seq, raw):
                    return
                self._express(entry, sql, len(head), payload, last_seq, raw)
                return
        if self.multi_statements and b";" in sql:
            statements = split_statements(sql)
            if len(statements) > 1:
                self._spawn(multi.run_batch(self, statements))
                return
        if (sql[:3].upper() in _ADMIN_HEADS or (sql and sql[0] in _SPACE)) and _ADMIN.match(sql):
            self._spawn(self._admin(sql))
            return
        if rewrites_session_functions(sql):
            sql = self.session_values_in(sql)
            payload = payload[:1] + sql
            raw = None
        modes = self.lexer_modes()
        original = None
        if b"/*" in sql:  # executable comments: planned and sent as the backend reads them
            expanded = server.router.expand(sql, modes)
            if expanded is not None and packet_count(len(expanded) + 1) == last_seq + 1:
                original, sql, payload, raw = sql, expanded, b"\x03" + expanded, None
        fp = fingerprint_in_modes(sql, modes) if modes else fingerprint(sql)
        self._fp = fp.key
        plan = server.router.plan(sql, fp, self.schema, self.admin, modes, original)
        if server.limiter is not None and self.throttle(server.limiter, plan, fp.key,
                                                        self._run_plan, plan, fp, sql, payload,
                                                        last_seq, raw):
            return
        self._run_plan(plan, fp, sql, payload, last_seq, raw)

    def _run_plan(self, plan: Plan, fp: Fingerprint, sql: bytes, payload: bytes, last_seq: int,
                  raw: bytes | None) -> None:
        server = self.server
        kind = plan.kind
        if kind == ROUTE:
            if plan.handler == "end":
                if self.xa is not None:
                    self._spawn(self._xa_end(xa.is_commit(sql)))
                    return
                self.snapshot = False
                if self.pinned is None:  # COMMIT/ROLLBACK, nothing open
                    self.txn_pending = None
                    self.txn_pending = xa.next_pending(self)
                    self.status &= ~_IN_TRANS
                    self._write(ok_packet(self._seq, self.status))
                    return
            if self.status & _LANE_BITS == _AUTOCOMMIT and not self.ansi_quotes:
                server.router.learn_express(sql, fp, plan, self.schema, self.admin)
            self._route(plan, payload, last_seq, RESULT, raw)
        elif kind == SHARDED:
            self._sharded(plan, fp.slots(sql), sql, fp)
        elif kind == REFUSE:
            code, state, message = plan.error  # type: ignore[misc]
            server.count_refusal(code)
            if plan.rule is not None:
                server.protection.count_rule(plan.rule)
            self._write(err_packet(ERR(code, message, state), self._seq))
        elif kind == SET:
            self._spawn(self._set(plan))
        elif kind == LOCAL:
            if (plan.handler == "session_functions" and self.pin_reason == "found_rows"
                    and self.pinned is not None):  # FOUND_ROWS() of SQL_CALC_FOUND_ROWS
                self._route(Plan(ROUTE, instance=self.pinned.instance, anywhere=True,
                                 statement="select"), payload, last_seq, RESULT, raw)
                return
            self._spawn(self._local(plan))

    def throttle(self, limiter: Limiter, plan: Plan, key: bytes, resume: Callable[..., None],
                 *args: object) -> bool:
        """Rate limits (pool/limits.py) of a statement with fingerprint ``key``. True when it
        was refused, or delayed: ``resume(*args)`` then runs it when its token is due, and the
        session reads nothing else meanwhile."""
        try:
            wait = limiter.check(self.user, key, plan.tables)
        except Throttled as exc:
            self.server.protection.count_throttled(exc.rule)
            self._send_error(ERR(exc.code, str(exc), exc.sqlstate))
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
                self._close_backend()
            return
        try:
            resume(*args)
        except Exception:
            self.internal_error("command failed")
        if not self.busy:
            self._drain()

    # -- routing: the hot path ---------------------------------------------------------------

    def _route(self, plan: Plan, payload: bytes, last_seq: int, shape: int = RESULT,
               raw: bytes | None = None, rename: HeaderRenamer | None = None) -> None:
        conn = self.pinned
        if conn is not None and (conn.closed or (conn.instance != plan.instance
                                 and not plan.anywhere)):  # a dead soft pin is replaced too
            conn = self.drop_soft_pin()
        if plan.own_connection is not None and conn is None:
            self._error(errors.NOT_SUPPORTED, f"{plan.own_connection} is answered only inside a "
                        "transaction or after SQL_CALC_FOUND_ROWS, on the session's own backend "
                        "connection: outside one, the pooled connection's value belongs to "
                        "whichever session used it last")
            return
        if plan.diagnostics and conn is None:
            # The previous statement left no warnings on any connection of this session; a
            # pooled connection's diagnostics belong to whoever used it before.
            if plan.args[0] == "list":
                self._write(local.empty_warnings(seq=self._seq, status=self.status))
            else:
                self._write(local.session_values([(plan.args[0], 0)], seq=self._seq,
                                                 status=self.status))
            return
        if conn is not None:
            if self.xa is not None and plan.anywhere and xa.savepoint_refusal(payload[1:]):
                self._error(errors.NOT_SUPPORTED, "SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK "
                            "TO are not supported in transaction mode 'xa' (a savepoint would "
                            "cover one backend only); ROLLBACK the whole transaction instead")
                return
            if conn.instance != plan.instance and plan.anywhere:
                plan = replace(plan, instance=conn.instance, schema=None)
            elif conn.instance != plan.instance and self.xa is not None:
                self._spawn(self._route_slow(plan, payload, last_seq, None, shape, rename))
                return
            elif conn.instance != plan.instance:
                self._error(errors.NOT_SUPPORTED, f"this session is pinned to backend "
                            f"{conn.instance} ({self.pin_reason or 'open transaction'}); the "
                            f"statement needs backend {plan.instance}. Finish the transaction "
                            "(COMMIT or ROLLBACK) first")
                return
        else:
            try:
                conn = self.server.pools[plan.instance].request(  # type: ignore[index]
                    self.found_rows, self._connection_ready)
            except BackendError as exc:
                self._send_error(exc.to_err())
                return
            if conn is None:  # queued: `_connection_ready` continues
                self.busy = True
                self._pending = (plan, payload, last_seq, shape, raw, rename)
                return
        self._run_on(conn, plan, payload, last_seq, shape, raw, rename)

    def _connection_ready(self, conn: BackendConnection | None,
                          error: BackendError | None) -> None:
        """Pool callback: the connection this session queued for, or why there is none."""
        pending = self._pending
        self._pending = None
        if conn is None or pending is None:
            self.busy = False
            if error is not None:
                self._send_error(error.to_err())
            if self.phase == COMMAND:
                self._drain()
            return
        if self.phase == CLOSED:
            self.busy = False
            self.server.pools[conn.instance].release(conn)
            return
        self._run_on(conn, *pending)

    def _run_on(self, conn: BackendConnection, plan: Plan, payload: bytes, last_seq: int,
                shape: int, raw: bytes | None, rename: HeaderRenamer | None = None) -> None:
        if (plan.sql is None and (plan.schema is None or conn.schema == plan.schema)
                and conn.variables == self.state and self.txn_pending is None):
            self.busy = True
            self._plan = plan
            self.serving = conn
            conn.relay(raw or frame(payload, 0), self.transport.write,  # type: ignore[union-attr]
                       self._relay_done, shape, rename)
            if self.server.statement_timeout:
                timeouts.arm(self, conn)
            return
        self._spawn(self._route_slow(plan, payload, last_seq, conn, shape, rename))

    def _relay_done(self, conn: BackendConnection, scanner: ResponseScanner | None) -> None:
        plan = self._plan
        self._plan = None
        self.serving = None
        self.busy = False
        if self._timer is not None:
            timeouts.ended(self, conn, scanner)  # a held answer or the timeout ERR goes out
        if scanner is None:
            if not lost.retry(self, conn, plan):  # run again on a fresh connection if safe
                self._backend_lost(conn)
            return
        if scanner.insert_id:
            self.last_insert_id = scanner.insert_id
        self._note_counts(scanner)
        # Warnings or an error stay readable for one more statement; SHOW WARNINGS itself
        # clears nothing, so they stay readable after it too.
        self._after_statement(conn, scanner.status, scanner.warnings > 0 or scanner.error
                              or (plan is not None and plan.diagnostics), plan)
        self.server.finish_statement(plan.statement if plan else "other", scanner.error,
                                     self._started, self._fp)
        if self.phase == COMMAND:
            self._drain()
        elif self.phase == CLOSED:
            self._close_backend()

    def _after_statement(self, conn: BackendConnection, status: int, diagnostics: bool,
                         plan: Plan | None) -> None:
        """Keep the connection pinned to this session, or give it back to its pool.

        ``diagnostics``: the statement left warnings or an error, which only this connection
        can show; it stays with the session for one more statement, for SHOW WARNINGS.
        """
        self.status = status & _SESSION_STATUS
        if plan is not None and plan.pin is not None and self.pin_reason is None:
            self.pin_reason = plan.pin
            self.server.count_pin(plan.pin)
        if status & _IN_TRANS or self.pin_reason is not None or diagnostics:
            if self.pinned is not conn and self.pin_reason is None:
                self.server.count_pin("transaction" if status & _IN_TRANS else "diagnostics")
            self.pinned = conn
            self.soft_pin = not (status & _IN_TRANS or self.pin_reason is not None)
            if not status & _IN_TRANS:
                self.txn_shard = None
            return
        self.pinned = None
        self.server.pools[conn.instance].release(conn)

    def _backend_lost(self, conn: BackendConnection) -> None:
        relayed = conn.response_started
        error = lost.lost_error(self, conn)
        self.pinned = None
        self.pin_reason = None
        xa.forget(self, conn)
        self.server.pools[conn.instance].release(conn, reusable=False)
        if relayed:  # part of a result already went out: the client must see a broken link
            self._abort()
            return
        self._send_error(error)
        if self.phase == COMMAND:
            self._drain()

    # -- the slow paths ----------------------------------------------------------------------

    def _spawn(self, coro) -> None:
        self.busy = True
        task = asyncio.ensure_future(coro)
        self._task = task
        task.add_done_callback(self._slow_done)

    def _slow_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.internal_error("slow path failed", exc)
        if self.busy:
            return
        if self.phase == COMMAND:
            self._drain()
        elif self.phase == CLOSED:
            self._close_backend()

    async def _ready_connection(self, instance: str, schema: str | None,
                                state: dict[str, str], conn: BackendConnection | None = None,
                                begin: bool = True) -> BackendConnection | None:
        """A connection for this session's next statement, with schema and variables replayed
        (and a deferred BEGIN sent if ``begin``). On failure the ERR is sent, the connection
        given back, and None returned."""
        try:
            if conn is not None and conn.closed:  # died since it was handed over
                conn = lost.drop_if_dead(self, conn)
            if conn is None:
                conn = await self._connection_for(instance)
            await apply_state(conn, schema, state)
            if begin:
                await self._begin_if_pending(conn)
        except BackendError as exc:
            if conn is not None:
                self._give_back(conn, conn.status, None)
            self._send_error(exc.to_err())
            self.busy = False
            return None
        return conn

    async def _begin_if_pending(self, conn: BackendConnection) -> None:
        """Open the transaction the client asked for on the connection its first statement
        uses (BEGIN is deferred until DAL knows which backend the transaction lives on)."""
        statement = self.txn_pending
        if statement is not None:
            self.txn_pending = None
            if self.server.xa is not None:
                await xa.begin(self, conn)
            else:
                await conn.query(statement)

    # -- sharded plans -----------------------------------------------------------------------

    def shard_targets(self, sharded: object, slots: list[list[bytes]]) -> list | None:
        """The shards a sharded plan reaches with these slot values, for text statements and
        prepared executions alike; None after sending the refusal when it may reach none (a
        bad key value, a join away from its home, a second shard inside a transaction)."""
        config = self.server.config
        try:
            target = single_target(config, sharded, slots)  # type: ignore[arg-type]
            shards = [target] if target is not None else executor.targets(
                config, sharded, slots)  # type: ignore[arg-type]
        except executor.Refusal as exc:
            self._send_error(ERR(exc.code, str(exc), exc.sqlstate))
            return None
        if len(shards) == 1 and not self.shard_allowed(shards[0].database):
            return None
        return shards

    def shard_allowed(self, database: bytes) -> bool:
        """False after sending the refusal when an open transaction already uses another
        shard (`second_shard_refusal`); one integer test outside transactions."""
        if self.status & _TXN_BITS == _AUTOCOMMIT:
            return True
        refusal = self.second_shard_refusal(database)
        if refusal is None:
            return True
        self._error(errors.NOT_SUPPORTED, refusal)
        return False

    def _express(self, entry: Express, sql: bytes, cut: int, payload: bytes, last_seq: int,
                 raw: bytes | None) -> None:
        """The express lane (router/express.py): ``sql[:cut]`` is a head whose route is known,
        and ``sql[cut:]`` the integer that ends the statement."""
        if entry.lane == PASS:
            self._route(entry.plan, payload, last_seq, RESULT, raw)
            return
        shard = entry.shard_of(int(sql[cut:]))
        target = entry.targets[shard]
        if target is None:
            found, head = entry.target(shard)
            target = entry.targets[shard] = (
                route_plan(found.instance, entry.plan.statement), head,
                shard_renamer(entry.plan.sharded, found.database))
        route, head, rename = target
        self._route(route, head + sql[cut:], 0, RESULT, None, rename)

    def _sharded(self, plan: Plan, slots: list[list[bytes]], sql: bytes = b"",
                 fp: Fingerprint | None = None) -> None:
        sharded = plan.sharded
        if sharded.insert is not None:  # type: ignore[union-attr]
            self._spawn(self._insert(plan, slots))
            return
        shards = self.shard_targets(sharded, slots)
        if shards is None:
            return
        if len(shards) == 1:
            if (fp is not None and self.status & _LANE_BITS == _AUTOCOMMIT
                    and not self.ansi_quotes):
                self.server.router.learn_express(sql, fp, plan, self.schema, self.admin)
            target = shards[0]
            sql = sharded.template.render(slots, target.database, target.only)  # type: ignore[union-attr]
            route = route_plan(target.instance, plan.statement)
            self._route(route, b"\x03" + sql, 0, RESULT, None,
                        shard_renamer(sharded, target.database))
            return
        self._spawn(self._scatter(plan, slots, shards))

    async def _scatter(self, plan: Plan, slots: list[list[bytes]], shards: list) -> None:
        failed = True
        try:
            response = await executor.scatter(self, plan.sharded, slots, shards,  # type: ignore[arg-type]
                                              self.server.config.server.max_merge_rows)
            self.note_response(response)
            self._write(response)
            failed = False
        except executor.Refusal as exc:
            self._send_error(ERR(exc.code, str(exc), exc.sqlstate))
        except BackendError as exc:
            self._send_error(exc.to_err())
        self.server.finish_statement(f"scatter:{plan.statement}", failed, self._started,
                                     self._fp)
        self.busy = False

    async def _xa_end(self, commit: bool) -> None:
        failed = await xa.end(self, commit) is not None
        self.server.finish_statement("transaction", failed, self._started, self._fp)
        self.busy = False

    async def _insert(self, plan: Plan, slots: list[list[bytes]]) -> None:
        try:
            response, first_id = await executor.insert(self, plan.sharded, slots)  # type: ignore[arg-type]
        except executor.Refusal as exc:
            self._send_error(ERR(exc.code, str(exc), exc.sqlstate))
        except BackendError as exc:
            self._send_error(exc.to_err())
        else:
            if first_id:
                self.last_insert_id = first_id
            self.note_response(response)
            self._write(response)
            self.server.finish_statement(f"insert:{plan.statement}", False, self._started,
                                         self._fp)
        self.busy = False

    async def run_in_session(self, instance: str, sql: bytes) -> Result:
        """Run one statement on ``instance`` as part of this session: on its pinned connection
        (or a pooled one, with the session's state), opening a pending transaction, and keeping
        the connection pinned if the reply says a transaction is open."""
        conn = await self._connection_for(instance)
        try:
            await apply_state(conn, None, self.state)
            await self._begin_if_pending(conn)
            result = decode_response(await timeouts.timed_command(self.server, conn,
                                                                  frame(b"\x03" + sql, 0)))
        except BackendError:
            self._give_back(conn, conn.status, None)
            raise
        self._give_back(conn, result.status, None)
        return result

    def second_shard_refusal(self, database: bytes) -> str | None:
        """Inside a transaction (mode `single`): the first shard database a statement reaches
        is the transaction's; a statement for another shard gets this refusal message, even on
        the same backend instance, so that moving a shard never changes what commits together."""
        if self.status & _TXN_BITS == _AUTOCOMMIT or self.server.xa is not None:
            return None
        if self.pinned is None or self.soft_pin or self.txn_shard is None:
            self.txn_shard = database  # the transaction's first shard statement
            return None
        if self.txn_shard == database:
            return None
        return (f"this transaction already uses shard {self.txn_shard.decode()}; a statement "
                f"for shard {database.decode()} is refused inside it (transaction mode "
                "'single'). Keep a transaction on one user, or COMMIT first; the transaction "
                "stays open")

    @property
    def statement_text(self) -> bytes | None:
        """The current (or last) statement's fingerprint, literals as ``?``."""
        return self._fp

    @property
    def statement_started(self) -> float:
        """perf_counter() when the current (or last) statement arrived; 0 before the first."""
        return self._started

    def drop_soft_pin(self) -> BackendConnection | None:
        """A connection kept only so that SHOW WARNINGS can read the last statement's
        diagnostics goes back to its pool when the next statement needs another backend or
        several shards; a transaction or a real pin stays. Returns what remains pinned."""
        conn = self.pinned
        if conn is not None and self.soft_pin:
            self.pinned = None
            self.server.pools[conn.instance].release(conn)
            return None
        return conn

    async def _connection_for(self, instance: str) -> BackendConnection:
        if self.xa is not None:
            return await xa.branch(self, instance)
        if self.pinned is not None and (self.pinned.instance != instance or self.pinned.closed):
            self.drop_soft_pin()
        if self.pinned is not None:
            if self.pinned.instance != instance:
                raise BackendError(errors.NOT_SUPPORTED[0], "this session is pinned to backend "
                                   f"{self.pinned.instance}; the statement needs backend "
                                   f"{instance}", errors.NOT_SUPPORTED[1])
            return self.pinned
        return await self.server.pools[instance].acquire(self.found_rows)

    def _give_back(self, conn: BackendConnection, status: int, plan: Plan | None) -> None:
        if conn.closed:
            self.pinned = None
            self.pin_reason = None
            xa.forget(self, conn)
            self.server.pools[conn.instance].release(conn, reusable=False)
            return
        self._after_statement(conn, status, False, plan)

    async def _route_slow(self, plan: Plan, payload: bytes, last_seq: int,
                          conn: BackendConnection | None, shape: int,
                          rename: HeaderRenamer | None = None) -> None:
        conn = await self._ready_connection(plan.instance, plan.schema,  # type: ignore[arg-type]
                                            self.state, conn)
        if conn is None:
            return
        if plan.sql is not None:
            payload = bytes((Command.QUERY,)) + plan.sql
            if packet_count(len(payload)) != last_seq + 1:  # sequence ids would not line up
                await self._collect_and_send(conn, frame(payload, 0), plan, shape)
                return
        self._plan = plan
        self.serving = conn
        conn.relay(frame(payload, 0), self.transport.write,  # type: ignore[union-attr]
                   self._relay_done, shape, rename)
        if self.server.statement_timeout:
            timeouts.arm(self, conn)

    async def _collect_and_send(self, conn: BackendConnection, packets: bytes, plan: Plan | None,
                                shape: int,
                                rewrite: bytes | None = None) -> None:
        """Run a command, then send its response with sequence ids (and schema) rewritten."""
        try:
            raw = await conn.command(packets, shape)
        except BackendError:
            self.busy = False
            self._backend_lost(conn)
            return
        payloads = decode_packets(raw)
        seq = self._seq
        out = []
        for body in payloads:
            if rewrite is not None and body[:1] not in (b"\xfe", b"\xff"):
                col = ColumnDefinition.decode(body)
                col.schema = rewrite
                body = col.encode()
            out.append(frame(body, seq))
            seq += packet_count(len(body))
        self._write(b"".join(out))
        self._give_back(conn, conn.status, plan)
        self.busy = False

    async def _field_list(self, payload: bytes) -> None:
        table, _, _ = payload[1:].partition(b"\x00")
        if self.schema is None:
            self._error(errors.NO_DATABASE, "No database selected")
            self.busy = False
            return
        target = self.server.router.field_list_target(self.schema, table.decode("utf-8", "replace"))
        conn = await self._ready_connection(target.instance, target.schema,  # type: ignore[arg-type]
                                            self.state, begin=False)
        if conn is None:
            return
        rename = self.schema.encode() if target.schema != self.schema else None
        await self._collect_and_send(conn, frame(payload, 0), None, FIELD_LIST, rename)

    async def _set(self, plan: Plan) -> None:
        instance = self.pinned.instance if self.pinned else self.server.default_instance
        assignments = dict(plan.assignments)
        conn = None
        if plan.args:  # SET v = <expression>: its value, with the session's state
            conn = await self._ready_connection(instance, None, self.state, begin=False)
            if conn is None:
                return
            try:
                assignments.update(await set_values.evaluate(conn, plan.args))
            except BackendError as exc:
                self._give_back(conn, conn.status, None)
                self._send_error(exc.to_err())
                self.busy = False
                return
        if "wait_timeout" in assignments or "interactive_timeout" in assignments:
            idle.take_timeouts(self, assignments)  # the session's own, never replayed
        wanted = {**self.state, **assignments}
        if self.xa is not None and wanted.get("autocommit") != self.state.get("autocommit"):
            if conn is not None:
                self._give_back(conn, conn.status, None)
            self._error(xa.IN_TRANSACTION, xa.AUTOCOMMIT_REFUSAL)
            self.busy = False
            return
        conn = await self._ready_connection(instance, None, wanted, conn, begin=False)
        if conn is None:
            return
        self.state = wanted
        self.ansi_quotes = self._ansi_quotes()
        self.txn_pending = xa.next_pending(self)
        self._give_back(conn, conn.status, plan)
        self._write(ok_packet(self._seq, self.status))
        self.busy = False

    def note_response(self, response: bytes) -> None:
        """ROW_COUNT() and FOUND_ROWS() after a response DAL built (a merge, a split insert);
        a streamed scatter (empty here) noted its own."""
        if not response:
            return
        scanner = ResponseScanner(False)
        try:
            scanner.feed(response)
        except ProtocolError:
            return
        self._note_counts(scanner)

    def _note_counts(self, scanner: ResponseScanner) -> None:
        """What ROW_COUNT() and FOUND_ROWS() answer after the response ``scanner`` read."""
        self.row_count = scanner.affected
        if scanner.rows >= 0:
            self.found_rows_count = scanner.rows

    def session_values_in(self, sql: bytes) -> bytes:
        """``sql`` with LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), USER() and CURRENT_USER()
        replaced by this session's values: a backend connection's would be whichever session
        used it last, and its user DAL's backend account.
        FOUND_ROWS() after SQL_CALC_FOUND_ROWS stays: the pinned connection holds it."""
        name = self.user.replace("'", "''")
        user = f"'{name}@{self.peer}'".encode()
        values = {b"LAST_INSERT_ID": str(self.last_insert_id).encode(),
                  b"ROW_COUNT": str(self.row_count).encode(),
                  b"FOUND_ROWS": None if self.pin_reason == "found_rows" else
                  str(self.found_rows_count).encode(),
                  b"USER": user, b"SESSION_USER": user, b"SYSTEM_USER": user,
                  b"CURRENT_USER": f"'{name}@%'".encode()}
        return substitute_session_functions(sql, values)

    def lexer_modes(self) -> int:
        """The session's lexer modes (router/sqltext.py) from its sql_mode."""
        return self.ansi_quotes | (1 if self.status & _NBE else 0)

    def _ansi_quotes(self) -> int:
        value = self.state.get("sql_mode")
        if value is None:
            return 0
        return modes_of(value.partition("=")[2]) & ANSI_QUOTES

    async def _local(self, plan: Plan) -> None:
        server = self.server
        if plan.handler == "begin":
            # A connection kept only for SHOW WARNINGS must not decide where the transaction
            # lives: the transaction's first statement does.
            self.drop_soft_pin()
            self.snapshot = "CONSISTENT SNAPSHOT" in plan.args[0].upper()
            if self.xa is not None:  # BEGIN inside a transaction commits it first
                error = await xa.end(self, commit=True, reply=False)
                if error is not None:
                    self._send_error(error)
                    self.busy = False
                    return
            if self.pinned is not None:  # BEGIN inside a transaction commits it first
                self.busy = False
                self._route(Plan(ROUTE, instance=self.pinned.instance, statement="transaction"),
                            b"\x03" + plan.args[0].encode(), 0)
                return
            self.txn_pending = plan.args[0]
            self.status |= _IN_TRANS
            self._write(ok_packet(self._seq, self.status))
        elif plan.handler == "use":
            self._use(plan.args[0])
        elif plan.handler == "ok":
            self._write(ok_packet(self._seq, self.status))
        elif plan.handler == "table_status":
            try:
                self._write(await table_status.table_status(self, *plan.args))
            except BackendError as exc:
                self._send_error(exc.to_err())
        elif plan.handler == "session_functions":
            values = {"last_insert_id": self.last_insert_id, "connection_id": self.id,
                      "row_count": self.row_count, "found_rows": self.found_rows_count,
                      "user": f"{self.user}@{self.peer}", "current_user": f"{self.user}@%"}
            self._write(local.session_values([(name, values[function])
                                              for name, function in plan.args],
                                             seq=self._seq, status=self.status))
            self.row_count, self.found_rows_count = -1, 1  # as after any one-row SELECT
        elif plan.handler == "show_databases":
            names = ["information_schema", *self._visible_databases()]
            self._write(local.show_databases(names, plan.args[0], seq=self._seq,
                                             status=self.status))
        elif plan.handler == "show_tables":
            db, full, like = plan.args
            try:
                tables = await server.logical_tables(db)
            except BackendError as exc:
                self._send_error(exc.to_err())
            else:
                self._write(local.show_tables(db, tables, full, like, seq=self._seq,
                                              status=self.status))
        elif plan.handler in sessions_view.HANDLERS:
            await sessions_view.HANDLERS[plan.handler](self, plan.args)
        self.busy = False

    def _visible_databases(self) -> list[str]:
        allowed = self.server.config.users[self.user].databases
        return [d for d in self.server.config.databases if allowed is None or d in allowed]

    def _use(self, name: str) -> None:
        problem = self._check_database(name)
        if problem is not None:
            self._send_error(problem)
            return
        self.schema = name
        self._write(ok_packet(self._seq, self.status))

    async def _reset_connection(self) -> None:
        await self._reset_session()
        self._write(ok_packet(self._seq, self.status))
        self.busy = False

    async def _reset_session(self) -> None:
        """What COM_RESET_CONNECTION and COM_CHANGE_USER clear, as MySQL does: the transaction
        (rolled back on the backend), pins, session and user variables, LAST_INSERT_ID().
        The character set goes back to the handshake's, as MariaDB does; prepared statements
        are forgotten."""
        if self.xa is not None:
            await xa.end(self, commit=False, reply=False)
        conn, reason = self.pinned, self.pin_reason
        self.pinned = None
        self.pin_reason = None
        self.soft_pin = False
        self.txn_pending = None
        if conn is not None:
            await self.server.reset_and_release(conn, close=reason == "get_lock")
        self.state = {"names": self.login_names} if self.login_names else {}
        self.status = int(Status.AUTOCOMMIT)
        self.ansi_quotes = 0
        self.last_insert_id = 0
        self.row_count = -1
        self.found_rows_count = 0
        self.prepared = None
        if self.wait_timeout:
            idle.set_wait_timeout(self, 0)

    async def _admin(self, sql: bytes) -> None:
        from dal import admin

        if sql.lstrip()[:7].upper() == b"EXPLAIN":  # for every user: it runs nothing
            self._write(admin.explain(self.server, sql, self.schema, self.admin, seq=self._seq,
                                      status=self.status))
        elif not self.admin:
            self._error(errors.SPECIFIC_ACCESS_DENIED, "Access denied; you need (at least one "
                        "of) the DAL admin privilege(s) for this operation")
        else:
            response = admin.execute(self.server, sql.decode("utf-8", "replace"),
                                     seq=self._seq, status=self.status)
            self._write(response)
        self.busy = False

    # -- teardown ----------------------------------------------------------------------------

    def close_idle(self) -> None:
        """wait_timeout passed (dal/idle.py): reset the connection, as MariaDB does."""
        log.info("session %d: closed after %d s idle (its wait_timeout)", self.id,
                 self.wait_timeout)
        idle.reset_transport(self.transport)
        self.wire.close()

    def release_backend(self) -> None:
        """The front end's hook: the client is gone or going."""
        self._close_backend()

    def _close_backend(self) -> None:
        """Give back whatever this session holds; a pinned connection is reset first."""
        if self.xa is not None:
            xa.abandon(self)  # rolled back, and every branch connection given back
            return
        conn, reason = self.pinned, self.pin_reason
        self.pinned = None
        self.pin_reason = None
        if conn is None:
            return
        if conn.busy or reason == "get_lock":  # a lock held by name dies only with the session
            conn.abort()
            self.server.pools[conn.instance].release(conn, reusable=False)
        else:
            self.server.background(self.server.reset_and_release(conn))

