"""Scatter-gather results merged into what one unsharded server would return.

`merge` is sans-IO and runs on every execution of a scatter: it takes the column definitions
the shards sent for ``ScatterPlan.shard_sql`` and one list of text rows per shard, and returns
the client's column definitions and rows. Everything it needs is in a `MergeSpec` (built once
per statement shape by `router.rewrite.plan_scatter`): plain ints, strings and tuples, no
sqlglot nodes. The pipeline, as in the Vitess engine's primitives:

    aggregate (GROUP BY / partial aggregates) -> HAVING -> DISTINCT -> ORDER BY -> LIMIT -> project

Without aggregation the shard streams are already sorted by ORDER BY, so they are k-way
merged and nothing but DISTINCT's seen-set is held. With aggregation every group is held
(bounded by ``max_rows``) and sorted in memory, with a heap of offset+limit rows under LIMIT.

Column references are shard column indexes; negative ones count from the end (hidden
columns, which the rewrite appends after the client's, including after a ``*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain, islice

from router.primitives import aggregate as agg
from router.primitives.errors import MergeTooLarge, ScatterUnsupported
from router.primitives.having import compile_predicate
from router.primitives.sort import Row, kway_merge, row_key, top_n
from router.primitives.values import literal_value, value_key
from router.rows.columns import ColumnDefinition

__all__ = ["Aggregate", "MergeSpec", "MergeTooLarge", "ScatterUnsupported", "SlotRef",
           "SortKey", "merge"]


@dataclass(frozen=True, slots=True)
class SlotRef:
    """A value taken from literal slot ``slot`` of the statement at execution (the planner
    parses the fingerprint key, where literals are ``:_N``): a LIMIT/OFFSET count, or an
    ORDER BY/GROUP BY position (``ORDER BY 2``), which is a constant, not a position, when the
    literal is not an integer."""

    slot: int


Ref = int | SlotRef


@dataclass(frozen=True, slots=True)
class SortKey:
    column: Ref
    desc: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate to merge: its final value goes to shard column ``column``, computed from
    the partials in ``args`` (count/sum/min/max: the column itself; avg: the hidden SUM and
    COUNT; *_distinct: the hidden argument columns the shards grouped by)."""

    kind: str
    column: int
    args: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MergeSpec:
    """How to merge one scatter's results. Hashable and picklable.

    - ``hidden``: trailing shard columns dropped from the client's rows;
    - ``aggregated``: shard rows are partial aggregates to re-group by ``group_by``;
      ``grouped`` is False for aggregates without GROUP BY (exactly one row comes out);
    - ``having``: a predicate (see `router.primitives.having`) applied after the merge;
    - ``distinct``: deduplicate the client's columns (collation-aware);
    - ``order``: the final order (for GROUP BY without ORDER BY, MariaDB's implicit order by
      the group keys); ``presorted`` when shard streams arrive in that order (k-way merge);
    - ``limit``/``offset``: applied last;
    - ``names``: (column, parts) renaming client columns to the text the client wrote
      (parts are text or slot numbers);
    - ``slotted``: some field is a `SlotRef` or a ``("slot", n)`` node: `bind` before use.
    """

    hidden: int = 0
    aggregated: bool = False
    grouped: bool = False
    group_by: tuple[Ref, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    having: tuple | None = None
    distinct: bool = False
    order: tuple[SortKey, ...] = ()
    presorted: bool = False
    limit: Ref | None = None
    offset: Ref = 0
    names: tuple[tuple[int, tuple[str | int, ...]], ...] = ()
    slotted: bool = False

    def bind(self, slots: Sequence[Sequence[bytes]]) -> MergeSpec:
        """This spec with every slot reference replaced by the execution's literal."""
        if not self.slotted:
            return self

        def position(ref: Ref) -> int | None:
            if not isinstance(ref, SlotRef):
                return ref
            value = literal_value(slots[ref.slot][0])
            return value - 1 if isinstance(value, int) and value >= 1 else None

        group_by = tuple(c for c in map(position, self.group_by) if c is not None)
        order = tuple(SortKey(c, k.desc) for k in self.order
                      if (c := position(k.column)) is not None)
        names = tuple((i, ("".join(p if isinstance(p, str) else b", ".join(slots[p]).decode(
            "utf-8", "surrogateescape") for p in parts),)) for i, parts in self.names)
        having = None if self.having is None else _bind_predicate(self.having, slots)
        return replace(self, group_by=group_by, order=order, names=names, having=having,
                       limit=slot_int(self.limit, slots), offset=slot_int(self.offset, slots),
                       slotted=False)


def slot_int(ref: Ref | None, slots: Sequence[Sequence[bytes]]) -> int | None:
    """A LIMIT/OFFSET count: the int itself, or the integer literal in its slot."""
    if not isinstance(ref, SlotRef):
        return ref
    value = literal_value(slots[ref.slot][0])
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"LIMIT/OFFSET literal {slots[ref.slot][0]!r} is not a count")
    return value


def _bind_predicate(node: tuple, slots: Sequence[Sequence[bytes]]) -> tuple:
    op = node[0]
    if op == "slot":
        return ("lit", literal_value(slots[node[1]][0]))
    if op in ("col", "lit"):
        return node
    if op == "in":
        items: list[tuple] = []
        for item in node[2]:
            if item[0] == "slots":
                items.extend(("lit", literal_value(v)) for v in slots[item[1]])
            else:
                items.append(_bind_predicate(item, slots))
        return ("in", _bind_predicate(node[1], slots), tuple(items))
    return tuple(_bind_predicate(x, slots) if isinstance(x, tuple) else x for x in node)


def merge(spec: MergeSpec, columns: list[ColumnDefinition],
          results: list[list[list[bytes | None]]], max_rows: int,
          slots: Sequence[Sequence[bytes]] | None = None,
          ) -> tuple[list[ColumnDefinition], list[list[bytes | None]]]:
    """The client's column definitions and rows for one scatter execution.

    ``slots`` are the statement's literal slots, needed when ``spec.slotted``. Raises
    `MergeTooLarge` when groups plus distinct values held pass ``max_rows``, and
    `ScatterUnsupported` for an ORDER BY on an ENUM/SET column."""
    if spec.slotted:
        if slots is None:
            raise ValueError("this merge spec refers to literal slots: pass them")
        spec = spec.bind(slots)
    visible = len(columns) - spec.hidden
    rows = _aggregated(spec, columns, results, max_rows) if spec.aggregated else _streamed(
        spec, columns, results, max_rows)
    out = [row[:visible] for row in rows] if spec.hidden else list(rows)
    return _client_columns(spec, columns[:visible]), out


def _streamed(spec: MergeSpec, columns: list[ColumnDefinition],
              results: list[list[Row]], max_rows: int) -> Iterator[Row]:
    """Rows without aggregation: concatenated or k-way merged, deduplicated, sliced."""
    rows: Iterator[Row]
    if spec.order:
        rows = kway_merge(results, row_key(columns, _keys(spec.order)))
    else:
        rows = chain.from_iterable(results)
    if spec.distinct:
        rows = _distinct(rows, columns[:len(columns) - spec.hidden], max_rows)
    offset = int(spec.offset)  # type: ignore[arg-type]
    end = None if spec.limit is None else offset + int(spec.limit)  # type: ignore[arg-type]
    return islice(rows, offset, end)


def _aggregated(spec: MergeSpec, columns: list[ColumnDefinition],
                results: list[list[Row]], max_rows: int) -> list[Row]:
    """Rows with aggregation: re-grouped, filtered by HAVING, deduplicated, sorted, sliced."""
    width = len(columns)
    group_by = [int(i) for i in spec.group_by]  # type: ignore[arg-type]
    used = {i % width for a in spec.aggregates for i in (a.column, *a.args)}
    used.update(i % width for i in group_by)  # a group's key columns are set by its first row
    fill = [i for i in range(width) if i not in used]
    grouper = agg.Grouper(columns, group_by, [_factory(a, columns) for a in spec.aggregates],
                          fill, max_rows)
    rows = agg.merge_groups(chain.from_iterable(results), grouper,
                            [a.column for a in spec.aggregates], width, not spec.grouped)
    if spec.having is not None:
        test = compile_predicate(spec.having, columns)
        rows = [row for row in rows if test(row)]
    if spec.distinct:
        rows = list(_distinct(rows, columns[:width - spec.hidden], max_rows))
    offset = int(spec.offset)  # type: ignore[arg-type]
    end = None if spec.limit is None else offset + int(spec.limit)  # type: ignore[arg-type]
    if spec.order:
        rows = top_n(rows, row_key(columns, _keys(spec.order)), end)
    return rows[offset:end]


def _factory(a: Aggregate, columns: list[ColumnDefinition]) -> agg.Factory:
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


def _keys(order: Iterable[SortKey]) -> list[tuple[int, bool]]:
    return [(int(k.column), k.desc) for k in order]  # type: ignore[arg-type]


def _distinct(rows: Iterable[Row], visible: Sequence[ColumnDefinition],
              max_rows: int) -> Iterator[Row]:
    """The first row of each distinct value of the visible columns (collation-aware)."""
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


def _client_columns(spec: MergeSpec, visible: list[ColumnDefinition]) -> list[ColumnDefinition]:
    if not spec.names:
        return visible
    out = list(visible)
    for index, parts in spec.names:
        name = "".join(str(p) for p in parts).encode("utf-8", "surrogateescape")
        out[index] = replace(out[index], name=name)
    return out
