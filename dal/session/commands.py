"""One client connection's command table: each command event to its handler.

`ClientSession` is what the server creates per client: the front end (bytes -> events), the
session's state, the query path, and here the dispatch table keyed by event type
(`dal.wire.events`), with a handler per command.
"""

from __future__ import annotations

from time import perf_counter

from dal import (
    bulk,
    change_user,
    errors,
    prepared,
)
from dal.login import ok_packet
from dal.session.answers import answer_locally, field_list, reset_connection, set_variables
from dal.session.query import QuerySession
from dal.wire.constants import Command
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
from dal.wire.framing import frame
from dal.wire.results import ONE_PACKET
from router.plan import Plan
from router.rows.buffer import u16


class ClientSession(QuerySession):
    """The server-role session of one client connection."""

    # COM_STMT_EXECUTE, the front end's hook and the other hot path: `dal.prepared.execute`
    # itself, with no wrapper call.
    execute_command = prepared.execute

    def _on_query(self, event: ComQuery) -> None:
        self.query_command(event.payload, event.last_seq, event.raw)

    def _on_execute(self, event: ComStmtExecute) -> None:
        self.execute_command(event.payload, event.last_seq)

    def _on_ping(self, event: ComPing) -> None:
        self.send(ok_packet(self._seq, self.status))

    def _on_quit(self, event: ComQuit) -> None:
        self.release_backend()
        self.close_connection()

    def _on_init_db(self, event: ComInitDb) -> None:
        self.use_database(event.name)

    def _on_field_list(self, event: ComFieldList) -> None:
        self.spawn(field_list(self, event.payload))

    def _on_statistics(self, event: ComStatistics) -> None:
        plan = self.server.router.default_plan(self.schema)
        self.relay.route(plan, event.payload, event.last_seq, shape=ONE_PACKET)

    def _on_reset_connection(self, event: ComResetConnection) -> None:
        self.spawn(reset_connection(self))

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
            self.statement_started = perf_counter()
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

    async def answer_locally(self, plan: Plan) -> None:
        """A statement DAL answers itself (plan kind local: `dal.session.answers`)."""
        await answer_locally(self, plan)

    async def set_variables(self, plan: Plan) -> None:
        """SET: recorded, and replayed on the session's connections (`dal.session.answers`)."""
        await set_variables(self, plan)
