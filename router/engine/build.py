"""The tree of primitives of a plan, built once per statement shape (the plan cache holds it).

`rooted` is the one place a planned `Plan` gets its tree (`Router.plan` calls it on a cache
miss). A sharded read's tree is the merge primitives of its `MergeSpec` over a `Scatter`:

    Project (hidden columns, names) > Limit > MergeSort k-way > Distinct > Scatter
    Project > Limit > MergeSort in memory (top-n) > Distinct > Aggregate (+HAVING) > Scatter

each present only when the spec needs it (a plain concatenation is a bare Scatter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from router.engine.aggregate import Aggregate
from router.engine.base import Bindings, Cursor, Primitive, Row, RowPrimitive, Rows, Slots
from router.engine.broadcast import Broadcast
from router.engine.distinct import Distinct
from router.engine.insert import InsertSplit
from router.engine.limit import Limit
from router.engine.local import Local, Refuse, SetVariables
from router.engine.mergesort import MergeSort
from router.engine.merging import apply, bind, chain_of, one_stream
from router.engine.project import Project
from router.engine.route import Route
from router.engine.scatter import Scatter
from router.engine.spec import MergeSpec
from router.plan import LOCAL, REFUSE, ROUTE, SET, SHARDED, Plan
from router.rows.columns import ColumnDefinition
from router.sharded import ShardedPlan


def rooted(plan: Plan) -> Plan:
    """``plan`` with its tree (the same plan when it has one)."""
    return plan if plan.root is not None else replace(plan, root=build(plan))


def build(plan: Plan) -> Primitive:
    """The tree of primitives that executes ``plan``."""
    kind = plan.kind
    if kind == ROUTE:
        return Route(plan)
    if kind == SHARDED:
        return sharded_tree(plan.sharded, plan.statement)  # type: ignore[arg-type]
    if kind == LOCAL:
        return Local(plan)
    if kind == SET:
        return SetVariables(plan)
    if kind == REFUSE:
        return Refuse(plan)
    raise ValueError(f"no primitive for plan kind {kind!r}")


def sharded_tree(sharded: ShardedPlan, statement: str) -> Primitive:
    """InsertSplit, Broadcast, a Scatter write, or a read's merges over its Scatter."""
    if sharded.insert is not None:
        return InsertSplit(sharded, statement)
    if sharded.routing.broadcast:
        return Broadcast(sharded, statement)
    leaf = Scatter(sharded, statement)
    spec = None if sharded.write else getattr(sharded.scatter, "spec", None)
    return leaf if spec is None else merge_tree(spec, leaf)


def merge_tree(spec: MergeSpec, leaf: RowPrimitive) -> RowPrimitive:
    """The merge primitives ``spec`` asks for, over ``leaf``."""
    node: RowPrimitive = leaf
    slotted = spec.slotted
    if spec.aggregated:
        node = Aggregate(node, spec.group_by, spec.aggregates, spec.grouped, spec.having,
                         slotted)
        if spec.distinct:
            node = Distinct(node, spec.hidden)
        if spec.order:
            node = MergeSort(node, spec.order, False, spec.limit, spec.offset, slotted)
    else:  # the shards sort by ORDER BY (pushed down): their streams merge k-way
        if spec.order:
            node = MergeSort(node, spec.order, True, slotted=slotted)
        if spec.distinct:
            node = Distinct(node, spec.hidden)
    if spec.limit is not None or spec.offset != 0:
        node = Limit(node, spec.limit, spec.offset)
    if spec.hidden or spec.names:
        node = Project(node, spec.hidden, spec.names, slotted)
    return node


class Given(RowPrimitive):
    """A leaf of rows already fetched: merges run over it without a cursor."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def describe(self, slots: Slots | None = None) -> str:
        return f"Given rows ({len(self.rows.parts)} streams)"

    async def fetch(self, cursor: Cursor, bindings: Bindings) -> Rows:
        return self.rows

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        raise TypeError("rows given to a merge are not a statement to execute")


def merge_rows(root: Primitive, rows: Rows, slots: Slots,
               max_rows: int) -> tuple[list[ColumnDefinition], list[Row]]:
    """Run the merge primitives of ``root``'s tree over ``rows`` (its leaf's output) and read
    the result: the client's column definitions and rows. Raises what the merges raise
    (`MergeTooLarge`, `ScatterUnsupported`, ValueError for a LIMIT literal that is no count)."""
    nodes, _ = chain_of(root)
    merged = apply(bind(nodes, slots), rows, max_rows)
    return merged.columns, list(one_stream(merged))


def merge_results(spec: MergeSpec, columns: list[ColumnDefinition],
                  results: Sequence[Sequence[Row]], max_rows: int,
                  slots: Slots | None = None) -> tuple[list[ColumnDefinition], list[Row]]:
    """The merge of ``spec`` over shard results already fetched (one row list per shard):
    the client's column definitions and rows. ``slots`` are the statement's literal slots,
    needed when ``spec.slotted``."""
    if slots is None:
        if spec.slotted:
            raise ValueError("this merge spec refers to literal slots: pass them")
        slots = ()
    rows = Rows(columns, list(results))
    return merge_rows(merge_tree(spec, Given(rows)), rows, slots, max_rows)
