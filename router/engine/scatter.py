"""`Scatter`: a sharded statement's leaf, and the run of a row tree above it.

The leaf resolves its targets from the bindings' slots (`router.targets`). One target: the
single-shard statement (the plan's ``template``) is relayed raw, no row decoded, whatever
merges sit above. Several: a read renders the scatter template (``LIMIT m, n`` becomes
``LIMIT m+n`` on the shards), then either streams a plain concatenation or fetches every
shard and runs the merge primitives above; a write sums the shards' affected rows.

Refusals, as the executor has always made them: UPDATE/DELETE with LIMIT on several shards,
the transaction mode (`Cursor.guard_scatter`), a read DAL cannot merge, a merge that would
hold more than ``server.max_merge_rows`` (TOO_LARGE), a result over ``rules.max_rows``
(1104). A write that failed on some shards says which, and how many applied it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from config.model import Config
from router.engine.base import (
    STATEMENT_TIMEOUT_CODE,
    BackendFailure,
    Bindings,
    Cursor,
    Primitive,
    Row,
    RowPrimitive,
    Rows,
    ShardFailure,
    ShardResult,
    Slots,
)
from router.engine.merging import apply, bind, chain_of, one_stream
from router.engine.spec import MergeSpec
from router.primitives.errors import MergeTooLarge, ScatterUnsupported
from router.rows.columns import ColumnDefinition
from router.sharded import ShardedPlan
from router.targets import NOT_SUPPORTED, TOO_LARGE, Refusal, Target, single_target, targets

MAX_ROWS = (1104, "42000")  # ER_TOO_BIG_SELECT: rules.max_rows (docs/errors.md)
UNMERGEABLE = "DAL cannot merge this statement across shards: "


class Scatter(RowPrimitive):
    """A read or write on the shards of one dimension that ``sharded.routing`` names."""

    def __init__(self, sharded: ShardedPlan, statement: str) -> None:
        self.sharded = sharded
        self.statement = statement
        self.write = sharded.write
        self.label = f"scatter:{statement}"
        merge = sharded.scatter
        self.template = sharded.template
        self.widen: Callable[[list[list[bytes]]], list[list[bytes]]] | None = None
        self.unmergeable: str | None = None
        if not self.write:
            if sharded.scatter_template is not None:
                self.template = sharded.scatter_template
            elif isinstance(merge, Exception):
                self.unmergeable = str(merge)
            if merge is not None and not isinstance(merge, Exception):
                self.widen = merge.shard_slots  # type: ignore[attr-defined]
        # A plain concatenation may stream; without any merge plan it is bounded instead.
        self.streamable = not self.write and (
            merge is None or getattr(merge, "spec", None) == MergeSpec())
        self.bounded = merge is None

    def describe(self, slots: Slots | None = None) -> str:
        routing = self.sharded.routing
        if not routing.slots:
            how = "every shard (no shard key)"
        else:
            how = "the shards of the " + ("order id (gene)" if routing.gene else "key") + " values"
        verb = self.statement.upper()
        text = f"Scatter {verb} on {routing.dimension} shards: {how}"
        if self.write:
            return text + "; affected rows summed"
        if self.unmergeable is not None:
            return text + f"; refused on several shards ({self.unmergeable})"
        return text + ("; rows concatenated (streamed when allowed)" if self.streamable else "")

    def targets(self, config: Config, slots: Slots) -> list[Target]:
        """The shards this execution reaches (a cached target for one key value)."""
        one = single_target(config, self.sharded, slots)  # type: ignore[arg-type]
        return [one] if one is not None else targets(config, self.sharded, slots)  # type: ignore[arg-type]

    def render(self, slots: Slots, found: Sequence[Target]) -> list[bytes]:
        """The statement each of several targets gets (one target gets the plan's template)."""
        if self.widen is not None:
            slots = self.widen(slots)  # type: ignore[arg-type]
        return [self.template.render(slots, t.database, t.only)  # type: ignore[arg-type]
                for t in found]

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        self.execute_tree(self, cursor, bindings)

    def execute_tree(self, root: Primitive, cursor: Cursor, bindings: Bindings) -> None:
        """Run the tree whose leaf this is: relay one target raw, or spawn the scatter."""
        found = self.targets(cursor.config, bindings.slots)
        if len(found) == 1:
            if cursor.check_shard(found[0].database):
                cursor.route_shard(self.sharded, found[0], bindings, self.statement)
            return
        run = self.write_on(cursor, bindings, found) if self.write else self.read_on(
            root, cursor, bindings, found)
        cursor.spawn(run, self.label)

    async def fetch(self, cursor: Cursor, bindings: Bindings) -> Rows:
        """Every target's rows (shard column definitions, one stream per shard)."""
        found = self.targets(cursor.config, bindings.slots)
        return await self.gather(cursor, found, self.sqls(cursor, bindings.slots, found))

    def sqls(self, cursor: Cursor, slots: Slots, found: Sequence[Target]) -> list[bytes]:
        """Refuse what may not reach several shards; else each target's statement."""
        if self.sharded.limited:
            raise Refusal(NOT_SUPPORTED, f"UPDATE/DELETE with LIMIT reaching {len(found)} shards "
                          "is refused: each shard would apply the LIMIT on its own. Name one "
                          "user key (or order id), or leave out the LIMIT")
        cursor.guard_scatter(self.write)
        if self.unmergeable is not None:
            raise Refusal(NOT_SUPPORTED, UNMERGEABLE + self.unmergeable)
        return self.render(slots, found)

    async def gather(self, cursor: Cursor, found: Sequence[Target],
                     sqls: Sequence[bytes]) -> Rows:
        """Run a read's statements; the shards' rows."""
        results = settle(cursor, found, await cursor.fetch_shards(found, sqls, False), False)
        return Rows(results[0].columns, [r.rows for r in results])

    async def read_on(self, root: Primitive, cursor: Cursor, bindings: Bindings,
                      found: list[Target]) -> None:
        """Read ``found`` (the targets, resolved already), merge with ``root``'s tree, answer."""
        columns, rows = await self.rows_on(root, cursor, bindings, found)
        if columns is not None:
            cursor.send_rows(columns, rows, self.sharded.logical)

    async def rows_on(self, root: Primitive, cursor: Cursor, bindings: Bindings,
                      found: list[Target]) -> tuple[list[ColumnDefinition] | None, list[Row]]:
        """The merged rows of ``root``'s tree over ``found``; (None, []) when they were
        streamed to the client already."""
        slots = bindings.slots
        sqls = self.sqls(cursor, slots, found)
        if root is self and self.streamable and cursor.can_stream() and len(found) > 1:
            await cursor.stream_shards(found, sqls, self.sharded.logical)
            return None, []
        nodes, _ = chain_of(root)
        steps = bind(nodes, slots)
        max_rows = cursor.max_merge_rows
        columns, rows = self.materialize(apply(steps, await self.gather(cursor, found, sqls),
                                               max_rows), max_rows)
        limit = cursor.config.rules.max_rows
        if limit and len(rows) > limit:
            cursor.count_rule("max_rows")
            raise Refusal(MAX_ROWS, f"DAL rule max_rows: the merged result has {len(rows)} "
                          f"rows, more than rules.max_rows = {limit}; add a shard key, a "
                          "narrower WHERE or a LIMIT")
        return columns, rows

    def materialize(self, merged: Rows, max_rows: int) -> tuple[list[ColumnDefinition],
                                                                 list[Row]]:
        """The client's columns and rows, read once; merge limits become refusals."""
        try:
            rows = list(one_stream(merged))
        except MergeTooLarge as exc:
            raise Refusal(TOO_LARGE, str(exc)) from None
        except ScatterUnsupported as exc:
            raise Refusal(NOT_SUPPORTED, UNMERGEABLE + str(exc)) from None
        if self.bounded and len(rows) > max_rows:
            raise Refusal(TOO_LARGE, f"the scatter result holds more than {max_rows} rows "
                          "(server.max_merge_rows); add a shard key or a LIMIT")
        return merged.columns, rows

    async def write_on(self, cursor: Cursor, bindings: Bindings, found: list[Target]) -> None:
        """Write ``found`` (the targets, resolved already); answer the summed OK."""
        sqls = self.sqls(cursor, bindings.slots, found)
        results = settle(cursor, found, await cursor.fetch_shards(found, sqls, True), True)
        cursor.send_ok(self.affected(results))

    def affected(self, results: list[ShardResult]) -> int:
        """The affected rows a write reports: every shard's, summed."""
        return sum(r.ok.affected_rows for r in results if r.ok is not None)


def settle(cursor: Cursor, found: Sequence[Target],
           outcomes: list[ShardResult | BaseException], write: bool) -> list[ShardResult]:
    """The shards' results, or the first failure raised: a statement timeout counted, and a
    write that failed on some shards saying which and how many applied it."""
    failed = [(t, o) for t, o in zip(found, outcomes, strict=True)
              if isinstance(o, BaseException)]
    if not failed:
        return outcomes  # type: ignore[return-value]
    first = failed[0][1]
    backend = isinstance(first, BackendFailure)
    if backend and first.code == STATEMENT_TIMEOUT_CODE:  # type: ignore[union-attr]
        cursor.count_rule("statement_timeout")
    if backend and write and len(failed) < len(found):
        names = ", ".join(t.database.decode() for t, _ in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise ShardFailure(first, f"failed on {names}{more}; the other "  # type: ignore[arg-type]
                           f"{len(found) - len(failed)} of {len(found)} databases applied it")
    raise first
