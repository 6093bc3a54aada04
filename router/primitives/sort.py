"""ORDER BY across shards: row keys, a k-way merge of sorted shard streams, a bounded top-n.

MySQL puts NULL first in ascending order and last in descending order; a key component is
``(0,)`` for NULL and ``(1, value)`` otherwise, wrapped in `Desc` for descending keys.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from router.primitives.values import order_key
from router.rows.columns import ColumnDefinition

Row = list[bytes | None]
RowKey = Callable[[Row], tuple]


class Desc:
    """A key component that sorts in reverse."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Desc) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def row_key(columns: Sequence[ColumnDefinition], keys: Sequence[tuple[int, bool]]) -> RowKey:
    """The sort key of a row for ``keys`` = (column index, descending) pairs."""
    parts = [(index, order_key(columns[index]), desc) for index, desc in keys]

    def key(row: Row) -> tuple:
        out = []
        for index, decode, desc in parts:
            raw = row[index]
            value = (0,) if raw is None else (1, decode(raw))
            out.append(Desc(value) if desc else value)
        return tuple(out)

    return key


def kway_merge(streams: Iterable[Iterable[Row]], key: RowKey) -> Iterator[Row]:
    """Merge shard streams already sorted by ``key``; holds one row per stream."""
    return heapq.merge(*streams, key=key)


def top_n(rows: Iterable[Row], key: RowKey, n: int | None) -> list[Row]:
    """The first ``n`` rows in ``key`` order (all when ``n`` is None); a heap of ``n`` rows
    when bounded. Stable: ties keep their input order."""
    if n is None:
        return sorted(rows, key=key)
    return heapq.nsmallest(n, rows, key=key)
