"""`Limit`: LIMIT/OFFSET after the merge; reading stops once ``offset + limit`` rows passed."""

from __future__ import annotations

from itertools import islice

from router.engine import describe, spec
from router.engine.base import RowPrimitive, Rows, Slots
from router.engine.merging import Merge, Step, one_stream


class Limit(Merge):
    """The client's LIMIT (``None``: none) and OFFSET, either a number or a literal slot."""

    def __init__(self, source: RowPrimitive, limit: spec.Ref | None, offset: spec.Ref) -> None:
        super().__init__(source)
        self.limit = limit
        self.offset = offset

    def describe(self, slots: Slots | None = None) -> str:
        return (f"Limit {describe.count(self.limit, slots)} "
                f"offset {describe.count(self.offset, slots)}")

    def step(self, slots: Slots) -> Step:
        limit = spec.slot_int(self.limit, slots)
        offset = int(spec.slot_int(self.offset, slots))  # type: ignore[arg-type]
        end = None if limit is None else offset + limit

        def run(rows: Rows, max_rows: int) -> Rows:
            return Rows(rows.columns, [islice(one_stream(rows), offset, end)])

        return run
