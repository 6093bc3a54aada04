"""The `router.engine.base.Cursor` of one session: what a plan tree's primitives run through.

It owns no state of its own beyond the session and the execution's bindings; the session's
pins and transaction are handled by `leases`, one statement's relay by `relay`, a merge-free
scatter by `stream`, the transaction's branches by `xa`. The bindings (`dal.execute.bindings`)
decide how a single-shard route is sent (COM_QUERY or COM_STMT_EXECUTE) and how rows are
encoded (text or binary), so one tree serves text and prepared executions alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from dal import errors, xa
from dal.execute import fanout, leases, own
from dal.execute import stream as scatter_stream
from dal.wire.constants import Status
from pool.connection import BackendError, Result
from router.targets import AUTOCOMMIT_OFF, NOT_SUPPORTED, Refusal

if TYPE_CHECKING:
    from config.model import Config
    from dal.execute.bindings import ExecutionBindings
    from dal.ports import SessionPort
    from router.plan import Plan
    from router.rows.columns import ColumnDefinition
    from router.sharded import ShardedPlan
    from router.targets import Target

# Pins under which a scatter read may still run on pooled connections: the pinned state
# does not change what a plain read returns (SET TRANSACTION ..., LOCK TABLES of unsharded
# tables).
_READ_SAFE_PINS = frozenset({"set_other", "lock_tables"})


class ExecutionCursor:
    """One execution of a plan tree for one session, with its bindings."""

    __slots__ = ("bindings", "session")

    def __init__(self, session: SessionPort, bindings: ExecutionBindings) -> None:
        self.session = session
        self.bindings = bindings

    @property
    def config(self) -> Config:
        return self.session.server.config

    @property
    def max_merge_rows(self) -> int:
        return self.session.server.config.server.max_merge_rows

    def route(self, plan: Plan, bindings: ExecutionBindings) -> None:
        bindings.route(self.session, plan)

    def route_shard(self, sharded: ShardedPlan, target: Target, bindings: ExecutionBindings,
                    statement: str) -> None:
        bindings.route_shard(self.session, sharded, target, statement)

    def check_shard(self, database: bytes) -> bool:
        return leases.shard_allowed(self.session, database)

    def in_xa(self) -> bool:
        """The statement runs on the XA transaction's branches (mode xa, inside one)."""
        session = self.session
        return session.xa is not None or (session.server.xa is not None
                                          and session.txn_pending is not None)

    def guard_scatter(self, write: bool, insert: bool = False) -> None:
        session = self.session
        leases.drop_soft_pin(session)
        if insert:  # rows run one shard after another in the session (its branches in xa)
            if session.server.xa is None and (session.pinned is not None
                                              or session.txn_pending is not None):
                raise Refusal(NOT_SUPPORTED, "an INSERT whose rows belong to several user "
                              "shards is refused inside a transaction (transaction mode "
                              "'single')")
            return
        if self.in_xa():
            return
        if (session.pinned is not None or session.txn_pending is not None or (
                write and session.state.get("autocommit") == AUTOCOMMIT_OFF)) and (
                write or not self._beside_session()):
            raise Refusal(NOT_SUPPORTED, "a statement reaching several shards inside a "
                          "transaction is refused (transaction mode 'single'); keep a "
                          "transaction on one user")

    def _beside_session(self) -> bool:
        """True when a scatter read may run on pooled connections beside what the session
        holds: a transaction begun WITH CONSISTENT SNAPSHOT (mariadb-dump
        --single-transaction) that has not touched a shard yet, or a pin whose state a plain
        read does not depend on. Each shard is then read in its own snapshot, not the
        transaction's (README, "What you see through DAL")."""
        session = self.session
        if session.status & Status.IN_TRANS or session.txn_pending is not None:
            return session.snapshot and session.txn_shard is None
        return session.pin_reason in _READ_SAFE_PINS

    def can_stream(self) -> bool:
        """A merge-free scatter read may stream (also on the branches of an XA transaction):
        not under a statement timeout or rules.max_rows, which need a KILL per leg or the
        whole result, nor for a prepared execution, whose client reads binary rows and the
        shards' text rows would reach it as they are."""
        server = self.session.server
        return (self.bindings.text_rows and not server.statement_timeout
                and not server.config.rules.max_rows)

    def spawn(self, coroutine: Coroutine[Any, Any, None], label: str) -> None:
        self.session.spawn(self._answered(coroutine, label))

    async def _answered(self, coroutine: Coroutine[Any, Any, None], label: str) -> None:
        session = self.session
        failed = True
        try:
            await coroutine
            failed = False
        except Refusal as exc:
            session.send_error(errors.err((exc.code, exc.sqlstate), str(exc)))
        except BackendError as exc:
            session.send_error(exc.to_err())
        session.finish_statement(label, failed)
        session.busy = False

    def _read_state(self, write: bool) -> dict[str, str]:
        """The session state a pooled shard connection gets: outside a transaction a read is
        its own snapshot on each shard (with autocommit off it would leave a transaction open
        on every pooled connection it used)."""
        state = self.session.state
        if write or self.in_xa():
            return state
        return {k: v for k, v in state.items() if k != "autocommit"}

    async def fetch_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                           write: bool) -> list[Result | BaseException]:
        if self.in_xa():  # on the transaction's branches: it reads its own writes
            return await xa.run_on_shards(
                self.session, [(t.instance, sql) for t, sql in zip(targets, sqls, strict=True)])
        return await fanout.run(self.session, targets, sqls, self._read_state(write), write)

    async def stream_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                            logical: bytes) -> None:
        await scatter_stream.stream(self.session, list(targets), list(sqls),
                                    self._read_state(False), logical, self.in_xa())

    async def run_in_session(self, instance: str, sql: bytes) -> Result:
        return await leases.run_in_session(self.session, instance, sql)

    def next_id(self, user: int, merchant: int) -> int:
        return self.session.server.genes.next_id(user, merchant)

    def count_rule(self, rule: str) -> None:
        self.session.server.protection.count_rule(rule)

    def send_rows(self, columns: list[ColumnDefinition], rows: Sequence[list[bytes | None]],
                  logical: bytes) -> None:
        self.bindings.send_rows(self.session, columns, list(rows), logical)

    def send_ok(self, affected: int, last_insert_id: int = 0) -> None:
        self.bindings.send_ok(self.session, affected, last_insert_id)

    def send_error(self, code: int, sqlstate: str, message: str) -> None:
        self.session.send_error(errors.err((code, sqlstate), message))

    def local(self, plan: Plan, bindings: ExecutionBindings) -> None:
        self.session.spawn(self.session.answer_locally(plan))

    def set_variables(self, plan: Plan) -> None:
        self.session.spawn(self.session.set_variables(plan))

    # -- live migration (dal/migration/service.py) -------------------------------------------

    def migration_gate(self, db: str,
                       holder: int | None = None) -> AbstractAsyncContextManager[str]:
        charset = self.foreign_charset()
        if charset is not None:  # refused before anything runs
            raise Refusal(NOT_SUPPORTED, "writes to the tables of a live migration run the "
                          "client's literals on DAL's own connections too, which read text as "
                          f"utf8mb4, and this session's character set is {charset}: SET NAMES "
                          "utf8mb4 for them")
        migration = self.session.server.migration
        if holder is not None:
            migration.hold(self.session, db)
        return migration.gate(db).enter(holder)

    def foreign_charset(self) -> str | None:
        return own.foreign_charset(self.session.state)

    def transaction_holder(self) -> int | None:
        session = self.session
        if (self.in_xa() or session.status & leases.TXN_BITS != leases.AUTOCOMMIT
                or session.txn_pending is not None
                or session.state.get("autocommit") == AUTOCOMMIT_OFF):
            return session.id
        return None

    async def defer_mirror(self, instance: str, db: str, tbl: str, ids: Sequence[int],
                           direction: str, mirror: Callable[[Any, bytes], Awaitable[None]]) -> None:
        await self.session.server.migration.defer(self.session, instance, db, tbl, ids,
                                                  direction, mirror)

    def replanned(self) -> Any:
        return self.bindings.replan(self.session).root

    def max_legacy_id(self, db: str) -> int:
        return self.session.server.migration.max_legacy_id(db)

    async def legacy_users(self, db: str, tbl: str, ids: Sequence[int]) -> dict[int, int]:
        return await self.session.server.migration.legacy_users(db, tbl, ids)

    async def own_transaction(self, instance: str) -> own.OwnTransaction:
        return await own.begin(self.session, instance)

    async def run_pooled(self, instance: str, sql: bytes) -> Result:
        return await own.run_pooled(self.session, instance, sql)

    async def record_repair(self, db: str, tbl: str, ids: Sequence[int], direction: str,
                            error: str) -> None:
        await self.session.server.migration.record_repair(db, tbl, ids, direction, error)

    async def record_lookup(self, db: str, tbl: str,
                            rows: Sequence[tuple[int, int, int]]) -> None:
        await self.session.server.migration.record_lookup(db, tbl, rows)

    def count_migration(self, db: str, what: str, value: float, note: str = "") -> None:
        self.session.server.migration.count(db, what, value, note)


def run_tree(session: SessionPort, plan: Plan, bindings: ExecutionBindings) -> None:
    """Execute ``plan``'s tree for ``session``; a refusal found before anything ran (a bad
    shard key, a join away from its home) is the command's ERR."""
    try:
        plan.root.execute(ExecutionCursor(session, bindings), bindings)
    except Refusal as exc:
        session.send_error(errors.err((exc.code, exc.sqlstate), str(exc)))
