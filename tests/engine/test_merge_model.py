"""The merge primitives against a simple model: random shard results and merge specs.

The model is plain Python over integers: concatenate the shards, fold partial aggregates by
group, filter, deduplicate, sort stably (NULL first ascending, last descending), slice, drop
hidden columns. Shard streams of a plain read are sorted by the ORDER BY, as shards send them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine.build import merge_results
from router.engine.spec import Aggregate, MergeSpec, SlotRef, SortKey
from tests.router.helpers import b, col, count, decimal

Value = int | None
ModelRow = list[Value]

ints = st.one_of(st.none(), st.integers(-4, 4))


def sort_key(order: list[tuple[int, bool]]) -> Any:
    def key(row: ModelRow) -> tuple:
        out = []
        for index, desc in order:
            v = row[index]
            if desc:
                out.append((1,) if v is None else (0, -v))
            else:
                out.append((0,) if v is None else (1, v))
        return tuple(out)
    return key


@st.composite
def bounds(draw: st.DrawFn, slots: list[list[bytes]]) -> tuple[Any, Any]:
    """A LIMIT and OFFSET, each a number or a literal slot."""
    def ref(value: int) -> int | SlotRef:
        if draw(st.booleans()):
            slots.append([str(value).encode()])
            return SlotRef(len(slots) - 1)
        return value
    limit = draw(st.one_of(st.none(), st.integers(0, 12)))
    offset = draw(st.integers(0, 5))
    return (None if limit is None else ref(limit)), ref(offset)


def order_refs(draw: st.DrawFn, width: int, slots: list[list[bytes]],
               ) -> tuple[tuple[SortKey, ...], list[tuple[int, bool]]]:
    """ORDER BY keys (some as ``ORDER BY n`` literals) and the model's (column, desc) pairs."""
    keys, model = [], []
    for index in draw(st.lists(st.integers(0, width - 1), max_size=3, unique=True)):
        desc = draw(st.booleans())
        if draw(st.booleans()):
            slots.append([str(index + 1).encode()])
            keys.append(SortKey(SlotRef(len(slots) - 1), desc))
        else:
            keys.append(SortKey(index, desc))
        model.append((index, desc))
    return tuple(keys), model


def finish(rows: list[ModelRow], order: list[tuple[int, bool]], distinct: bool, visible: int,
           limit: int | None, offset: int, sort_first: bool) -> list[ModelRow]:
    """Sort/deduplicate (in the order the merge does), slice, project."""
    def dedupe(rows: list[ModelRow]) -> list[ModelRow]:
        seen: set[tuple] = set()
        out = []
        for row in rows:
            if tuple(row[:visible]) not in seen:
                seen.add(tuple(row[:visible]))
                out.append(row)
        return out
    if sort_first and order:
        rows = sorted(rows, key=sort_key(order))
    if distinct:
        rows = dedupe(rows)
    if not sort_first and order:
        rows = sorted(rows, key=sort_key(order))
    end = None if limit is None else offset + limit
    return [row[:visible] for row in rows[offset:end]]


@st.composite
def plain_case(draw: st.DrawFn) -> tuple:
    slots: list[list[bytes]] = []
    hidden = draw(st.integers(0, 1))
    order, model_order = order_refs(draw, 3, slots)
    limit, offset = draw(bounds(slots))
    distinct = draw(st.booleans())
    shards = draw(st.lists(st.lists(st.tuples(ints, ints), max_size=8), min_size=1, max_size=4))
    serial = iter(range(1000))
    results = [sorted(([k1, k2, next(serial)] for k1, k2 in shard), key=sort_key(model_order))
               for shard in shards]
    spec = MergeSpec(hidden=hidden, distinct=distinct, order=order, presorted=bool(order),
                     limit=limit, offset=offset, slotted=bool(slots))
    columns = [col("k1"), col("k2"), col("id")]
    bound_limit = None if limit is None else _value(limit, slots)
    expected = finish([row for shard in results for row in shard], model_order, distinct,
                      3 - hidden, bound_limit, _value(offset, slots), sort_first=True)
    return spec, columns, [[b(*row) for row in shard] for shard in results], slots, expected


@st.composite
def aggregated_case(draw: st.DrawFn) -> tuple:
    """Partial aggregates per (shard, group): g, COUNT, SUM, MIN, MAX."""
    slots: list[list[bytes]] = []
    hidden = draw(st.integers(0, 1))
    order, model_order = order_refs(draw, 5 - hidden, slots)
    limit, offset = draw(bounds(slots))
    distinct = draw(st.booleans())
    threshold = draw(st.one_of(st.none(), st.integers(0, 6)))
    shards = []
    for groups in draw(st.lists(st.lists(ints, unique=True, max_size=5), min_size=1,
                                max_size=4)):
        rows = []
        for g in groups:
            values = draw(st.lists(ints, min_size=1, max_size=4))
            present = [v for v in values if v is not None]
            rows.append([g, len(present), sum(present) if present else None,
                         min(present) if present else None, max(present) if present else None])
        shards.append(rows)
    merged: dict[Value, ModelRow] = {}
    for shard in shards:
        for g, n, s, lo, hi in shard:
            row = merged.setdefault(g, [g, 0, None, None, None])
            row[1] += n
            if s is not None:
                row[2] = s if row[2] is None else row[2] + s
                row[3] = lo if row[3] is None else min(row[3], lo)
                row[4] = hi if row[4] is None else max(row[4], hi)
    rows = [row for row in merged.values() if threshold is None or row[1] > threshold]
    expected = finish(rows, model_order, distinct, 5 - hidden,
                      None if limit is None else _value(limit, slots), _value(offset, slots),
                      sort_first=False)
    having = None if threshold is None else ("cmp", ">", ("col", 1), ("lit", threshold))
    spec = MergeSpec(hidden=hidden, aggregated=True, grouped=True, group_by=(0,),
                     aggregates=(Aggregate("count", 1, (1,)), Aggregate("sum", 2, (2,)),
                                 Aggregate("min", 3, (3,)), Aggregate("max", 4, (4,))),
                     having=having, distinct=distinct, order=order, limit=limit, offset=offset,
                     slotted=bool(slots))
    columns = [col("g"), count(), decimal("SUM(v)", 0), col("MIN(v)"), col("MAX(v)")]
    return spec, columns, [[b(*row) for row in shard] for shard in shards], slots, expected


def _value(ref: int | SlotRef, slots: list[list[bytes]]) -> int:
    return int(slots[ref.slot][0]) if isinstance(ref, SlotRef) else ref


@given(st.one_of(plain_case(), aggregated_case()))
@settings(max_examples=400, deadline=None)
def test_the_tree_merges_as_the_model(case: tuple) -> None:
    spec, columns, results, slots, expected = case
    out_columns, rows = merge_results(spec, columns, results, 10_000, slots)
    assert rows == [b(*row) for row in expected]
    assert [c.name for c in out_columns] == [c.name for c in columns[:len(columns) - spec.hidden]]
