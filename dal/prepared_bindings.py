"""The bindings of a prepared execution (COM_STMT_EXECUTE) for a plan tree.

The same tree as the statement's text twin runs; only these differ: a single shard gets the
statement prepared on the backend (parameters as ``?``, their values in a COM_STMT_EXECUTE),
and a result DAL builds (a merge) goes out as binary rows, kept by a cursor if one was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from dal.execute.bindings import logical_columns
from dal.execute.relay import refuse_own_connection
from dal.prepared_fast import fixed_route
from dal.prepared_results import binary_result, reply
from dal.prepared_run import run
from dal.shard_route import route_plan, shard_renamer
from dal.wire.binary import Execute, ParamType
from dal.wire.constants import Status
from dal.wire.messages import OK

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from dal.prepared_statements import Statement
    from router.plan import Plan
    from router.sharded import ShardedPlan
    from router.targets import Target

_MORE = int(Status.MORE_RESULTS_EXISTS)


def execute_tail(types: list[ParamType], values: list[bytes | None]) -> bytes:
    """An execute payload after its statement id, for a backend statement."""
    return Execute(0, 0, 1, types, values).encode()[5:]


@dataclass(slots=True)
class PreparedBindings:
    """A COM_STMT_EXECUTE of ``statement`` with parameters ``ex``; ``slots`` hold the
    parameters written as SQL literals. ``cursor``: the client asked for a read-only cursor."""

    text_rows: ClassVar[bool] = False  # binary rows: a scatter read is merged, never streamed

    slots: list[list[bytes]]
    statement: Statement
    ex: Execute
    cursor: bool
    last_seq: int

    def replan(self, session: SessionPort) -> Plan:
        """This statement planned again (the plan cache answers for its shape)."""
        statement = self.statement
        return session.server.router.plan(statement.sql, statement.shape.fp, session.schema,
                                          session.admin, session.lexer_modes(),
                                          databases=session.databases)

    def route(self, session: SessionPort, plan: Plan) -> None:
        """The statement on ``plan.instance``, prepared there (a statement that touches no
        table follows the session's pin); repeated executions take a fixed fast route."""
        ex = self.ex
        if plan.own_connection is not None and session.pinned is None:
            refuse_own_connection(session, plan.own_connection)
            return
        instance, schema = plan.instance, plan.schema
        if plan.anywhere and session.pinned is not None:
            instance, schema = session.pinned.instance, None
        if not self.cursor and plan.own_connection is None:  # else checked each time
            self.statement.fast = fixed_route(session, plan, ex)
        run(session, plan, instance, schema, plan.sql or self.statement.sql,  # type: ignore[arg-type]
            len(ex.values), execute_tail(ex.types, ex.values), None,
            self.statement if self.cursor else None, self.last_seq)

    def route_shard(self, session: SessionPort, sharded: ShardedPlan, target: Target,
                    statement: str) -> None:
        """The shard's statement prepared on its backend, executed with the parameters it
        keeps (in the order they appear there)."""
        sql, order = self.statement.shape.render(sharded.template, self.slots,
                                                 target.database, target.only)
        self.run_rendered(session, sharded, target, sql, order, statement)

    def run_rendered(self, session: SessionPort, sharded: ShardedPlan, target: Target,
                     sql: bytes, order: list[int], statement: str) -> None:
        """Execute ``sql`` (rendered for ``target``; ``order``: the parameter each ``?``
        takes) prepared on the shard's backend."""
        ex = self.ex
        if len(order) == len(ex.values) and order == sorted(order):
            types, values = ex.types, ex.values
        else:
            types, values = [ex.types[i] for i in order], [ex.values[i] for i in order]
        run(session, route_plan(target.instance, statement), target.instance, None, sql,
            len(values), execute_tail(types, values), shard_renamer(sharded, target.database),
            self.statement if self.cursor else None, self.last_seq)

    def send_rows(self, session: SessionPort, columns: list, rows: list,
                  logical: bytes) -> None:
        """A merged result as binary rows."""
        payloads = binary_result(logical_columns(columns, logical), rows,
                                 session.status & ~_MORE, session.extended_metadata)
        session.row_count, session.found_rows_count = -1, len(rows)
        reply(session, payloads, self.statement if self.cursor else None)

    def send_ok(self, session: SessionPort, affected: int, last_insert_id: int) -> None:
        """The OK of a write DAL split or scattered."""
        if last_insert_id:
            session.last_insert_id = last_insert_id
        payload = OK(affected_rows=affected, last_insert_id=last_insert_id,
                     status=session.status).encode()
        session.row_count = affected
        reply(session, [payload], None)
