"""The trees of statements on a live migration's tables, one shape per phase (router/migration.py).

    legacy        reads: Route to legacy          writes: Gated > LegacyWrite
    dual_legacy   reads: Route to legacy          writes: Gated > DualWrite (legacy first)
    shadow        reads: ShadowRead               writes: Gated > DualWrite (legacy first)
    dual_sharded  reads: [LegacyIds >] shard tree writes: Gated > DualWrite (shards first)
    sharded       reads: [LegacyIds >] shard tree writes: Gated > ShardWrite

A read that names a migrated table with the logical database's qualifier runs as a
`LegacyWrite` (the statement rendered for legacy, the answer built by DAL) instead of a raw
Route, whose bytes would name the logical database.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from router.engine.base import Bindings, Cursor, Primitive, RowPrimitive, ShardResult, Slots
from router.engine.build import sharded_tree
from router.engine.insert import InsertSplit
from router.engine.route import Route
from router.engine.scatter import Scatter
from router.migration import LEGACY_AUTHORITATIVE, MigrationSpec, legacy_route
from router.plan import Plan
from router.sharded import ShardedPlan
from router.targets import Refusal, Target, key_value, targets

if TYPE_CHECKING:
    from router.rows.columns import ColumnDefinition

log = logging.getLogger("dal.migration")

SWITCHED = (1205, "HY000")  # the lock wait timeout's code: retry the statement


def build_migrated(plan: Plan, spec: MigrationSpec) -> Primitive:
    """The tree of a plan of kind migrated (``plan.sharded``: the sharded plan, if any)."""
    from router.engine.dualwrite import DualWrite

    sharded: ShardedPlan | None = plan.sharded  # type: ignore[assignment]
    phase = spec.phase
    legacy: Primitive = (LegacyWrite(spec, plan.statement) if spec.qualified or spec.write
                         else Route(legacy_route(plan)))
    if spec.write:
        if phase == "legacy":
            return Gated(spec, legacy, plan.statement)
        if phase == "sharded":
            return Gated(spec, ShardWrite(spec, sharded, plan.statement), plan.statement)
        return Gated(spec, DualWrite(spec, sharded, plan.statement), plan.statement)
    if phase in LEGACY_AUTHORITATIVE:
        if phase == "shadow" and sharded is not None and spec.shadow_rate > 0:
            return ShadowRead(spec, legacy, sharded, plan.statement)
        return legacy
    assert sharded is not None
    tree = sharded_tree(sharded, plan.statement)
    return LegacyIds(spec, tree, sharded) if spec.lookups else tree


def answer(cursor: Cursor, result: ShardResult, logical: bytes) -> None:
    """Answer the client with a backend's decoded result: its rows, or its OK."""
    if result.ok is not None and not result.columns:
        cursor.send_ok(result.ok.affected_rows, result.ok.last_insert_id)
    else:
        cursor.send_rows(result.columns, result.rows, logical)


def scatter_of(root: Primitive) -> Scatter | None:
    """The Scatter leaf under a read's merge primitives."""
    node = root
    while not isinstance(node, Scatter):
        children = node.inputs()
        if not children:
            return None
        node = children[0]
    return node


async def resolve(cursor: Cursor, spec: MigrationSpec, sharded: ShardedPlan,
                  slots: Slots) -> list[Target]:
    """The shards a statement reaches, legacy ids routed through the lookup (an id the lookup
    does not know routes by its gene, as any other)."""
    limit = cursor.max_legacy_id(spec.db)
    wanted: dict[str, set[int]] = {}
    for slot, tbl in spec.lookups:
        for literal in slots[slot]:
            value = key_value(literal)
            if value <= limit:
                wanted.setdefault(tbl, set()).add(value)
    users: dict[tuple[int, int], int] = {}
    for tbl, ids in wanted.items():
        found = await cursor.legacy_users(spec.db, tbl, sorted(ids))
        for slot, slot_tbl in spec.lookups:
            if slot_tbl == tbl:
                users.update({(slot, i): u for i, u in found.items()})
    cfg = cursor.config.databases[spec.db]
    shards = cfg.dimensions[sharded.routing.dimension].shards

    def shard_of(slot: int, value: int) -> int | None:
        user = users.get((slot, value))
        return None if user is None else user % shards

    return targets(cursor.config, sharded, slots, shard_of)  # type: ignore[arg-type]


async def on_one_shard(cursor: Cursor, sharded: ShardedPlan, target: Target,
                       slots: Slots) -> ShardResult | None:
    """The single-shard statement on ``target``, in the session (its transaction, if any);
    None when the transaction mode refused the shard (the cursor answered)."""
    if not cursor.check_shard(target.database):
        return None
    sql = sharded.template.render(slots, target.database, target.only)  # type: ignore[arg-type]
    return await cursor.run_in_session(target.instance, sql)


def needs_lookup(cursor: Cursor, spec: MigrationSpec, slots: Slots) -> bool:
    """Whether a routing value of this execution is a legacy id."""
    limit = cursor.max_legacy_id(spec.db)
    if not limit:
        return False
    return any(key_value(literal) <= limit for slot, _ in spec.lookups
               for literal in slots[slot])


class Gated(Primitive):
    """A write to migrated tables: held while a phase switch drains, counted in flight."""

    def __init__(self, spec: MigrationSpec, inner: Primitive, statement: str) -> None:
        self.spec = spec
        self.inner = inner
        self.label = f"migrated:{statement}"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.inner,)

    def describe(self, slots: Slots | None = None) -> str:
        return (f"Gated write to the migrated tables of {self.spec.db} (phase "
                f"{self.spec.phase}): held while a phase switch drains")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.spawn(self.run(cursor, bindings), self.label)

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Pass the gate, then run the write under the phase the gate names."""
        async with cursor.migration_gate(self.spec.db, cursor.transaction_holder()) as phase:
            inner = self.inner
            if phase != self.spec.phase:  # a switch happened since this tree was planned
                root = cursor.replanned()
                if not isinstance(root, Gated):
                    raise Refusal(SWITCHED, f"the migration phase of {self.spec.db} changed "
                                  "while this write waited, and it cannot run in the new one; "
                                  "run it again")
                inner = root.inner
            await inner.run(cursor, bindings)  # type: ignore[attr-defined]


class LegacyWrite(Primitive):
    """The statement rendered for the legacy database, run in the session, answered by DAL."""

    def __init__(self, spec: MigrationSpec, statement: str) -> None:
        self.spec = spec
        self.statement = statement

    def describe(self, slots: Slots | None = None) -> str:
        return (f"Legacy {self.statement.upper()} on instance {self.spec.source_instance}, "
                f"database {self.spec.source_database}")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.spawn(self.run(cursor, bindings), f"legacy:{self.statement}")

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Run it and answer."""
        spec = self.spec
        result = await cursor.run_in_session(spec.source_instance,
                                             spec.legacy.render(bindings.slots, b""))
        answer(cursor, result, spec.db.encode())


class ShardWrite(Primitive):
    """Phase sharded: the sharded write, legacy ids routed through the lookup."""

    def __init__(self, spec: MigrationSpec, sharded: ShardedPlan | None, statement: str) -> None:
        assert sharded is not None
        self.spec = spec
        self.sharded = sharded
        self.statement = statement
        self.tree = sharded_tree(sharded, statement)

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.tree,)

    def describe(self, slots: Slots | None = None) -> str:
        return "ShardWrite: the sharded write, legacy ids through the lookup"

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.spawn(self.run(cursor, bindings), f"sharded:{self.statement}")

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Run the write on its shards (in the session, as the sharded path does)."""
        tree = self.tree
        if isinstance(tree, InsertSplit):
            await tree.run(cursor, bindings)
            return
        assert isinstance(tree, Scatter)
        found = await resolve(cursor, self.spec, self.sharded, bindings.slots)
        if len(found) != 1:
            await tree.write_on(cursor, bindings, found)
            return
        result = await on_one_shard(cursor, self.sharded, found[0], bindings.slots)
        if result is not None:
            cursor.send_ok(result.ok.affected_rows if result.ok else 0)


class LegacyIds(Primitive):
    """A read of the shards whose routing values may be legacy ids: those go through the
    lookup; any other execution runs the sharded tree as it is."""

    def __init__(self, spec: MigrationSpec, tree: Primitive, sharded: ShardedPlan) -> None:
        self.spec = spec
        self.tree = tree
        self.sharded = sharded

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.tree,)

    def describe(self, slots: Slots | None = None) -> str:
        return "LegacyIds: ids up to the highest legacy id routed through the lookup"

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        if not needs_lookup(cursor, self.spec, bindings.slots):
            self.tree.execute(cursor, bindings)
            return
        cursor.spawn(self.run(cursor, bindings), "lookup:select")

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Resolve the shards through the lookup, read them, merge, answer."""
        scatter = scatter_of(self.tree)
        assert scatter is not None
        found = await resolve(cursor, self.spec, self.sharded, bindings.slots)
        if len(found) != 1:
            await scatter.read_on(self.tree, cursor, bindings, found)
            return
        result = await on_one_shard(cursor, self.sharded, found[0], bindings.slots)
        if result is not None:
            answer(cursor, result, self.sharded.logical)


class ShadowRead(Primitive):
    """Phase shadow: legacy answers; a sample (shadow_rate) also reads the shards and the two
    row sets are compared (sorted); a mismatch is counted and logged with the statement. Not
    inside a client transaction: legacy answers there, in the transaction."""

    def __init__(self, spec: MigrationSpec, legacy: Primitive, sharded: ShardedPlan,
                 statement: str) -> None:
        self.spec = spec
        self.legacy = legacy
        self.sharded = sharded
        self.tree = sharded_tree(sharded, statement)

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.legacy, self.tree)

    def describe(self, slots: Slots | None = None) -> str:
        return (f"ShadowRead: legacy answers; {self.spec.shadow_rate:.2%} of reads also run "
                "on the shards and are compared")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        # inside a client transaction legacy answers in it (its own writes are not on the
        # shards before COMMIT): no comparison; nor when the session's character set is not
        # the one DAL's own connections read the statement in
        if (random.random() >= self.spec.shadow_rate or cursor.transaction_holder() is not None
                or cursor.foreign_charset() is not None):
            self.legacy.execute(cursor, bindings)
            return
        cursor.spawn(self.run(cursor, bindings), "shadow:select")

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Read both sides, answer from legacy, compare."""
        spec = self.spec
        slots = bindings.slots
        result = await cursor.run_pooled(spec.source_instance, spec.legacy.render(slots, b""))
        answer(cursor, result, spec.db.encode())
        try:
            columns, rows = await self._shard_rows(cursor, bindings)
        except Exception as exc:  # the client has its answer; the comparison is best effort
            log.info("shadow read of %s skipped: %s", spec.db, exc)
            return
        if columns is None:
            return
        equal = _sorted(rows) == _sorted(result.rows)
        note = "" if equal else spec.legacy.render(slots, b"").decode("utf-8", "replace")
        cursor.count_migration(spec.db, "shadow", 0.0 if equal else 1.0, note)

    async def _shard_rows(self, cursor: Cursor, bindings: Bindings,
                          ) -> tuple[list[ColumnDefinition] | None, list]:
        scatter = scatter_of(self.tree)
        if scatter is None or not isinstance(self.tree, RowPrimitive | Scatter):
            return None, []
        found = await resolve(cursor, self.spec, self.sharded, bindings.slots)
        if self.tree is scatter:
            sqls = scatter.sqls(cursor, bindings.slots, found)
            rows = await scatter.gather(cursor, found, sqls)
            return rows.columns, [row for part in rows.parts for row in part]
        return await scatter.rows_on(self.tree, cursor, bindings, found)


def _sorted(rows: list) -> list:
    return sorted(tuple(b"\x00NULL" if v is None else v for v in row) for row in rows)
