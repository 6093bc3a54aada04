"""The merge on hand-built shard results: sort, limit, aggregates, groups, DISTINCT, bounds."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine.build import merge_results as merge
from router.engine.spec import Aggregate, MergeSpec, SlotRef, SortKey
from router.primitives.errors import MergeTooLarge, ScatterUnsupported
from router.rows.types import ColumnFlag, ColumnType
from tests.router.helpers import b, col, count, decimal, double, text


def test_plain_scatter_concatenates_and_drops_nothing() -> None:
    cols = [col("id"), text("g")]
    columns, rows = merge(MergeSpec(), cols, [[b(1, "a")], [], [b(2, None)]], max_rows=1)
    assert columns == cols
    assert rows == [b(1, "a"), b(2, None)]


def test_order_by_merges_sorted_streams_nulls_first_ascending() -> None:
    spec = MergeSpec(order=(SortKey(0), SortKey(1, desc=True)), presorted=True)
    shards = [[b(None, 5), b(1, 9), b(3, 1)], [b(None, 7), b(1, 10), b(2, 0)]]
    _, rows = merge(spec, [col("k"), col("id")], shards, max_rows=1)
    assert rows == [b(None, 7), b(None, 5), b(1, 10), b(1, 9), b(2, 0), b(3, 1)]


def test_order_by_descending_puts_nulls_last_and_limit_offset_apply_after() -> None:
    spec = MergeSpec(order=(SortKey(0, desc=True),), presorted=True, limit=2, offset=1)
    shards = [[b(9), b(4), b(None)], [b(7), b(None)]]
    _, rows = merge(spec, [col("k")], shards, max_rows=1)
    assert rows == [b(7), b(4)]


def test_hidden_order_columns_are_dropped() -> None:
    spec = MergeSpec(hidden=1, order=(SortKey(-1),), presorted=True)
    columns, rows = merge(spec, [col("id"), col("_dal_h0")],
                          [[b(1, 5), b(2, 8)], [b(3, 6)]], max_rows=1)
    assert [c.name for c in columns] == [b"id"]
    assert rows == [b(1), b(3), b(2)]


def test_strings_sort_by_collation() -> None:
    spec = MergeSpec(order=(SortKey(0),), presorted=True)
    _, rows = merge(spec, [text("g")], [[b("a"), b("C")], [b("B"), b("é"), b("f")]],
                    max_rows=1)
    assert rows == [b("a"), b("B"), b("C"), b("é"), b("f")]
    _, rows = merge(spec, [text("g", binary_collation=True)], [[b("B"), b("a")], [b("C")]],
                    max_rows=1)
    assert rows == [b("B"), b("C"), b("a")]


rows_strategy = st.lists(st.tuples(st.one_of(st.none(), st.integers(-5, 5)),
                                   st.integers(0, 10**6)), max_size=60)


@given(rows_strategy, st.integers(1, 6), st.booleans(), st.integers(0, 70),
       st.one_of(st.none(), st.integers(0, 70)))
@settings(max_examples=200)
def test_kway_merge_equals_one_sorted_list(values: list[tuple[int | None, int]], shards: int,
                                           desc: bool, offset: int, limit: int | None) -> None:
    def key(row: tuple[int | None, int]) -> tuple:
        k = (0,) if row[0] is None else (1, row[0])
        return (k, row[1])

    ordered = sorted(values, key=key, reverse=desc)
    split: list[list[list[bytes | None]]] = [[] for _ in range(shards)]
    for row in ordered:
        split[random.Random(row[1]).randrange(shards)].append(b(*row))
    spec = MergeSpec(order=(SortKey(0, desc), SortKey(1, desc)), presorted=True,
                     limit=limit, offset=offset)
    _, rows = merge(spec, [col("k"), col("id")], split, max_rows=1)
    end = None if limit is None else offset + limit
    assert rows == [b(*r) for r in ordered[offset:end]]


def _aggregates_spec(**changes: object) -> MergeSpec:
    return MergeSpec(aggregated=True, aggregates=(
        Aggregate("count", 0, (0,)), Aggregate("sum", 1, (1,)), Aggregate("min", 2, (2,)),
        Aggregate("max", 3, (3,)), Aggregate("avg", 4, (5, 6))), hidden=2, **changes)  # type: ignore[arg-type]


AGG_COLUMNS = [count(), decimal("SUM(k)", 0), col("MIN(k)"), col("MAX(k)"),
               decimal("AVG(k)", 4, 16), decimal("_dal_h0", 0), count("_dal_h1")]


def test_partial_aggregates_merge() -> None:
    shards = [[b(3, 6, 1, 3, "2.0000", 6, 3)], [b(0, None, None, None, None, None, 0)],
              [b(2, -1, -4, 3, "-0.5000", -1, 2)]]
    columns, rows = merge(_aggregates_spec(), AGG_COLUMNS, shards, max_rows=10)
    assert [c.name for c in columns] == [b"COUNT(*)", b"SUM(k)", b"MIN(k)", b"MAX(k)", b"AVG(k)"]
    assert rows == [b(5, 5, -4, 3, "1.0000")]


def test_aggregates_of_no_rows_are_null_and_zero() -> None:
    shards = [[b(0, None, None, None, None, None, 0)]] * 3
    _, rows = merge(_aggregates_spec(), AGG_COLUMNS, shards, max_rows=10)
    assert rows == [b(0, None, None, None, None)]
    _, rows = merge(_aggregates_spec(), AGG_COLUMNS, [[], []], max_rows=10)
    assert rows == [b(0, None, None, None, None)]


def test_decimal_and_double_sums_print_as_mariadb() -> None:
    spec = MergeSpec(aggregated=True, hidden=3, aggregates=(
        Aggregate("sum", 0, (0,)), Aggregate("avg", 1, (-2, -1)), Aggregate("sum", 2, (2,)),
        Aggregate("avg", 3, (2, 4))))
    columns = [decimal("SUM(price)", 2, 36), decimal("AVG(price)", 6, 18), double("SUM(f)"),
               double("AVG(f)"), count("_dal_h2"), decimal("_dal_h0", 2, 36), count("_dal_h1")]
    shards = [[b("1.25", "1.250000", "1e20", "1e20", 1, "1.25", 1)],
              [b("11.05", "5.525000", "0.5", "0.5", 1, "11.05", 2)]]
    _, rows = merge(spec, columns, shards, max_rows=10)
    assert rows == [b("12.30", "4.100000", "1e20", "5e19")]


def test_group_by_merges_groups_case_insensitively_in_key_order() -> None:
    spec = MergeSpec(aggregated=True, grouped=True, group_by=(0,),
                     aggregates=(Aggregate("count", 1, (1,)),), order=(SortKey(0),))
    shards = [[b(None, 1), b("abc", 2), b("b", 1)], [b("ABC", 3), b("B ", 4), b("a", 1)]]
    _, rows = merge(spec, [text("g"), count()], shards, max_rows=10)
    assert rows == [b(None, 1), b("a", 1), b("abc", 5), b("b", 5)]


def test_indeterminate_columns_take_a_non_null_value() -> None:
    spec = MergeSpec(aggregated=True, aggregates=(Aggregate("count", 1, (1,)),))
    shards = [[b(None, 0)], [b(7, 3)], [b(9, 1)]]
    _, rows = merge(spec, [col("id"), count()], shards, max_rows=10)
    assert rows == [b(7, 4)]


def test_count_distinct_counts_values_the_shards_grouped_by() -> None:
    spec = MergeSpec(aggregated=True, grouped=True, group_by=(0,), hidden=1,
                     aggregates=(Aggregate("count_distinct", 1, (-1,)),), order=(SortKey(0),))
    columns = [col("k"), count("COUNT(DISTINCT g)"), text("_dal_h0")]
    shards = [[b(1, 1, "x"), b(1, 1, "Y"), b(2, 0, None)], [b(1, 1, "X"), b(1, 1, "z")]]
    _, rows = merge(spec, columns, shards, max_rows=10)
    assert rows == [b(1, 3), b(2, 0)]


def test_having_filters_merged_groups_with_slots() -> None:
    spec = MergeSpec(aggregated=True, grouped=True, group_by=(0,),
                     aggregates=(Aggregate("count", 1, (1,)),), order=(SortKey(1, True),),
                     having=("cmp", ">", ("col", 1), ("slot", 0)), limit=SlotRef(1),
                     slotted=True)
    shards = [[b(1, 2), b(2, 1), b(3, 4)], [b(1, 2), b(2, 1)]]
    _, rows = merge(spec, [col("k"), count()], shards, max_rows=10, slots=[[b"2"], [b"5"]])
    assert rows == [b(1, 4), b(3, 4)]
    with pytest.raises(ValueError, match="slots"):
        merge(spec, [col("k"), count()], shards, max_rows=10)


def test_distinct_is_collation_aware() -> None:
    spec = MergeSpec(distinct=True)
    _, rows = merge(spec, [text("g"), col("k")],
                    [[b("a", 1), b("é", None)], [b("A", 1), b("e", None), b("a", 2)]],
                    max_rows=10)
    assert rows == [b("a", 1), b("é", None), b("a", 2)]


def test_distinct_limit_stops_early() -> None:
    spec = MergeSpec(distinct=True, order=(SortKey(0),), presorted=True, limit=2)
    _, rows = merge(spec, [col("k")], [[b(1), b(2), b(3)], [b(1), b(2), b(4)]], max_rows=3)
    assert rows == [b(1), b(2)]


def test_held_rows_are_bounded() -> None:
    groups = MergeSpec(aggregated=True, grouped=True, group_by=(0,),
                       aggregates=(Aggregate("count", 1, (1,)),))
    shards = [[b(i, 1) for i in range(5)], [b(i, 1) for i in range(5, 10)]]
    assert len(merge(groups, [col("k"), count()], shards, max_rows=10)[1]) == 10
    with pytest.raises(MergeTooLarge):
        merge(groups, [col("k"), count()], shards, max_rows=9)
    with pytest.raises(MergeTooLarge):
        merge(MergeSpec(distinct=True), [col("k")], [[b(i)] for i in range(5)], max_rows=4)
    streamed = merge(MergeSpec(order=(SortKey(0),), presorted=True), [col("k")],
                     [[b(i)] for i in range(50)], max_rows=1)
    assert len(streamed[1]) == 50


def test_enum_order_is_refused_at_merge() -> None:
    enum = col("e", ColumnType.STRING, charset=45, flags=ColumnFlag.ENUM)
    with pytest.raises(ScatterUnsupported):
        merge(MergeSpec(order=(SortKey(0),), presorted=True), [enum], [[b("a")]], max_rows=1)


def test_names_are_restored_and_bound_from_slots() -> None:
    spec = MergeSpec(names=((0, ("k+", 0)),), slotted=True)
    columns, _ = merge(spec, [col("k + 1")], [[b(2)]], max_rows=1, slots=[[b"1"]])
    assert columns[0].name == b"k+1"


def test_specs_are_hashable_and_picklable() -> None:
    spec = _aggregates_spec(having=("cmp", ">", ("col", 0), ("lit", 1)), order=(SortKey(0),))
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert hash(spec) == hash(pickle.loads(pickle.dumps(spec)))
