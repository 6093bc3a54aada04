"""The HAVING evaluator: MySQL's three-valued logic, conversions and arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.primitives.having import arithmetic, compile_predicate
from router.rows.types import ColumnType
from tests.router.helpers import b, col, count, decimal, text

COLUMNS = [count(), decimal("s", 2), text("g"), col("ts", ColumnType.DATETIME, charset=63),
           col("t", ColumnType.TIME, charset=63), col("n")]


def passes(pred: tuple, *values: object) -> bool:
    return compile_predicate(pred, COLUMNS)(b(*values))


def C(i: int) -> tuple:
    return ("col", i)


def L(v: object) -> tuple:
    return ("lit", v)


def test_comparisons_convert_like_mysql() -> None:
    row = (5, "12.50", "Abc", "2024-01-03 00:00:00.000000", "-01:00:00", None)
    assert passes(("cmp", ">", C(0), L(4)), *row)
    assert passes(("cmp", "=", C(1), L(Decimal("12.5"))), *row)
    assert passes(("cmp", "=", C(2), L("abc ")), *row)            # general_ci, PAD SPACE
    assert passes(("cmp", "=", C(3), L("2024-01-03")), *row)       # temporal against a string
    assert passes(("cmp", "<", C(4), L("00:00:01")), *row)
    assert passes(("cmp", "=", C(1), L("12.5abc")), *row)         # string to number
    assert not passes(("cmp", "<>", C(0), L(5)), *row)


def test_null_is_unknown_and_unknown_drops_the_row() -> None:
    row = (5, None, None, None, None, None)
    assert not passes(("cmp", "=", C(1), L(None)), *row)
    assert not passes(("not", ("cmp", "=", C(1), L(1))), *row)
    assert passes(("isnull", C(1)), *row)
    assert passes(("cmp", "<=>", C(1), L(None)), *row)
    assert passes(("or", ("cmp", "=", C(1), L(1)), ("cmp", "=", C(0), L(5))), *row)
    assert not passes(("and", ("cmp", "=", C(1), L(1)), ("cmp", "=", C(0), L(5))), *row)
    assert passes(("not", ("and", ("cmp", "=", C(1), L(1)), ("cmp", "=", C(0), L(6)))), *row)


def test_in_and_between() -> None:
    row = (5, "1.00", "b", None, None, None)
    assert passes(("in", C(0), (L(1), L(5))), *row)
    assert not passes(("in", C(0), (L(1), L(None))), *row)
    assert not passes(("not", ("in", C(0), (L(1), L(None)))), *row)
    assert passes(("in", C(2), (L("B"),)), *row)
    assert passes(("between", C(0), L(5), L(6)), *row)
    assert not passes(("between", C(0), L(6), L(9)), *row)


def test_arithmetic_over_aggregates() -> None:
    row = (3, "5.00", None, None, None, 2)
    assert passes(("cmp", "=", ("arith", "/", C(1), C(0)), L(Decimal("1.666667"))), *row)
    assert passes(("cmp", "=", ("arith", "/", L(5), C(0)), L(Decimal("1.6667"))), *row)
    assert passes(("cmp", "=", ("arith", "+", C(0), ("neg", C(5))), L(1)), *row)
    assert not passes(("cmp", ">", ("arith", "/", C(0), L(0)), L(0)), *row)  # x/0 is NULL
    assert passes(("cmp", "=", ("arith", "div", C(0), C(5)), L(1)), *row)
    assert passes(("cmp", "=", ("arith", "mod", ("neg", C(0)), C(5)), L(-1)), *row)


@pytest.mark.parametrize(("op", "x", "y", "result"), [
    ("/", 5, 3, Decimal("1.6667")), ("/", Decimal("7.08"), 3, Decimal("2.360000")),
    ("/", 1.0, 4, 0.25), ("*", Decimal("1.5"), 2, Decimal("3.0")), ("-", 1, 3, -2),
    ("div", -7, 2, -3), ("mod", -7, 2, -1), ("mod", Decimal("7.5"), 2, Decimal("1.5")),
    ("mod", 5, 0, None),
])
def test_mysql_arithmetic(op: str, x: object, y: object, result: object) -> None:
    assert arithmetic(op, x, y) == result  # type: ignore[arg-type]
