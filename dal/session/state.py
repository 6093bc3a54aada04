"""The state of one client session: who it is, its database, variables, pins and transaction,
LAST_INSERT_ID() and friends, and what the session's helpers ask of it (dal/ports.py).

It extends the front end (`dal.frontend.Frontend`: bytes in, command events out); the query path
(`dal.session.query`) and the command table (`dal.session.commands`) build on it.
"""


from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from dal import (
    errors,
    idle,
    xa,
)
from dal.execute.relay import Relay
from dal.frontend import Frontend
from dal.login import LoginResult, ok_packet
from dal.wire.constants import (
    MARIADB_CLIENT_EXTENDED_METADATA,
    MARIADB_CLIENT_STMT_BULK_OPERATIONS,
    Capability,
    Status,
    flavour_of,
)
from dal.wire.messages import ERR
from dal.wire.results import ResponseScanner
from dal.wire.server import CLOSED, COMMAND
from pool.connection import (
    BackendConnection,
)
from router.access import BAD_CHARSET, unsafe_names_refusal
from router.session_functions import substitute_session_functions
from router.sqltext import ANSI_QUOTES, NO_BACKSLASH_ESCAPES, modes_of

if TYPE_CHECKING:
    from dal.ports import ServerPort
    from dal.prepared_statements import Registry
    from dal.xa import XaTransaction

log = logging.getLogger("dal.session")

_NBE = int(Status.NO_BACKSLASH_ESCAPES)  # a plain int: IntFlag arithmetic is slow


class SessionState(Frontend):
    """One client session's state, above its protocol."""

    def __init__(self, server: ServerPort) -> None:
        super().__init__(server)
        self.user = ""
        self.admin = False
        # The logical databases a user with a `databases:` list may name; None: all.
        self.databases: frozenset[str] | None = None
        self.capabilities = 0
        self.bulk = False  # COM_STMT_BULK_EXECUTE negotiated (MariaDB extended capability)
        self.scramble = b""  # the last one sent to the client (COM_CHANGE_USER answers over it)
        self.wait_timeout = 0  # the client's SET wait_timeout (dal/idle.py); 0: not enforced
        self.idle_since: float | None = None
        self.idle_mark = 0
        self.flavour = 0  # of its backend connections (dal.wire.constants.FLAVOUR_*)
        self.extended_metadata = False  # MARIADB_CLIENT_EXTENDED_METADATA negotiated
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
        # What the open transaction wrote to a live migration's tables (dal/migration/txn.py)
        self.migration_txn: Any = None
        # Begun WITH CONSISTENT SNAPSHOT (a dump): scatter reads may run beside it
        # (dal/execute/cursor.py).
        self.snapshot = False
        self.status = int(Status.AUTOCOMMIT)
        self.ansi_quotes = 0  # sqltext.ANSI_QUOTES when the session's sql_mode has it
        self.multi_statements = False
        # perf_counter() when the current (or last) statement arrived; 0 before the first.
        self.statement_started = 0.0
        # Its fingerprint (literals as ``?``), for SHOW DAL STATEMENTS and the metrics.
        self.statement_text: bytes | None = None
        # The statement is read or planned on the planner thread (dal/session/planning.py),
        # and a KILL QUERY came meanwhile: it ends with 1317 instead of running.
        self.planning = False
        self.kill_requested = False
        self.prepared: Registry | None = None  # COM_STMT_* statements, made at first use
        self.relay = Relay(self)  # the statement in flight on one backend

    def open_session(self, result: LoginResult) -> ERR | None:
        """Take the logged-in user's session (the front end's hook); an ERR refuses it."""
        self.user = result.user
        self.admin = result.user_config.role.value == "admin"
        self.databases = result.user_config.allowed_databases()
        self.capabilities = result.capabilities
        self.flavour = flavour_of(result.capabilities, result.extended)
        self.extended_metadata = bool(result.extended & MARIADB_CLIENT_EXTENDED_METADATA)
        self.multi_statements = bool(result.capabilities & Capability.MULTI_STATEMENTS)
        self.bulk = bool(result.extended & MARIADB_CLIENT_STMT_BULK_OPERATIONS)
        self.scramble = result.scramble
        names = self.login_names = self.server.names_for_collation(result.collation)
        if unsafe := unsafe_names_refusal(names):
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

    @property
    def closed(self) -> bool:
        """The client connection is gone (or going): nothing more is read or answered."""
        return self.wire.state is CLOSED

    def finish_statement(self, kind: str, failed: bool) -> None:
        """Count the current statement in the metrics and SHOW DAL STATEMENTS."""
        self.server.finish_statement(kind, failed, self.statement_started, self.statement_text)

    def note_counts(self, scanner: ResponseScanner) -> None:
        """What ROW_COUNT() and FOUND_ROWS() answer after the response ``scanner`` read."""
        self.row_count = scanner.affected
        if scanner.rows >= 0:
            self.found_rows_count = scanner.rows

    def session_values_in(self, sql: bytes) -> bytes:
        """``sql`` with LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), CONNECTION_ID(), USER() and
        CURRENT_USER() replaced by this session's values: a backend connection's would be
        whichever session used it last, its thread id and its user DAL's backend account.
        FOUND_ROWS() after SQL_CALC_FOUND_ROWS stays: the pinned connection holds it."""
        name = self.user.replace("'", "''")
        user = f"'{name}@{self.peer}'".encode()
        values = {b"LAST_INSERT_ID": str(self.last_insert_id).encode(),
                  b"ROW_COUNT": str(self.row_count).encode(),
                  b"CONNECTION_ID": str(self.id).encode(),
                  b"FOUND_ROWS": None if self.pin_reason == "found_rows" else
                  str(self.found_rows_count).encode(),
                  b"USER": user, b"SESSION_USER": user, b"SYSTEM_USER": user,
                  b"CURRENT_USER": f"'{name}@%'".encode()}
        return substitute_session_functions(sql, values,
                                            not self.lexer_modes() & NO_BACKSLASH_ESCAPES)

    def lexer_modes(self) -> int:
        """The session's lexer modes (router/sqltext.py) from its sql_mode."""
        return self.ansi_quotes | (1 if self.status & _NBE else 0)

    def sql_mode_ansi_quotes(self) -> int:
        value = self.state.get("sql_mode")
        if value is None:
            return 0
        return modes_of(value.partition("=")[2]) & ANSI_QUOTES

    def visible_databases(self) -> list[str]:
        allowed = self.server.config.users[self.user].databases
        return [d for d in self.server.config.databases if allowed is None or d in allowed]

    def use_database(self, name: str) -> None:
        problem = self.check_database(name)
        if problem is not None:
            self.send_error(problem)
            return
        self.schema = name
        self.send(ok_packet(self._seq, self.status))

    async def reset_session(self) -> None:
        """What COM_RESET_CONNECTION and COM_CHANGE_USER clear, as MySQL does: the transaction
        (rolled back on the backend), pins, session and user variables, LAST_INSERT_ID().
        The character set goes back to the handshake's, as MariaDB does; prepared statements
        are forgotten."""
        if self.xa is not None:
            await xa.end(self, commit=False, reply=False)
        conn, reason = self.pinned, self.pin_reason
        if self.migration_txn is not None:
            self.server.migration.transaction_ended(self)
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

    def close_idle(self) -> None:
        """wait_timeout passed (dal/idle.py): reset the connection, as MariaDB does."""
        log.info("session %d: closed after %d s idle (its wait_timeout)", self.id,
                 self.wait_timeout)
        idle.reset_transport(self.transport)
        self.wire.close()

    def release_backend(self) -> None:
        """Give back whatever this session holds (the client is gone or going); a pinned
        connection is reset first."""
        if self.migration_txn is not None:
            self.server.migration.transaction_ended(self)
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
