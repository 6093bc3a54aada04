"""GROUP BY across shards: partial aggregates from every shard re-grouped in a hash table.

Shards return one row per (shard, group) with partial aggregates; rows of the same group (by
the collation-aware keys of `values`) fold together: COUNT is the sum of counts, SUM the sum
(NULL when every partial is NULL), MIN/MAX the least/greatest partial (its bytes kept as the
shard printed them), AVG the merged SUM divided by the merged COUNT, and the DISTINCT
aggregates the distinct non-NULL argument values the shards grouped by. Other columns (group
keys, and columns MySQL leaves indeterminate) keep the first non-NULL value seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from router.primitives.errors import MergeTooLarge
from router.primitives.values import (
    DECIMAL_CONTEXT,
    DECIMAL_TYPES,
    FLOAT_TYPES,
    divide_decimal,
    format_decimal,
    format_double,
    number,
    value_key,
)
from router.rows.columns import ColumnDefinition
from router.rows.types import ColumnType

Row = list[bytes | None]
Number = int | Decimal | float

COUNT, SUM, MIN, MAX, AVG = "count", "sum", "min", "max", "avg"
COUNT_DISTINCT, SUM_DISTINCT, AVG_DISTINCT = "count_distinct", "sum_distinct", "avg_distinct"
DISTINCT_KINDS = frozenset({COUNT_DISTINCT, SUM_DISTINCT, AVG_DISTINCT})


class Accumulator:
    """One aggregate of one group."""

    __slots__ = ()

    def add(self, row: Row) -> int:
        """Fold a shard row in; returns how many values it newly holds (distinct sets)."""
        raise NotImplementedError

    def result(self) -> bytes | None:
        raise NotImplementedError


class Count(Accumulator):
    __slots__ = ("index", "total")

    def __init__(self, index: int) -> None:
        self.index = index
        self.total = 0

    def add(self, row: Row) -> int:
        raw = row[self.index]
        if raw is not None:
            self.total += int(raw)
        return 0

    def result(self) -> bytes | None:
        return str(self.total).encode("ascii")


class Sum(Accumulator):
    """SUM of partial sums. DECIMAL partials, printed with exactly their column's scale, are
    added as scaled ints (a Decimal only if a value breaks that shape)."""

    __slots__ = ("decode", "index", "scale", "target", "total")

    def __init__(self, index: int, partial: ColumnDefinition, target: ColumnDefinition) -> None:
        self.index = index
        self.decode = number(partial)
        self.scale: int | None = partial.decimals if partial.type in DECIMAL_TYPES else None
        self.target = target
        self.total: Number | None = None

    def add(self, row: Row) -> int:
        raw = row[self.index]
        if raw is None:
            return 0
        if self.scale is not None:
            whole, _, fraction = raw.partition(b".")
            if len(fraction) == self.scale:
                self.total = int(whole + fraction) + (self.total or 0)  # type: ignore[operator]
                return 0
            self.total = self.value()
            self.scale = None
        self.total = add_numbers(self.total, self.decode(raw))
        return 0

    def value(self) -> Number | None:
        """The sum so far (a Decimal for DECIMAL partials)."""
        if self.scale is None or self.total is None:
            return self.total
        return Decimal(self.total).scaleb(-self.scale)

    def result(self) -> bytes | None:
        total = self.value()
        return None if total is None else format_number(total, self.target)


class Extreme(Accumulator):
    """MIN or MAX: the partial with the least or greatest key; ties keep the first seen."""

    __slots__ = ("best", "best_key", "greatest", "index", "key")

    def __init__(self, index: int, col: ColumnDefinition, greatest: bool) -> None:
        self.index = index
        self.key = value_key(col)
        self.greatest = greatest
        self.best: bytes | None = None
        self.best_key: object = None

    def add(self, row: Row) -> int:
        raw = row[self.index]
        if raw is None:
            return 0
        key = self.key(raw)
        if self.best is None or (key > self.best_key if self.greatest  # type: ignore[operator]
                                 else key < self.best_key):  # type: ignore[operator]
            self.best, self.best_key = raw, key
        return 0

    def result(self) -> bytes | None:
        return self.best


class Average(Accumulator):
    __slots__ = ("count", "count_index", "sum", "target")

    def __init__(self, sum_index: int, count_index: int, partial: ColumnDefinition,
                 target: ColumnDefinition) -> None:
        self.sum = Sum(sum_index, partial, target)
        self.count = Count(count_index)
        self.target = target

    def add(self, row: Row) -> int:
        self.sum.add(row)
        self.count.add(row)
        return 0

    def result(self) -> bytes | None:
        total = self.sum.value()
        if total is None or not self.count.total:
            return None
        return average(total, self.count.total, self.target)


class DistinctValues(Accumulator):
    """COUNT/SUM/AVG(DISTINCT ...): the set of distinct non-NULL argument tuples."""

    __slots__ = ("indexes", "keys", "kind", "target", "to_number", "values")

    def __init__(self, kind: str, indexes: tuple[int, ...], columns: Sequence[ColumnDefinition],
                 target: ColumnDefinition) -> None:
        self.kind = kind
        self.indexes = indexes
        self.keys = [value_key(columns[i]) for i in indexes]
        self.to_number = number(columns[indexes[0]])
        self.target = target
        self.values: dict[tuple, Number | None] = {}

    def add(self, row: Row) -> int:
        raws = [row[i] for i in self.indexes]
        if any(raw is None for raw in raws):
            return 0
        key = tuple(k(raw) for k, raw in zip(self.keys, raws, strict=True))  # type: ignore[arg-type]
        if key in self.values:
            return 0
        self.values[key] = None if self.kind == COUNT_DISTINCT else self.to_number(raws[0])  # type: ignore[arg-type]
        return 1

    def result(self) -> bytes | None:
        if self.kind == COUNT_DISTINCT:
            return str(len(self.values)).encode("ascii")
        if not self.values:
            return None
        total: Number | None = None
        for value in self.values.values():
            total = add_numbers(total, value)  # type: ignore[arg-type]
        assert total is not None
        if self.kind == SUM_DISTINCT:
            return format_number(total, self.target)
        return average(total, len(self.values), self.target)


def add_numbers(total: Number | None, value: Number) -> Number:
    """``total + value``: exact for ints and Decimals, float once a double is involved."""
    if total is None:
        return value
    if isinstance(total, float) or isinstance(value, float):
        return float(total) + float(value)
    if isinstance(total, Decimal) or isinstance(value, Decimal):
        return DECIMAL_CONTEXT.add(Decimal(total), Decimal(value))
    return total + value


def format_number(value: Number, col: ColumnDefinition) -> bytes:
    """``value`` printed as MariaDB prints a value of column type ``col``."""
    if col.type in DECIMAL_TYPES:
        return format_decimal(Decimal(value), col.decimals)
    if col.type in FLOAT_TYPES:
        return format_double(float(value), col.decimals)
    if col.type in (ColumnType.TINY, ColumnType.SHORT, ColumnType.LONG, ColumnType.LONGLONG,
                    ColumnType.INT24):
        return str(int(value)).encode("ascii")
    return format_decimal(Decimal(value), col.decimals)


def average(total: Number, count: int, col: ColumnDefinition) -> bytes:
    """AVG as MariaDB prints it: DECIMAL rounded half up to the column's decimals (the
    argument's scale + div_precision_increment), or a DOUBLE quotient."""
    if col.type in FLOAT_TYPES or isinstance(total, float):
        return format_double(float(total) / count, col.decimals)
    return divide_decimal(Decimal(total), count, col.decimals)


Factory = Callable[[], Accumulator]


class Grouper:
    """Folds shard rows into groups; ``max_rows`` bounds groups plus distinct values held."""

    def __init__(self, columns: Sequence[ColumnDefinition], group_by: Sequence[int],
                 factories: Sequence[Factory], fill: Sequence[int], max_rows: int) -> None:
        self.keys = [(i, value_key(columns[i])) for i in group_by]
        self.factories = factories
        self.fill = fill
        self.max_rows = max_rows
        self.held = 0
        self.groups: dict[object, tuple[Row, list[Accumulator]]] = {}

    def key(self, row: Row) -> object:
        """The group of ``row``: its GROUP BY values' comparison keys."""
        if len(self.keys) == 1:
            i, k = self.keys[0]
            raw = row[i]
            return None if raw is None else k(raw)
        return tuple([None if row[i] is None else k(row[i]) for i, k in self.keys])  # type: ignore[arg-type]

    def add(self, row: Row) -> None:
        key = self.key(row)
        group = self.groups.get(key)
        if group is None:
            group = (list(row), [make() for make in self.factories])
            self.groups[key] = group
            self._hold(1)
        elif self.fill:
            first = group[0]
            for i in self.fill:
                if first[i] is None:
                    first[i] = row[i]
        for acc in group[1]:
            if held := acc.add(row):
                self._hold(held)

    def _hold(self, n: int) -> None:
        self.held += n
        if self.held > self.max_rows:
            raise MergeTooLarge(f"the merge holds more than {self.max_rows} rows (groups and "
                                "distinct values); add a shard key, a narrower WHERE or raise "
                                "the limit")

    def rows(self, targets: Sequence[int], width: int, implicit: bool) -> list[Row]:
        """The merged rows, aggregates written into their ``targets`` columns. An implicit
        group (aggregates without GROUP BY) yields one row even when no shard had rows."""
        if implicit and not self.groups:
            self.groups[()] = ([None] * width, [make() for make in self.factories])
        out = []
        for row, accs in self.groups.values():
            for target, acc in zip(targets, accs, strict=True):
                row[target] = acc.result()
            out.append(row)
        return out


def merge_groups(rows: Iterable[Row], grouper: Grouper, targets: Sequence[int], width: int,
                 implicit: bool) -> list[Row]:
    """Fold every shard row into ``grouper``; the merged rows."""
    for row in rows:
        grouper.add(row)
    return grouper.rows(targets, width, implicit)
