"""Server-side prepared statements of one client session (COM_STMT_*).

DAL keeps its own registry per session (statement id -> SQL, parameter count, bound types,
long data, an open cursor); backend statements are separate, prepared lazily on whichever
pooled connection serves an execution (`pool.statements`), so a prepared statement never pins
a connection. Each execution is planned like a text statement with the same shape
(`router.params`): on a sharded table the parameter values pick the shards.

- One target: the statement for that shard (parameters left as ``?``) is prepared on the
  backend connection and executed with COM_STMT_EXECUTE; its binary result is relayed as it
  arrives, column definitions renamed to the logical schema.
- Several shards, or an INSERT split by shard: the parameters are written as SQL literals and
  the statement's plan tree runs it (`dal.execute`); a merged result is encoded as binary rows.
- COM_STMT_FETCH: DAL runs the statement without a cursor, keeps the rows (at most
  ``server.max_merge_rows``) and serves fetches itself (`dal.prepared_results`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING

from dal.execute import leases
from dal.execute.cursor import run_tree
from dal.execute.home import home_schema
from dal.local import no_diagnostics
from dal.login import err_packet, ok_packet
from dal.prepared_bindings import PreparedBindings
from dal.prepared_fast import adopt, fast_route, remember, try_execute
from dal.prepared_results import binary_result, fetch, reply, send
from dal.prepared_run import WRONG_ARGUMENTS
from dal.prepared_statements import Registry, Statement
from dal.session.planning import READ_AWAY_BYTES, in_planner_thread, with_plan
from dal.session_variables import session_variables
from dal.wire.binary import (
    CURSOR_READ_ONLY,
    Execute,
    PrepareOk,
    sql_literal,
)
from dal.wire.constants import Command
from dal.wire.framing import frame
from dal.wire.messages import EOF, ERR
from pool import statements
from pool.connection import BackendError
from pool.rename import rename_column
from pool.state import apply_state
from router.params import Shape, fill_markers, param_positions, shape_of
from router.plan import LOCAL, MIGRATED, REFUSE, ROUTE, SET, SHARDED, Plan
from router.rows.buffer import lenenc_bytes
from router.rows.columns import ColumnDefinition
from router.rows.errors import ProtocolError
from router.rows.types import ColumnType
from router.session_functions import connection_id_in
from router.sqltext import NO_BACKSLASH_ESCAPES
from router.targets import Refusal, single_target, target_of

if TYPE_CHECKING:
    from dal.ports import SessionPort

UNKNOWN_STATEMENT = (1243, "HY000")
TOO_MANY_STATEMENTS = (1461, "42000")
UNSUPPORTED_IN_PS = (1295, "HY000")

_STRING_TYPES = frozenset({ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING,
                           ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB,
                           ColumnType.BLOB, ColumnType.JSON, ColumnType.DECIMAL,
                           ColumnType.NEWDECIMAL, ColumnType.GEOMETRY})
# Definitions of statements prepared before, by (schema, SQL, extended metadata): a client that
# prepares the same statement on every connection costs one backend prepare.
_metadata: OrderedDict[tuple[str | None, bytes, bool],
                       tuple[tuple[bytes, ...], tuple[bytes, ...]]] = OrderedDict()
MAX_METADATA = 4096
MAX_RENDERED = 4096  # shard statements cached per session
_PARAM = ColumnDefinition(name=b"?", type=ColumnType.VAR_STRING, charset=63, catalog=b"def")
# A parameter definition DAL makes up, without and with extended type info (by the client's).
PARAM_DEFINITIONS = (_PARAM.encode(False), _PARAM.encode(True))


def registry(session: SessionPort) -> Registry:
    found = session.prepared
    if found is None:
        found = session.prepared = Registry(session.server.config.server.max_prepared_per_session)
    return found


def dispatch(session: SessionPort, command: int, payload: bytes, last_seq: int) -> None:
    """Run one COM_STMT_* command other than COM_STMT_EXECUTE, which the session's dispatcher
    sends straight to `execute`."""
    if command == Command.STMT_PREPARE:
        prepare(session, payload[1:])
    elif command == Command.STMT_SEND_LONG_DATA:
        _long_data(session, payload)
    elif command == Command.STMT_CLOSE:
        if len(payload) >= 5:  # no reply, whatever the id: node mysql2 closes twice
            reg = registry(session)
            statement = reg.get(int.from_bytes(payload[1:5], "little"))
            if statement is not None:
                del reg.statements[statement.id]
    elif command == Command.STMT_RESET:
        statement = named_statement(session, payload, "mysqld_stmt_reset")
        if statement is not None:
            statement.long_data.clear()
            statement.cursor = None
            session.send(ok_packet(session.reply_seq, session.status))
    elif command == Command.STMT_FETCH:
        statement = named_statement(session, payload, "mysqld_stmt_fetch")
        if statement is not None:
            fetch(session, statement, payload)


def named_statement(session: SessionPort, payload: bytes, what: str) -> Statement | None:
    """The statement a command names, or None after sending the ERR."""
    statement_id = int.from_bytes(payload[1:5], "little") if len(payload) >= 5 else -1
    statement = registry(session).get(statement_id) if statement_id >= 0 else None
    if statement is None:
        _error(session, UNKNOWN_STATEMENT, f"Unknown prepared statement handler ({statement_id}) "
               f"given to {what}; prepare it first (ids belong to the connection that prepared "
               "them)")
    return statement


def _error(session: SessionPort, pair: tuple[int, str], message: str) -> None:
    session.send_error(ERR(pair[0], message, pair[1]))


# -- COM_STMT_PREPARE ----------------------------------------------------------------------------


def prepare(session: SessionPort, sql: bytes) -> None:
    reg = registry(session)
    if len(reg.statements) >= reg.limit:
        _error(session, TOO_MANY_STATEMENTS, "Can't create more than max_prepared_stmt_count "
               f"statements (current value: {reg.limit}): this session holds {reg.limit} "
               "prepared statements (server.max_prepared_per_session); close the ones it no "
               "longer needs (COM_STMT_CLOSE)")
        return
    if len(sql) >= READ_AWAY_BYTES:
        session.spawn(_prepare_long(session, sql))
        return
    _prepare_shaped(session, *_read_text(sql, session.id, session.lexer_modes()))


async def _prepare_long(session: SessionPort, sql: bytes) -> None:
    """A long statement's prepare: read (its CONNECTION_ID() written, its shape) on the
    planner thread."""
    sql, shape = await in_planner_thread(_read_text, sql, session.id, session.lexer_modes())
    session.busy = False
    if not session.closed:
        _prepare_shaped(session, sql, shape)


def _read_text(sql: bytes, connection_id: int, modes: int) -> tuple[bytes, Shape]:
    sql = connection_id_in(sql, connection_id, not modes & NO_BACKSLASH_ESCAPES)
    return sql, shape_of(sql)


def _prepare_shaped(session: SessionPort, sql: bytes, shape: Shape) -> None:
    with_plan(session, sql, shape.fp, session.lexer_modes(), None,
              lambda plan: _prepare_planned(session, sql, shape, plan))


def _prepare_planned(session: SessionPort, sql: bytes, shape: Shape, plan: Plan) -> None:
    if plan.kind == REFUSE:
        code, state, message = plan.error  # type: ignore[misc]
        session.server.count_refusal(code)
        session.send(err_packet(ERR(code, message, state), session.reply_seq))
        return
    text_mode = (plan.kind == SET or (plan.kind == LOCAL and plan.handler in ("begin", "use"))
                 or (plan.kind == ROUTE and plan.handler == "end"))
    if plan.handler == "session_variables":
        # Prepared as the backend describes it; executed by DAL (`_show_variables`).
        plan = replace(plan, kind=ROUTE, instance=session.server.default_instance, sql=sql)
    if plan.kind == LOCAL and not text_mode:
        _error(session, UNSUPPORTED_IN_PS, "This command is not supported in the prepared "
               "statement protocol yet: DAL answers it itself; send it as a text query")
        return
    if text_mode and shape.params:
        _error(session, UNSUPPORTED_IN_PS, "DAL does not take parameters in BEGIN, COMMIT, "
               "SET or USE statements; send them as text queries")
        return
    session.spawn(_prepare(session, sql, shape, plan, text_mode))


async def _prepare(session: SessionPort, sql: bytes, shape: Shape, plan: Plan,
                   text_mode: bool) -> None:
    try:
        params, columns = await _definitions(session, sql, shape, plan, text_mode)
    except BackendError as exc:
        session.send_error(exc.to_err())
        session.busy = False
        return
    if params is None:  # _definitions sent the ERR already
        session.busy = False
        return
    reg = registry(session)
    statement = Statement(reg.next_id, sql, shape, len(columns), text_mode)
    reg.next_id = reg.next_id % 0xFFFFFFFE + 1
    reg.statements[statement.id] = statement
    reg.last = statement.id
    seq = session.reply_seq
    out = [frame(PrepareOk(statement.id, len(columns), shape.params).encode(), seq)]
    for group in (params, columns):
        for payload in group:
            seq += 1
            out.append(frame(payload, seq))
        if group:
            seq += 1
            out.append(frame(EOF(0, session.status).encode(), seq))
    session.send(b"".join(out))
    session.busy = False


async def _definitions(session: SessionPort, sql: bytes, shape: Shape, plan: Plan,
                       text_mode: bool) -> tuple[tuple[bytes, ...] | None, tuple[bytes, ...]]:
    """Parameter and column definitions: from a backend prepare of the statement (for a
    sharded one, its form for the first shard), cached; made up for writes DAL splits."""
    synthetic = (PARAM_DEFINITIONS[session.extended_metadata],) * shape.params, ()
    if text_mode:
        return synthetic
    if plan.kind == MIGRATED:  # a read as the shards describe it, else as legacy does
        sharded = plan.sharded
        plan = replace(plan, kind=SHARDED if sharded is not None and not sharded.write  # type: ignore[attr-defined]
                       else ROUTE, sql=None, anywhere=False)
    if plan.kind == SHARDED:
        sharded = plan.sharded
        if sharded.write or sharded.insert is not None:  # type: ignore[union-attr]
            return synthetic
        routing = sharded.routing  # type: ignore[union-attr]
        target = target_of(session.server.config, sharded.db, routing.dimension, 0, None)  # type: ignore[union-attr]
        backend_sql, _ = shape.render(sharded.template, shape.slots([b"NULL"] * shape.params),  # type: ignore[union-attr]
                                      target.database)
        instance, schema, logical = target.instance, None, sharded.logical  # type: ignore[union-attr]
    else:
        backend_sql, instance, schema, logical = plan.sql or sql, plan.instance, plan.schema, None
        if plan.anywhere and session.pinned is not None:  # touches no table: follow the pin
            instance, schema = session.pinned.instance, None
    key = (session.schema, backend_sql, session.extended_metadata)
    found = _metadata.get(key)
    if found is not None:
        return found
    if plan.kind == SHARDED:  # any connection of shard 0's instance, whatever the session holds
        pool = session.server.pools[instance]  # type: ignore[index]
        conn = await pool.acquire(session.flavour)
        try:
            await apply_state(conn, home_schema(session, instance), session.state)
            backend = await statements.prepare(conn, backend_sql)
        finally:
            pool.release(conn, reusable=not conn.closed)
    else:  # the session's own connection: the statement may name its temporary tables
        conn = await leases.ready_connection(session, instance, schema, session.state,  # type: ignore[arg-type]
                                               begin=False)
        if conn is None:
            return None, ()
        try:
            backend = await statements.prepare(conn, backend_sql)
        finally:
            leases.give_back(session, conn, conn.status, None)
    columns = backend.columns
    if logical is not None:
        columns = tuple(rename_column(c, logical) for c in columns)
    found = (backend.params if len(backend.params) == shape.params else synthetic[0]), columns
    _metadata[key] = found
    if len(_metadata) > MAX_METADATA:
        _metadata.popitem(last=False)
    return found


# -- COM_STMT_SEND_LONG_DATA ---------------------------------------------------------------------


def _long_data(session: SessionPort, payload: bytes) -> None:
    """Append a chunk to a parameter's value; no reply, as MySQL (errors show at execute)."""
    if len(payload) < 7:
        return
    statement = registry(session).get(int.from_bytes(payload[1:5], "little"))
    index = int.from_bytes(payload[5:7], "little")
    if statement is None or index >= statement.shape.params:
        return
    buffer = statement.long_data.setdefault(index, bytearray())
    if len(buffer) + len(payload) - 7 > session.server.config.server.max_packet:
        # Past the limit the execution refuses anyway: count the bytes, keep none of them.
        buffer = statement.long_data[index] = _Overflow(len(buffer))
    buffer += payload[7:]


class _Overflow:
    """Long data past server.max_packet: only its length, for the execution's refusal."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __iadd__(self, chunk: bytes) -> _Overflow:
        self.size += len(chunk)
        return self


# -- COM_STMT_EXECUTE ----------------------------------------------------------------------------


def execute(session: SessionPort, payload: bytes, last_seq: int) -> None:
    """COM_STMT_EXECUTE: the fast route when the statement has one, else the full path."""
    session.statement_started = perf_counter()
    reg = session.prepared
    statement = (reg.statements.get(int.from_bytes(payload[1:5], "little"))
                 if reg is not None and len(payload) >= 5 else None)
    if statement is None:  # and 0xFFFFFFFF, the statement just prepared (MariaDB)
        statement = named_statement(session, payload, "mysqld_stmt_execute")
        if statement is None:
            return
    session.statement_text = statement.shape.fp.key
    if session.server.limiter is not None:
        with_plan(session, statement.sql, statement.shape.fp, session.lexer_modes(), None,
                  lambda plan: _limited(session, statement, plan, payload, last_seq))
        return
    _execute_now(session, statement, payload, last_seq)


def _limited(session: SessionPort, statement: Statement, plan: Plan, payload: bytes,
             last_seq: int) -> None:
    """An execution through the rate limits (pool/limits.py)."""
    if not session.throttle(session.server.limiter, plan, statement.shape.fp.key, _execute,
                            session, statement, payload, last_seq):
        _execute_now(session, statement, payload, last_seq)


def _execute_now(session: SessionPort, statement: Statement, payload: bytes,
                 last_seq: int) -> None:
    fast = statement.fast
    if fast is None and last_seq == 0 and not statement.long_data:
        fast = adopt(session, statement, payload)
    if (fast is not None and last_seq == 0
            and try_execute(session, statement, fast, payload)):
        return
    _execute(session, statement, payload, last_seq)


def _execute(session: SessionPort, statement: Statement, payload: bytes,
             last_seq: int) -> None:
    """An execution on the full path: parameters decoded, planned like a text statement."""
    try:
        ex = Execute.decode(payload, statement.shape.params, statement.types,
                            statement.long_data.keys())
    except ProtocolError as exc:
        _error(session, WRONG_ARGUMENTS, f"Incorrect arguments to mysqld_stmt_execute: {exc}")
        return
    if ex.new_params_bound:
        statement.types = list(ex.types)
        statement.fast = None  # built again for these types by a single-shard execution
    if statement.long_data:
        limit = session.server.config.server.max_packet
        for index, data in statement.long_data.items():
            if len(data) > limit:
                statement.long_data.clear()
                _error(session, WRONG_ARGUMENTS, f"parameter {index} got {len(data)} bytes of "
                       f"long data, more than server.max_packet ({limit})")
                return
            code = ex.types[index][0]
            ex.types[index] = (code if code in _STRING_TYPES else ColumnType.BLOB, False)
            ex.values[index] = lenenc_bytes(bytes(data))
        statement.long_data.clear()
    statement.cursor = None
    cursor = bool(ex.flags & CURSOR_READ_ONLY)
    if statement.text_mode:
        session.run_query(b"\x03" + statement.sql, session.reply_seq)
        return
    with_plan(session, statement.sql, statement.shape.fp, session.lexer_modes(), None,
              lambda plan: _execute_planned(session, statement, plan, ex, cursor, last_seq))


def _execute_planned(session: SessionPort, statement: Statement, plan: Plan, ex: Execute,
                     cursor: bool, last_seq: int) -> None:
    if plan.kind == SHARDED:
        _sharded(session, statement, plan, ex, cursor, last_seq)
    elif plan.kind == MIGRATED:  # a live migration's table: its phase's tree, no shortcut
        _run_bound(session, statement, plan, ex, cursor, last_seq)
    elif plan.diagnostics and session.pinned is None:
        _no_diagnostics(session, plan)
    elif plan.handler == "session_variables":
        text = fill_markers(statement.sql, param_positions(statement.sql), _literals(ex))
        session.spawn(_show_variables(session, text.decode("utf-8", "surrogateescape"),
                                      statement if cursor else None))
    elif plan.kind in (ROUTE, REFUSE):
        run_tree(session, plan, PreparedBindings([], statement, ex, cursor, last_seq))
    else:
        _error(session, UNSUPPORTED_IN_PS, "This command is not supported in the prepared "
               "statement protocol yet; send it as a text query")


def _no_diagnostics(session: SessionPort, plan: Plan) -> None:
    """A prepared SHOW WARNINGS/ERRORS or warning count when the session holds no connection:
    its last statement left none (else it would hold the connection that has them); a pooled
    connection's belong to whoever used it last. As the text path answers (`Relay.route`)."""
    columns, rows = no_diagnostics(plan.args[0])
    send(session, binary_result(columns, rows, session.status, session.extended_metadata))


async def _show_variables(session: SessionPort, sql: str, cursor: Statement | None) -> None:
    """A prepared SHOW [SESSION] VARIABLES, answered for the session as the text one is
    (``cursor``: the statement that keeps the rows for COM_STMT_FETCH)."""
    try:
        columns, rows = await session_variables(session, sql)
    except BackendError as exc:
        session.send_error(exc.to_err())
    else:
        reply(session, binary_result(columns, rows, session.status, session.extended_metadata),
              cursor)
    session.busy = False


def _literals(ex: Execute) -> list[bytes]:
    return [sql_literal(code, ex.value(i)) for i, (code, _) in enumerate(ex.types)]


def _sharded(session: SessionPort, statement: Statement, plan: Plan, ex: Execute,
             cursor: bool, last_seq: int) -> None:
    sharded = plan.sharded
    config = session.server.config
    routing = sharded.routing  # type: ignore[union-attr]
    if sharded.insert is None and len(routing.slots) == 1 and not routing.broadcast:  # type: ignore[union-attr]
        # The common case: one key value. Only that parameter is read, and the statement for
        # each shard is rendered once per prepared statement.
        slot = routing.slots[0]
        source = statement.shape.sources[slot]
        slots = statement.shape.unbound
        try:
            if source.__class__ is int:
                slots = list(slots)
                slots[slot] = [sql_literal(ex.types[source][0], ex.value(source))]  # type: ignore[index]
            target = single_target(config, sharded, slots)  # type: ignore[arg-type]
        except Refusal as exc:
            session.send_error(ERR(exc.code, str(exc), exc.sqlstate))
            return
        except ValueError as exc:
            _error(session, WRONG_ARGUMENTS, f"Incorrect arguments to mysqld_stmt_execute: {exc}")
            return
        if target is not None:
            if not leases.shard_allowed(session, target.database):
                return
            rendered = registry(session).rendered
            key = (statement.id, target.database)
            found = rendered.get(key)
            if found is None or found[0] is not sharded:  # a new plan after a config reload
                if len(rendered) >= MAX_RENDERED:
                    rendered.clear()
                found = rendered[key] = (sharded, *statement.shape.render(
                    sharded.template, slots, target.database))  # type: ignore[union-attr]
            if not cursor:
                statement.fast = fast_route(session, statement, plan, ex, found[2])  # type: ignore[arg-type]
                if statement.fast is not None:
                    remember(session, statement, statement.fast)
            PreparedBindings(slots, statement, ex, cursor, last_seq).run_rendered(  # type: ignore[arg-type]
                session, sharded, target, found[1], found[2], plan.statement)  # type: ignore[arg-type]
            return
    _run_bound(session, statement, plan, ex, cursor, last_seq)


def _run_bound(session: SessionPort, statement: Statement, plan: Plan, ex: Execute,
               cursor: bool, last_seq: int) -> None:
    """Run ``plan``'s tree with every parameter bound as a literal in its slot."""
    try:
        slots = statement.shape.slots(_literals(ex))
    except ValueError as exc:
        _error(session, WRONG_ARGUMENTS, f"Incorrect arguments to mysqld_stmt_execute: {exc}")
        return
    run_tree(session, plan, PreparedBindings(slots, statement, ex, cursor, last_seq))
