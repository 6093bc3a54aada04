"""`MergeSort`: ORDER BY across shards.

Shard streams that arrive sorted (a plain read, ORDER BY pushed to every shard) are k-way
merged, holding one row per stream. Aggregated rows are sorted in memory, with a heap of
offset + limit rows when a LIMIT bounds them. MySQL's order: NULL first ascending, last
descending (`router.primitives.sort`).
"""

from __future__ import annotations

from router.engine import describe, spec
from router.engine.base import RowPrimitive, Rows, Slots
from router.engine.merging import Merge, Step, one_stream
from router.primitives.sort import kway_merge, row_key, top_n


class MergeSort(Merge):
    """Order rows by ``order``: k-way (``presorted`` inputs) or in memory (top-n under the
    ``limit``/``offset`` that follow)."""

    def __init__(self, source: RowPrimitive, order: tuple[spec.SortKey, ...], presorted: bool,
                 limit: spec.Ref | None = None, offset: spec.Ref = 0,
                 slotted: bool = False) -> None:
        super().__init__(source)
        self.order = order
        self.presorted = presorted
        self.limit = limit
        self.offset = offset
        self.slotted = slotted

    def describe(self, slots: Slots | None = None) -> str:
        keys = ", ".join(describe.ref(k.column, slots) + (" DESC" if k.desc else "")
                         for k in self.order)
        if self.presorted:
            return f"MergeSort k-way by {keys} (every shard sends its rows sorted)"
        bound = ""
        if self.limit is not None:
            bound = (f", keeping the top {describe.count(self.limit, slots)}"
                     f" + {describe.count(self.offset, slots)}")
        return f"MergeSort in memory by {keys}{bound}"

    def step(self, slots: Slots) -> Step:
        order = spec.bind_order(self.order, slots) if self.slotted else self.order
        keys = [(int(k.column), k.desc) for k in order]
        if self.presorted:
            def run(rows: Rows, max_rows: int) -> Rows:
                if not keys:
                    return rows
                return Rows(rows.columns, [kway_merge(rows.parts, row_key(rows.columns, keys))])
            return run
        offset = int(spec.slot_int(self.offset, slots))  # type: ignore[arg-type]
        limit = spec.slot_int(self.limit, slots)
        end = None if limit is None else offset + limit

        def in_memory(rows: Rows, max_rows: int) -> Rows:
            if not keys:
                return rows
            held = list(one_stream(rows))
            return Rows(rows.columns, [top_n(held, row_key(rows.columns, keys), end)])

        return in_memory
