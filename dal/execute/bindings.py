"""What one execution binds to a plan tree: its literal values, how a single-shard route is
sent, and how a result DAL builds is encoded.

`TextBindings` serve COM_QUERY (the shard gets the statement text, rows go out as text);
`PreparedBindings` serve COM_STMT_EXECUTE (the shard gets a prepared execution, rows go out as
binary rows, a cursor keeps them for COM_STMT_FETCH). The tree is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Protocol

from dal.shard_route import route_plan, shard_renamer
from dal.wire.constants import Status
from dal.wire.framing import frame
from dal.wire.messages import OK
from dal.wire.results import RESULT, encode_result_set
from router.rows.columns import ColumnDefinition

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.fingerprint import Fingerprint
    from router.plan import Plan
    from router.sharded import ShardedPlan
    from router.targets import Target

_MORE = int(Status.MORE_RESULTS_EXISTS)
_LANE_BITS = int(Status.IN_TRANS | Status.AUTOCOMMIT | Status.NO_BACKSLASH_ESCAPES)
_AUTOCOMMIT = int(Status.AUTOCOMMIT)


class ExecutionBindings(Protocol):
    """What the execution context asks of an execution's bindings (text or prepared)."""

    @property
    def slots(self) -> list[list[bytes]]: ...

    @property
    def text_rows(self) -> bool:
        """The client reads text rows: a shard's result may be relayed as it is."""

    def route(self, session: SessionPort, plan: Plan) -> None: ...

    def route_shard(self, session: SessionPort, sharded: ShardedPlan, target: Target,
                    statement: str) -> None: ...

    def send_rows(self, session: SessionPort, columns: list[ColumnDefinition],
                  rows: list[list[bytes | None]], logical: bytes) -> None: ...

    def send_ok(self, session: SessionPort, affected: int, last_insert_id: int) -> None: ...

    def replan(self, session: SessionPort) -> Plan: ...


def logical_columns(columns: list[ColumnDefinition], logical: bytes) -> list[ColumnDefinition]:
    """Shard column definitions as the client sees them: schema = the logical database."""
    return [replace(c, schema=logical) if c.schema else c for c in columns]


@dataclass(slots=True)
class TextBindings:
    """A COM_QUERY execution: ``sql`` planned as ``plan`` with fingerprint ``fp``."""

    text_rows: ClassVar[bool] = True
    slots: list[list[bytes]]
    plan: Plan
    sql: bytes
    payload: bytes
    last_seq: int
    raw: bytes | None
    fp: Fingerprint | None

    def replan(self, session: SessionPort) -> Plan:
        """This statement planned again (the plan cache answers for its shape)."""
        assert self.fp is not None
        return session.server.router.plan(self.sql, self.fp, session.schema, session.admin,
                                          session.lexer_modes(), databases=session.databases)

    def route(self, session: SessionPort, plan: Plan) -> None:
        """The client's statement (or ``plan.sql``) on ``plan.instance``, relayed raw (a
        migrated table's read from the legacy database with the logical database's name in
        its column definitions, as a shard's)."""
        sharded = self.plan.sharded if self.plan.phase is not None else None
        rename = shard_renamer(sharded, b"") if sharded is not None else None  # type: ignore[arg-type]
        session.relay.route(plan, self.payload, self.last_seq, RESULT, self.raw, rename)

    def route_shard(self, session: SessionPort, sharded: ShardedPlan, target: Target,
                    statement: str) -> None:
        """The statement for one shard, relayed raw; a repeated shape may join the express
        lane (router/express.py)."""
        if (self.fp is not None and session.status & _LANE_BITS == _AUTOCOMMIT
                and not session.ansi_quotes):
            session.server.router.learn_express(self.sql, self.fp, self.plan, session.schema,
                                                session.admin)
        sql = sharded.template.render(self.slots, target.database, target.only)
        session.relay.route(route_plan(target.instance, statement), b"\x03" + sql, 0, RESULT,
                            None, shard_renamer(sharded, target.database))

    def send_rows(self, session: SessionPort, columns: list[ColumnDefinition],
                  rows: list[list[bytes | None]], logical: bytes) -> None:
        """A merged result as a text result set."""
        response = encode_result_set(logical_columns(columns, logical), rows,
                                     deprecate_eof=False, status=session.status & ~_MORE,
                                     seq=session.reply_seq, extended=session.extended_metadata)
        session.row_count, session.found_rows_count = -1, len(rows)  # as after any SELECT
        session.send(response)

    def send_ok(self, session: SessionPort, affected: int, last_insert_id: int) -> None:
        """The OK of a write DAL split or scattered."""
        if last_insert_id:
            session.last_insert_id = last_insert_id
        response = frame(OK(affected_rows=affected, last_insert_id=last_insert_id,
                            status=session.status).encode(), session.reply_seq)
        session.row_count = affected
        session.send(response)
