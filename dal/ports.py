"""The interfaces the session's collaborators see: `SessionPort` and `ServerPort`.

`dal.session.ClientSession` and `dal.server.Server` implement them. Modules below the session
(the execution context, XA, timeouts, KILL, lost connections, prepared statements) type their
arguments with these, never by importing the session or server modules, so that `dal` has no
import cycle, type-only imports included. Only `pool`, `router`, `config` and the wire codec
are imported here; DAL's own objects that would close a cycle are typed `Any`.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from config.model import Config
    from dal.wire.messages import ERR
    from dal.wire.results import ResponseScanner
    from pool.connection import BackendConnection
    from pool.pool import Pool
    from router.planner import Router


class Sink(Protocol):
    """Where a command's framed answer goes (dal/execute/sink.py)."""

    def write(self, data: bytes) -> None: ...


class ServerPort(Protocol):
    """What a session's collaborators use of the DAL server process."""

    config: Config
    router: Router
    pools: dict[str, Pool]
    xa: Any  # dal.xa.Coordinator in transaction mode xa, else None
    migration: Any  # dal.migration.service.Migrations when a database migrates, else None
    genes: Any  # router.genes generator of this worker
    protection: Any  # dal.protection.Protection
    statement_timeout: float
    default_instance: str
    sessions: set[Any]
    limiter: Any
    authenticator: Any  # dal.login.Authenticator
    created_databases: Any  # dal.created_databases.CreatedDatabases
    tls_context: Any  # ssl.SSLContext when clients may use TLS
    version: bytes
    worker_index: int  # this process's index among server.workers
    fleet: Any  # dal.fleet.Fleet with several workers, else None
    stats: Any  # dal.stats.StatementStats

    def next_connection_id(self) -> int: ...

    def count_login(self, ok: bool) -> None: ...

    def count_pin(self, reason: str) -> None: ...

    def count_refusal(self, code: int) -> None: ...

    def background(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def finish_statement(self, kind: str, failed: bool, started: float,
                         fingerprint: bytes | None) -> None: ...

    async def reset_and_release(self, conn: BackendConnection, close: bool = False) -> None: ...

    async def logical_tables(self, db: str) -> dict[str, str]: ...


class SessionPort(Protocol):
    """What the execution context and the session's helpers use of one client session."""

    server: ServerPort
    id: int
    user: str
    peer: str
    admin: bool
    schema: str | None
    state: dict[str, str]
    status: int
    busy: bool
    flavour: int  # of its backend connections (dal.wire.constants.FLAVOUR_*)
    extended_metadata: bool  # column definitions carry MariaDB's extended type info
    pinned: BackendConnection | None
    soft_pin: bool
    pin_reason: str | None
    txn_pending: str | None
    txn_shard: bytes | None
    databases: frozenset[str] | None  # a user's `databases:` list (None: every database)
    xa: Any  # dal.xa.XaTransaction while one is open
    migration_txn: Any  # dal.migration.txn.TxnWrites while a transaction wrote migrated tables
    snapshot: bool
    last_insert_id: int
    row_count: int
    found_rows_count: int
    phase: str
    sink: Sink
    relay: Any  # dal.execute.relay.Relay
    prepared: Any  # dal.prepared_statements.Registry, made at first use
    transport: asyncio.Transport | None
    statement_started: float  # perf_counter() when the current (or last) statement arrived
    statement_text: bytes | None  # its fingerprint, literals as ``?``
    planning: bool  # its statement is on the planner thread (dal/session/planning.py)
    kill_requested: bool  # a KILL QUERY came while it was

    @property
    def closed(self) -> bool: ...

    @property
    def reply_seq(self) -> int: ...

    def send(self, data: bytes) -> None: ...

    def send_error(self, err: ERR) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def drain(self) -> None: ...

    def command_ended(self) -> None: ...

    def abort(self) -> None: ...

    def release_backend(self) -> None: ...

    def note_counts(self, scanner: ResponseScanner) -> None: ...

    def finish_statement(self, kind: str, failed: bool) -> None: ...

    def visible_databases(self) -> list[str]: ...

    async def answer_locally(self, plan: Any) -> None: ...

    async def set_variables(self, plan: Any) -> None: ...
