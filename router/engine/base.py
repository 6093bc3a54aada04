"""The primitive base class and the two interfaces an execution uses: `Cursor` and `Bindings`.

A primitive is a node of a plan tree. ``execute(cursor, bindings)`` runs it and answers the
client through the cursor; primitives that produce rows for a parent also have
``fetch(cursor, bindings)``. ``inputs()`` are its children and ``describe()`` one line of
``EXPLAIN DAL``. Primitives hold no literal values: one tree serves every statement of a shape.

Errors: refusals are `router.targets.Refusal`; a shard's error that a primitive annotates (which
shards failed, which applied) is a `ShardFailure`, a Refusal with the backend's own code and
SQLSTATE; other backend errors pass through as the cursor raised them (`BackendFailure`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from router.rows.columns import ColumnDefinition
from router.targets import Refusal

if TYPE_CHECKING:
    from config.model import Config
    from router.plan import Plan
    from router.sharded import ShardedPlan
    from router.targets import Target

Row = list[bytes | None]
Slots = Sequence[Sequence[bytes]]

# ER_STATEMENT_TIMEOUT: a backend stopped a statement at max_statement_time (dal.timeouts).
STATEMENT_TIMEOUT_CODE = 1969


@runtime_checkable
class BackendFailure(Protocol):
    """A backend's error as the cursor raises it (pool.connection.BackendError has this shape;
    a `Refusal` has no ``message``)."""

    code: int
    message: str
    sqlstate: str


class ShardFailure(Refusal):
    """A backend's error with DAL's note of what the other shards did; it keeps the backend's
    code and SQLSTATE, and the client sees it as that backend error."""

    def __init__(self, failure: BackendFailure, note: str) -> None:
        super().__init__((failure.code, failure.sqlstate), f"{failure.message} ({note})")


class ShardOk(Protocol):
    """What a backend's OK says (pool.connection's OK packet has these)."""

    affected_rows: int
    last_insert_id: int


class ShardResult(Protocol):
    """One backend's decoded answer (pool.connection.Result has this shape)."""

    columns: list[ColumnDefinition]
    rows: list[Row]
    ok: ShardOk | None
    status: int


@dataclass(slots=True)
class OwnTransaction(Protocol):
    """A transaction on one backend that DAL opens for itself, apart from the session's (a
    dual write's authoritative side, router/engine/dualwrite.py)."""

    async def run(self, sql: bytes) -> ShardResult:
        """One statement in the transaction."""

    async def commit(self) -> None:
        """Commit and give the connection back."""

    async def rollback(self) -> None:
        """Roll back (if still open) and give the connection back; never raises."""


@dataclass(slots=True)
class Rows:
    """Rows flowing up a tree: the shard column definitions and one row stream per input
    (several before a merge, one after). A stream may be a lazy iterator (a k-way merge, a
    DISTINCT, a LIMIT that stops early); the tree's root materialises it once."""

    columns: list[ColumnDefinition]
    parts: list[Iterable[Row]]


class Bindings(Protocol):
    """What one execution binds to a tree: the literal values of the statement's slots (for a
    prepared execution, its parameters written as SQL literals)."""

    @property
    def slots(self) -> list[list[bytes]]: ...


class Cursor(Protocol):
    """The execution context (Vitess's VCursor), implemented by `dal.execute`: it leases
    backend connections with the session's state, pins, transaction, timeout, breaker, limits
    and metrics, and owns the result sink (the client, or a batch's buffer).

    Refusals are raised as `router.targets.Refusal`; backend errors as the pool's exceptions.
    Coroutines handed to `spawn` may raise either: the cursor answers with the ERR."""

    @property
    def config(self) -> Config: ...

    @property
    def max_merge_rows(self) -> int: ...

    def route(self, plan: Plan, bindings: Bindings) -> None:
        """One backend instance named by ``plan`` (kind route): the statement as the client
        sent it (or ``plan.sql``), the result relayed raw. Returns at once; the cursor
        completes the command."""

    def route_shard(self, sharded: ShardedPlan, target: Target, bindings: Bindings,
                    statement: str) -> None:
        """One shard: ``sharded.template`` rendered for ``target`` (the cursor renders it as
        the bindings need: literals for text, ``?`` markers for a prepared execution), the
        result relayed raw with the column headers renamed to the logical database."""

    def check_shard(self, database: bytes) -> bool:
        """Inside a transaction (mode single), may a statement reach shard ``database``?
        False after the cursor sent the refusal."""

    def in_xa(self) -> bool:
        """The statement runs on the branches of an XA transaction (transaction mode xa)."""

    def guard_scatter(self, write: bool, insert: bool = False) -> None:
        """Before a statement reaches several shards: drops a diagnostics-only pin and raises
        `Refusal` where the transaction mode forbids it. ``insert``: an INSERT whose rows
        belong to several user shards (run through `run_in_session`), refused in mode single
        only while the session is pinned or a transaction is pending, with its own message."""

    def can_stream(self) -> bool:
        """May a concatenation read be streamed shard by shard (no transaction branches, no
        statement timeout, no rules.max_rows to count against)?"""

    def spawn(self, coroutine: Coroutine[Any, Any, None], label: str) -> None:
        """Run the rest of the command as a coroutine; ``label`` names it in the metrics
        (``scatter:select``). Exceptions become the command's ERR."""

    async def fetch_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                           write: bool) -> list[ShardResult | BaseException]:
        """Run one statement per target concurrently (on the transaction's branches in mode
        xa, else pooled connections); per target in order, its answer or the exception it
        raised (as ``asyncio.gather(return_exceptions=True)``): the primitive decides what a
        partial failure says. A failure before any statement ran (opening the transaction)
        may be raised instead."""

    async def stream_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                            logical: bytes) -> None:
        """Relay the shards' results one after another as one result set, in bounded memory."""

    async def run_in_session(self, instance: str, sql: bytes) -> ShardResult:
        """One statement on ``instance`` as part of the session (its pinned connection or
        transaction branch, opening a pending transaction)."""

    def next_id(self, user: int, merchant: int) -> int:
        """A new order id (gene) for these keys."""

    def count_rule(self, rule: str) -> None:
        """Count a protection rule that stopped or shaped a statement."""

    def send_rows(self, columns: list[ColumnDefinition], rows: Sequence[Row],
                  logical: bytes) -> None:
        """Answer with a result set (encoded once: text or binary rows as the command needs;
        shard column definitions renamed to ``logical``)."""

    def send_ok(self, affected: int, last_insert_id: int = 0) -> None:
        """Answer with an OK (and remember LAST_INSERT_ID when given)."""

    def send_error(self, code: int, sqlstate: str, message: str) -> None:
        """Answer with an ERR of DAL's own (counted as a refusal by its code)."""

    def local(self, plan: Plan, bindings: Bindings) -> None:
        """Answer a plan of kind local: DAL's own handler ``plan.handler`` (dal.local) with
        ``plan.args``. Returns at once; the cursor completes the command."""

    def set_variables(self, plan: Plan) -> None:
        """Record a plan of kind set: ``plan.assignments`` replayed on the session's
        connections, ``plan.args`` (name, expression) evaluated once first. Returns at once;
        the cursor completes the command."""

    # -- live migration (router/engine/migrated.py, dualwrite.py) ----------------------------

    def migration_gate(self, db: str,
                       holder: int | None = None) -> AbstractAsyncContextManager[str]:
        """Enter a write to ``db``'s migrated tables: held while a phase switch drains (up to
        the migration's write_pause, then a `Refusal`), counted in flight until it exits. It
        yields the phase the write must run under. ``holder`` (`transaction_holder`): the
        write is part of a client transaction, which then holds the gate until it ends."""

    def transaction_holder(self) -> int | None:
        """The session's id when this statement runs inside a client transaction (BEGIN or
        autocommit=0; in mode xa on its branches); None otherwise."""

    async def defer_mirror(self, instance: str, db: str, tbl: str, ids: Sequence[int],
                           direction: str,
                           mirror: Callable[[Cursor, bytes], Awaitable[None]]) -> None:
        """Inside a client transaction: record ``ids`` in the outbox on ``instance`` as part
        of the transaction, and run ``mirror(cursor, done)`` after its COMMIT (``done``: the
        statement that deletes those entries, for the mirror's transaction there)."""

    def replanned(self) -> Primitive | None:
        """This statement's tree planned again (after a phase switch it waited for)."""

    def max_legacy_id(self, db: str) -> int:
        """The highest id the legacy database had when ``db`` left phase legacy."""

    async def legacy_users(self, db: str, tbl: str, ids: Sequence[int]) -> Mapping[int, int]:
        """``id -> user key`` of legacy ids of ``tbl`` (the lookup, cached)."""

    def foreign_charset(self) -> str | None:
        """The session's character set when DAL's own connections (`own_transaction`,
        `run_pooled`: utf8mb4) would read its literals differently, else None."""

    async def own_transaction(self, instance: str) -> OwnTransaction:
        """A transaction of DAL's own on ``instance`` (BEGIN sent)."""

    async def run_pooled(self, instance: str, sql: bytes) -> ShardResult:
        """One autocommitted statement on a pooled connection of ``instance``."""

    async def record_repair(self, db: str, tbl: str, ids: Sequence[int], direction: str,
                            error: str) -> None:
        """Record failed mirrors durably (the repair log) for the repairer."""

    async def record_lookup(self, db: str, tbl: str,
                            rows: Sequence[tuple[int, int, int]]) -> None:
        """Record ``(id, user key, merchant key)`` of legacy rows in the lookup."""

    def count_migration(self, db: str, what: str, value: float, note: str = "") -> None:
        """A migration metric: ``shadow`` (value 1: a mismatch, logged with ``note``) or
        ``dual_write`` (value: seconds)."""


class Primitive(ABC):
    """A node of a plan tree."""

    def inputs(self) -> tuple[Primitive, ...]:
        """The children, in order (EXPLAIN DAL walks these)."""
        return ()

    @abstractmethod
    def describe(self, slots: Slots | None = None) -> str:
        """One line for EXPLAIN DAL: the primitive's name and what it does; with a
        statement's ``slots``, the values it takes from them (a LIMIT's count)."""

    @abstractmethod
    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        """Run this (sub)tree and answer the client through ``cursor``."""


class RowPrimitive(Primitive):
    """A primitive whose rows a parent merges (a Scatter, and the merges above it)."""

    @abstractmethod
    async def fetch(self, cursor: Cursor, bindings: Bindings) -> Rows:
        """This subtree's rows for one execution (streams may be lazy)."""
