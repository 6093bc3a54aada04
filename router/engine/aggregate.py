"""`Aggregate`: partial aggregates from every shard re-grouped, then HAVING.

Shards return one row per (shard, group); the rows of a group fold together in a hash table
(`router.primitives.aggregate`), bounded by ``max_rows`` groups plus distinct values held.
Without GROUP BY exactly one row comes out, even from no rows. HAVING runs on merged groups.
"""

from __future__ import annotations

from router.engine import describe, spec
from router.engine.base import RowPrimitive, Rows, Slots
from router.engine.merging import Merge, Step, one_stream
from router.primitives import aggregate as agg
from router.primitives.having import compile_predicate
from router.rows.columns import ColumnDefinition


class Aggregate(Merge):
    """GROUP BY / aggregates without GROUP BY, merged across shards; HAVING after."""

    def __init__(self, source: RowPrimitive, group_by: tuple[spec.Ref, ...],
                 aggregates: tuple[spec.Aggregate, ...], grouped: bool, having: tuple | None,
                 slotted: bool) -> None:
        super().__init__(source)
        self.group_by = group_by
        self.aggregates = aggregates
        self.grouped = grouped
        self.having = having
        self.slotted = slotted

    def describe(self, slots: Slots | None = None) -> str:
        merged = ", ".join(f"{a.kind.upper()} into {describe.column(a.column)}"
                           for a in self.aggregates) or "no aggregate"
        text = f"Aggregate {merged}"
        if self.grouped:
            text += " group by " + ", ".join(describe.ref(r, slots) for r in self.group_by)
        if self.having is not None:
            text += " having " + describe.predicate(self.having, slots)
        return text

    def step(self, slots: Slots) -> Step:
        group_by = spec.bind_positions(self.group_by, slots) if self.slotted else self.group_by
        having = self.having
        if self.slotted and having is not None:
            having = spec.bind_predicate(having, slots)
        keys = [int(i) for i in group_by]
        aggregates = self.aggregates
        implicit = not self.grouped

        def run(rows: Rows, max_rows: int) -> Rows:
            columns = rows.columns
            width = len(columns)
            used = {i % width for a in aggregates for i in (a.column, *a.args)}
            used.update(i % width for i in keys)  # a group's key columns are set by its first row
            fill = [i for i in range(width) if i not in used]
            grouper = agg.Grouper(columns, keys, [_factory(a, columns) for a in aggregates],
                                  fill, max_rows)
            out = agg.merge_groups(one_stream(rows), grouper, [a.column for a in aggregates],
                                   width, implicit)
            if having is not None:
                test = compile_predicate(having, columns)
                out = [row for row in out if test(row)]
            return Rows(columns, [out])

        return run


def _factory(a: spec.Aggregate, columns: list[ColumnDefinition]) -> agg.Factory:
    """A constructor of one group's accumulator for aggregate ``a``."""
    target = columns[a.column]
    first = a.args[0]
    if a.kind == agg.COUNT:
        return lambda: agg.Count(first)
    if a.kind == agg.SUM:
        return lambda: agg.Sum(first, columns[first], target)
    if a.kind in (agg.MIN, agg.MAX):
        greatest = a.kind == agg.MAX
        return lambda: agg.Extreme(first, columns[first], greatest)
    if a.kind == agg.AVG:
        count = a.args[1]
        return lambda: agg.Average(first, count, columns[first], target)
    if a.kind in agg.DISTINCT_KINDS:
        return lambda: agg.DistinctValues(a.kind, a.args, columns, target)
    raise ValueError(f"unknown aggregate kind {a.kind!r}")
