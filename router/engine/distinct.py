"""`Distinct`: the first row of each distinct value of the client's columns (collation-aware),
holding at most ``max_rows`` values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from router.engine.base import Row, RowPrimitive, Rows, Slots
from router.engine.merging import Merge, Step, one_stream
from router.primitives.errors import MergeTooLarge
from router.primitives.values import value_key
from router.rows.columns import ColumnDefinition


class Distinct(Merge):
    """SELECT DISTINCT across shards; ``hidden`` trailing columns do not count."""

    def __init__(self, source: RowPrimitive, hidden: int) -> None:
        super().__init__(source)
        self.hidden = hidden

    def describe(self, slots: Slots | None = None) -> str:
        return "Distinct on the client's columns (collation-aware)"

    def step(self, slots: Slots) -> Step:
        hidden = self.hidden

        def run(rows: Rows, max_rows: int) -> Rows:
            columns = rows.columns
            visible = columns[:len(columns) - hidden]
            return Rows(columns, [distinct(one_stream(rows), visible, max_rows)])

        return run


def distinct(rows: Iterable[Row], visible: Sequence[ColumnDefinition],
             max_rows: int) -> Iterator[Row]:
    """The first row of each distinct value of the visible columns, lazily."""
    keys = [value_key(col) for col in visible]
    seen: set[tuple] = set()
    for row in rows:
        key = tuple(None if raw is None else k(raw) for k, raw in zip(keys, row, strict=False))
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > max_rows:
            raise MergeTooLarge(f"SELECT DISTINCT holds more than {max_rows} distinct rows; "
                                "add a shard key, a narrower WHERE or a LIMIT")
        yield row
