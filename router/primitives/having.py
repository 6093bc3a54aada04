"""HAVING after the merge: a small evaluator over merged rows, with MySQL's three-valued logic.

A predicate is a tree of tuples (hashable, so it can sit in a frozen MergeSpec):

- ``("col", i)``: the value of shard column ``i`` of the merged row, decoded by its type;
- ``("lit", value)``: None, int, Decimal, float or str;
- ``("cmp", op, a, b)`` with op one of ``= <> < <= > >= <=>``;
- ``("and", a, b)``, ``("or", a, b)``, ``("xor", a, b)``, ``("not", a)``, ``("isnull", a)``;
- ``("arith", op, a, b)`` with op one of ``+ - * / div mod``, and ``("neg", a)``;
- ``("in", a, (b, c, ...))`` and ``("between", a, lo, hi)``.

Comparisons follow MySQL's conversions: numbers numerically (int, Decimal and float compare
exactly in Python), two strings by the collation of the column side (see `values`), a string
and a number as doubles, temporal columns against strings after normalising both to
'YYYY-MM-DD HH:MM:SS.ffffff' (TIME: to microseconds). Division by zero is NULL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from router.primitives.values import (
    DATE_TYPES,
    DECIMAL_CONTEXT,
    DECIMAL_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    codec_of,
    general_fold,
    time_micros,
    to_number,
    unicode_fold,
)
from router.rows.columns import ColumnDefinition
from router.rows.types import BINARY_COLLATION, ColumnFlag, ColumnType

Row = list[bytes | None]
Value = object
Eval = Callable[[Row], Value]
Fold = Callable[[object], object]

_DATETIME = re.compile(r"\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?"
                       r"(?:\.(\d{1,6}))?)?\s*$")
_TIME = re.compile(r"\s*(-?)(\d+):(\d{1,2})(?::(\d{1,2}))?(?:\.(\d{1,6}))?\s*$")
_COMPARE = {"=": lambda c: c == 0, "<>": lambda c: c != 0, "<": lambda c: c < 0,
            "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0}


def compile_predicate(pred: tuple, columns: Sequence[ColumnDefinition]) -> Callable[[Row], bool]:
    """A row filter: True when ``pred`` is true (NULL and false both drop the row)."""
    evaluate, _ = _compile(pred, columns)
    return lambda row: truth(evaluate(row)) is True


def truth(value: Value) -> bool | None:
    """MySQL truthiness: NULL stays NULL, strings through their numeric prefix."""
    if value is None:
        return None
    if isinstance(value, str):
        return to_number(value) != 0
    return value != 0


def _compile(node: tuple, columns: Sequence[ColumnDefinition]) -> tuple[Eval, Fold | None]:
    """An evaluator for ``node`` and, for a bare column, the fold its comparisons use."""
    op = node[0]
    if op == "col":
        return _column(node[1], columns[node[1]])
    if op == "lit":
        value = node[1]
        return (lambda row: value), None
    if op == "cmp":
        return _comparison(node[1], node[2], node[3], columns), None
    if op in ("and", "or", "xor"):
        return _logic(op, _compile(node[1], columns)[0], _compile(node[2], columns)[0]), None
    if op == "not":
        inner = _compile(node[1], columns)[0]
        return (lambda row: _not(truth(inner(row)))), None
    if op == "isnull":
        inner = _compile(node[1], columns)[0]
        return (lambda row: int(inner(row) is None)), None
    if op == "arith":
        return _arith(node[1], _compile(node[2], columns)[0], _compile(node[3], columns)[0]), None
    if op == "neg":
        inner = _compile(node[1], columns)[0]
        return (lambda row: _negate(inner(row))), None
    if op == "in":
        return _in(node[1], node[2], columns), None
    if op == "between":
        low = ("cmp", ">=", node[1], node[2])
        high = ("cmp", "<=", node[1], node[3])
        return _compile(("and", low, high), columns)
    raise ValueError(f"unknown HAVING node {op!r}")


def _column(index: int, col: ColumnDefinition) -> tuple[Eval, Fold | None]:
    t = col.type
    if t in INTEGER_TYPES:
        return _decoded(index, int), None
    if t in DECIMAL_TYPES:
        return _decoded(index, lambda raw: Decimal(raw.decode("ascii"))), None
    if t in FLOAT_TYPES:
        return _decoded(index, float), None
    if t == ColumnType.TIME:
        return _decoded(index, time_micros), _time_fold
    codec = codec_of(col.charset)
    decode = _decoded(index, lambda raw: raw.decode(codec, "surrogateescape"))
    if t in DATE_TYPES:
        return decode, _datetime_fold
    if col.charset == BINARY_COLLATION:
        return decode, None
    if col.flags & ColumnFlag.BINARY:
        return decode, _pad_fold
    return decode, _string_fold(col.charset)


def _decoded(index: int, decode: Callable[[bytes], Value]) -> Eval:
    def evaluate(row: Row) -> Value:
        raw = row[index]
        return None if raw is None else decode(raw)
    return evaluate


def _string_fold(charset: int) -> Fold:
    fold = unicode_fold if charset in (192, 214, 224, 246) else general_fold
    return lambda v: fold(v) if isinstance(v, str) else v


def _pad_fold(value: object) -> object:
    return value.rstrip(" ") if isinstance(value, str) else value


def _datetime_fold(value: object) -> object:
    if not isinstance(value, str) or not (m := _DATETIME.match(value)):
        return value
    y, mo, d, h, mi, s, frac = m.groups()
    return (f"{int(y):04d}-{int(mo):02d}-{int(d):02d} {int(h or 0):02d}:{int(mi or 0):02d}:"
            f"{int(s or 0):02d}.{(frac or '').ljust(6, '0')}")


def _time_fold(value: object) -> object:
    if not isinstance(value, str) or not (m := _TIME.match(value)):
        return value
    sign, h, mi, s, frac = m.groups()
    micros = ((int(h) * 60 + int(mi)) * 60 + int(s or 0)) * 1_000_000 + int(
        (frac or "").ljust(6, "0"))
    return -micros if sign else micros


def _comparison(op: str, left: tuple, right: tuple,
                columns: Sequence[ColumnDefinition]) -> Eval:
    a, fold_a = _compile(left, columns)
    b, fold_b = _compile(right, columns)
    fold = fold_a or fold_b
    if op == "<=>":
        def null_safe(row: Row) -> Value:
            x, y = a(row), b(row)
            if x is None or y is None:
                return int(x is None and y is None)
            return int(compare(x, y, fold) == 0)
        return null_safe
    test = _COMPARE[op]

    def evaluate(row: Row) -> Value:
        x = a(row)
        if x is None:
            return None
        y = b(row)
        if y is None:
            return None
        return int(test(compare(x, y, fold)))
    return evaluate


def compare(x: object, y: object, fold: Fold | None) -> int:
    """-1, 0 or 1 for two non-NULL values, with MySQL's conversions."""
    if fold is not None:
        x, y = fold(x), fold(y)
    if isinstance(x, str) != isinstance(y, str):
        x = to_number(x) if isinstance(x, str) else float(x)  # type: ignore[arg-type]
        y = to_number(y) if isinstance(y, str) else float(y)  # type: ignore[arg-type]
    return (x > y) - (x < y)  # type: ignore[operator]


def _in(left: tuple, items: tuple, columns: Sequence[ColumnDefinition]) -> Eval:
    a, fold = _compile(left, columns)
    evaluators = [_compile(item, columns)[0] for item in items]

    def evaluate(row: Row) -> Value:
        x = a(row)
        if x is None:
            return None
        unknown = False
        for item in evaluators:
            y = item(row)
            if y is None:
                unknown = True
            elif compare(x, y, fold) == 0:
                return 1
        return None if unknown else 0
    return evaluate


def _logic(op: str, a: Eval, b: Eval) -> Eval:
    def evaluate(row: Row) -> Value:
        x, y = truth(a(row)), truth(b(row))
        if op == "and":
            if x is False or y is False:
                return 0
            return None if x is None or y is None else 1
        if op == "or":
            if x is True or y is True:
                return 1
            return None if x is None or y is None else 0
        return None if x is None or y is None else int(x != y)
    return evaluate


def _not(value: bool | None) -> Value:
    return None if value is None else int(not value)


def _negate(value: Value) -> Value:
    if value is None:
        return None
    return -(to_number(value) if isinstance(value, str) else value)  # type: ignore[operator]


def _numeric(value: Value) -> int | Decimal | float:
    if isinstance(value, str):
        return to_number(value)
    return value  # type: ignore[return-value]


def _arith(op: str, a: Eval, b: Eval) -> Eval:
    def evaluate(row: Row) -> Value:
        x, y = a(row), b(row)
        if x is None or y is None:
            return None
        return arithmetic(op, _numeric(x), _numeric(y))
    return evaluate


def arithmetic(op: str, x: int | Decimal | float, y: int | Decimal | float) -> Value:
    """MySQL arithmetic on two numbers; exact unless a double is involved."""
    if isinstance(x, float) or isinstance(y, float):
        x, y = float(x), float(y)
    elif isinstance(x, Decimal) or isinstance(y, Decimal) or op == "/":
        x, y = Decimal(x), Decimal(y)
    if op == "+":
        return DECIMAL_CONTEXT.add(x, y) if isinstance(x, Decimal) else x + y
    if op == "-":
        return DECIMAL_CONTEXT.subtract(x, y) if isinstance(x, Decimal) else x - y
    if op == "*":
        return DECIMAL_CONTEXT.multiply(x, y) if isinstance(x, Decimal) else x * y
    if not y:
        return None
    if op == "/":
        return _divide(x, y) if isinstance(x, Decimal) else x / y
    if op == "div":
        quotient = (Decimal(x / y) if isinstance(x, float)
                    else DECIMAL_CONTEXT.divide(Decimal(x), Decimal(y)))
        return int(quotient.to_integral_value(rounding=ROUND_DOWN))
    if isinstance(x, int) and isinstance(y, int):  # mod: the sign of the dividend
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    if isinstance(x, Decimal):
        return DECIMAL_CONTEXT.remainder(x, y)
    return math.fmod(x, y)


def _divide(x: Decimal, y: Decimal) -> Decimal:
    """MySQL's DECIMAL division: the dividend's scale plus div_precision_increment (4),
    rounded half away from zero."""
    exponent = x.as_tuple().exponent
    scale = min(max(-exponent, 0) if isinstance(exponent, int) else 0, 34) + 4
    quotient = DECIMAL_CONTEXT.divide(x, y)
    return quotient.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP,
                             context=DECIMAL_CONTEXT)
