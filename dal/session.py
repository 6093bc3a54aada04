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
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import TYPE_CHECKING, Any

from dal import (
    bulk,
    change_user,
    errors,
    idle,
    local,
    multi,
    prepared,
    sessions_view,
    set_values,
    table_status,
    xa,
)
from dal.execute import leases
from dal.execute.bindings import TextBindings
from dal.execute.cursor import run_tree
from dal.execute.relay import Relay
from dal.frontend import Frontend
from dal.login import LoginResult, ok_packet
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
)
from pool.limits import Limiter, Throttled
from router.access import BAD_CHARSET, unsafe_charset_refusal
from router.express import PASS, Express
from router.fingerprint import (
    MAX_TRAILING_DIGITS,
    Fingerprint,
    fingerprint,
    fingerprint_in_modes,
)
from router.plan import LOCAL, ROUTE, SHARDED, Plan
from router.rows.buffer import u16
from router.session_functions import rewrites as rewrites_session_functions
from router.session_functions import substitute_session_functions
from router.split import split_statements
from router.sqltext import ANSI_QUOTES, modes_of

if TYPE_CHECKING:
    from dal.ports import ServerPort
    from dal.prepared_statements import Registry
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
_NO_SLOTS: list[list[bytes]] = []  # a plan that routes by no literal


class ClientSession(Frontend):
    """One client's session: its state, and a handler for each command event."""

    def __init__(self, server: ServerPort) -> None:
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
        # Begun WITH CONSISTENT SNAPSHOT (a dump): scatter reads may run beside it
        # (dal/execute/cursor.py).
        self.snapshot = False
        self.status = int(Status.AUTOCOMMIT)
        self.ansi_quotes = 0  # sqltext.ANSI_QUOTES when the session's sql_mode has it
        self.multi_statements = False
        self._started = 0.0  # perf_counter() when the current statement arrived
        self._fp: bytes | None = None  # its fingerprint, for SHOW DAL STATEMENTS
        self.prepared: Registry | None = None  # COM_STMT_* statements, made at first use
        self.relay = Relay(self)  # the statement in flight on one backend

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
            problem = self.check_database(result.database)
            if problem is not None:
                return problem
            self.schema = result.database
        return None

    def check_database(self, name: str) -> ERR | None:
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
        self.send(ok_packet(self._seq, self.status))

    def _on_quit(self, event: ComQuit) -> None:
        self.release_backend()
        self.close_connection()

    def _on_init_db(self, event: ComInitDb) -> None:
        self._use(event.name)

    def _on_field_list(self, event: ComFieldList) -> None:
        self.spawn(self._field_list(event.payload))

    def _on_statistics(self, event: ComStatistics) -> None:
        plan = self.server.router.default_plan(self.schema)
        self.relay.route(plan, event.payload, event.last_seq, shape=ONE_PACKET)

    def _on_reset_connection(self, event: ComResetConnection) -> None:
        self.spawn(self._reset_connection())

    def _on_change_user(self, event: ComChangeUser) -> None:
        self.spawn(change_user.run(self, event.payload))

    def _on_set_option(self, event: ComSetOption) -> None:
        if event.option not in (0, 1):
            self.error(errors.UNKNOWN_COMMAND, "COM_SET_OPTION: bad option")
        else:  # 0: MYSQL_OPTION_MULTI_STATEMENTS_ON, 1: OFF
            self.multi_statements = event.option == 0
            self.send(frame(b"\xfe\x00\x00" + u16(self.status), self._seq))

    def _on_stmt(self, event: StmtCommand) -> None:
        prepared.dispatch(self, event.code, event.payload, event.last_seq)

    def _on_bulk_execute(self, event: ComStmtBulkExecute) -> None:
        if not self.bulk:  # not negotiated: as unknown as any other
            self._on_unknown(UnknownCommand(Command.STMT_BULK_EXECUTE))
            return
        statement = prepared.named_statement(self, event.payload, "mysqld_stmt_bulk_execute")
        if statement is not None:
            self._started = perf_counter()
            self.spawn(bulk.run(self, statement, event.payload))

    def _on_unknown(self, event: UnknownCommand) -> None:
        code = event.code
        name = Command(code).name if code in Command._value2member_map_ else "?"
        self.error(errors.UNKNOWN_COMMAND,
                    f"Unknown command 0x{code:02x} (COM_{name}): DAL does not support it")

    def _on_empty(self, event: EmptyPacket) -> None:
        self.error(errors.UNKNOWN_COMMAND, "Unknown command: empty packet")

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
                self.spawn(multi.run_batch(self, statements))
                return
        if (sql[:3].upper() in _ADMIN_HEADS or (sql and sql[0] in _SPACE)) and _ADMIN.match(sql):
            self.spawn(self._admin(sql))
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
        slots = fp.slots(sql) if kind == SHARDED else _NO_SLOTS
        run_tree(self, plan, TextBindings(slots, plan, sql, payload, last_seq, raw, fp))

    def _end_transaction(self, sql: bytes) -> bool:
        """COMMIT or ROLLBACK DAL answers itself (mode xa, or nothing open): True if it did."""
        if self.xa is not None:
            self.spawn(self._xa_end(xa.is_commit(sql)))
            return True
        self.snapshot = False
        if self.pinned is not None:
            return False
        self.txn_pending = None  # a BEGIN not sent yet ends here
        self.txn_pending = xa.next_pending(self)
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

    # -- the slow paths ----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the rest of the command as a coroutine (the slow path)."""
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
            self.drain()
        elif self.phase == CLOSED:
            self.release_backend()

    # -- sharded plans -----------------------------------------------------------------------

    def _express(self, entry: Express, sql: bytes, cut: int, payload: bytes, last_seq: int,
                 raw: bytes | None) -> None:
        """The express lane (router/express.py): ``sql[:cut]`` is a head whose route is known,
        and ``sql[cut:]`` the integer that ends the statement."""
        if entry.lane == PASS:
            self.relay.route(entry.plan, payload, last_seq, RESULT, raw)
            return
        shard = entry.shard_of(int(sql[cut:]))
        target = entry.targets[shard]
        if target is None:
            found, head = entry.target(shard)
            target = entry.targets[shard] = (
                route_plan(found.instance, entry.plan.statement), head,
                shard_renamer(entry.plan.sharded, found.database))
        route, head, rename = target
        self.relay.route(route, head + sql[cut:], 0, RESULT, None, rename)

    async def _xa_end(self, commit: bool) -> None:
        failed = await xa.end(self, commit) is not None
        self.server.finish_statement("transaction", failed, self._started, self._fp)
        self.busy = False

    @property
    def statement_text(self) -> bytes | None:
        """The current (or last) statement's fingerprint, literals as ``?``."""
        return self._fp

    @statement_text.setter
    def statement_text(self, key: bytes | None) -> None:
        self._fp = key

    @property
    def statement_started(self) -> float:
        """perf_counter() when the current (or last) statement arrived; 0 before the first."""
        return self._started

    @property
    def closed(self) -> bool:
        """The client connection is gone (or going): nothing more is read or answered."""
        return self.phase == CLOSED





    def run_query(self, payload: bytes, seq: int) -> None:
        """Run one COM_QUERY ``payload`` of a multi-statement batch, its reply framed from
        ``seq`` (dal/multi.py)."""
        self._seq = seq
        self._query(payload, 0, None)

    def finish_statement(self, kind: str, failed: bool) -> None:
        """Count the current statement in the metrics and SHOW DAL STATEMENTS."""
        self.server.finish_statement(kind, failed, self._started, self._fp)

    async def _field_list(self, payload: bytes) -> None:
        table, _, _ = payload[1:].partition(b"\x00")
        if self.schema is None:
            self.error(errors.NO_DATABASE, "No database selected")
            self.busy = False
            return
        target = self.server.router.field_list_target(self.schema, table.decode("utf-8", "replace"))
        conn = await leases.ready_connection(self, target.instance, target.schema,  # type: ignore[arg-type]
                                            self.state, begin=False)
        if conn is None:
            return
        rename = self.schema.encode() if target.schema != self.schema else None
        await self.relay.collect_and_send(conn, frame(payload, 0), None, FIELD_LIST, rename)

    async def set_variables(self, plan: Plan) -> None:
        """SET: the assignments recorded (evaluated once first where needed) and replayed on
        the session's connection."""
        instance = self.pinned.instance if self.pinned else self.server.default_instance
        assignments = dict(plan.assignments)
        conn = None
        if plan.args:  # SET v = <expression>: its value, with the session's state
            conn = await leases.ready_connection(self, instance, None, self.state, begin=False)
            if conn is None:
                return
            try:
                assignments.update(await set_values.evaluate(conn, plan.args))
            except BackendError as exc:
                leases.give_back(self, conn, conn.status, None)
                self.send_error(exc.to_err())
                self.busy = False
                return
        if "wait_timeout" in assignments or "interactive_timeout" in assignments:
            idle.take_timeouts(self, assignments)  # the session's own, never replayed
        wanted = {**self.state, **assignments}
        if self.xa is not None and wanted.get("autocommit") != self.state.get("autocommit"):
            if conn is not None:
                leases.give_back(self, conn, conn.status, None)
            self.error(xa.IN_TRANSACTION, xa.AUTOCOMMIT_REFUSAL)
            self.busy = False
            return
        conn = await leases.ready_connection(self, instance, None, wanted, conn, begin=False)
        if conn is None:
            return
        self.state = wanted
        self.ansi_quotes = self._ansi_quotes()
        self.txn_pending = xa.next_pending(self)
        leases.give_back(self, conn, conn.status, plan)
        self.send(ok_packet(self._seq, self.status))
        self.busy = False

    def note_counts(self, scanner: ResponseScanner) -> None:
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

    async def answer_locally(self, plan: Plan) -> None:
        """A statement DAL answers itself (plan kind local)."""
        server = self.server
        if plan.handler == "begin":
            # A connection kept only for SHOW WARNINGS must not decide where the transaction
            # lives: the transaction's first statement does.
            leases.drop_soft_pin(self)
            self.snapshot = "CONSISTENT SNAPSHOT" in plan.args[0].upper()
            if self.xa is not None:  # BEGIN inside a transaction commits it first
                error = await xa.end(self, commit=True, reply=False)
                if error is not None:
                    self.send_error(error)
                    self.busy = False
                    return
            if self.pinned is not None:  # BEGIN inside a transaction commits it first
                self.busy = False
                self.relay.route(Plan(ROUTE, instance=self.pinned.instance,
                                      statement="transaction"), b"\x03" + plan.args[0].encode(), 0)
                return
            self.txn_pending = plan.args[0]
            self.status |= _IN_TRANS
            self.send(ok_packet(self._seq, self.status))
        elif plan.handler == "use":
            self._use(plan.args[0])
        elif plan.handler == "ok":
            self.send(ok_packet(self._seq, self.status))
        elif plan.handler == "table_status":
            try:
                self.send(await table_status.table_status(self, *plan.args))
            except BackendError as exc:
                self.send_error(exc.to_err())
        elif plan.handler == "session_functions":
            values = {"last_insert_id": self.last_insert_id, "connection_id": self.id,
                      "row_count": self.row_count, "found_rows": self.found_rows_count,
                      "user": f"{self.user}@{self.peer}", "current_user": f"{self.user}@%"}
            self.send(local.session_values([(name, values[function])
                                              for name, function in plan.args],
                                             seq=self._seq, status=self.status))
            self.row_count, self.found_rows_count = -1, 1  # as after any one-row SELECT
        elif plan.handler == "show_databases":
            names = ["information_schema", *self._visible_databases()]
            self.send(local.show_databases(names, plan.args[0], seq=self._seq,
                                             status=self.status))
        elif plan.handler == "show_tables":
            db, full, like = plan.args
            try:
                tables = await server.logical_tables(db)
            except BackendError as exc:
                self.send_error(exc.to_err())
            else:
                self.send(local.show_tables(db, tables, full, like, seq=self._seq,
                                              status=self.status))
        elif plan.handler in sessions_view.HANDLERS:
            await sessions_view.HANDLERS[plan.handler](self, plan.args)
        self.busy = False

    def _visible_databases(self) -> list[str]:
        allowed = self.server.config.users[self.user].databases
        return [d for d in self.server.config.databases if allowed is None or d in allowed]

    def _use(self, name: str) -> None:
        problem = self.check_database(name)
        if problem is not None:
            self.send_error(problem)
            return
        self.schema = name
        self.send(ok_packet(self._seq, self.status))

    async def _reset_connection(self) -> None:
        await self.reset_session()
        self.send(ok_packet(self._seq, self.status))
        self.busy = False

    async def reset_session(self) -> None:
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
            self.send(admin.explain(self.server, sql, self.schema, self.admin, seq=self._seq,
                                      status=self.status))
        elif not self.admin:
            self.error(errors.SPECIFIC_ACCESS_DENIED, "Access denied; you need (at least one "
                        "of) the DAL admin privilege(s) for this operation")
        else:
            response = admin.execute(self.server, sql.decode("utf-8", "replace"),
                                     seq=self._seq, status=self.status)
            self.send(response)
        self.busy = False

    # -- teardown ----------------------------------------------------------------------------

    def close_idle(self) -> None:
        """wait_timeout passed (dal/idle.py): reset the connection, as MariaDB does."""
        log.info("session %d: closed after %d s idle (its wait_timeout)", self.id,
                 self.wait_timeout)
        idle.reset_transport(self.transport)
        self.wire.close()

    def release_backend(self) -> None:
        """Give back whatever this session holds (the client is gone or going); a pinned
        connection is reset first."""
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

