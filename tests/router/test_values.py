"""Values: MariaDB's number printing, collation keys, literal slots."""

from __future__ import annotations

import struct
from decimal import ROUND_HALF_UP, Context, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.primitives.errors import ScatterUnsupported
from router.primitives.values import (
    divide_decimal,
    format_decimal,
    format_double,
    gcvt,
    general_fold,
    literal_value,
    order_key,
    time_micros,
    to_number,
    unicode_fold,
    value_key,
)
from router.rows.types import ColumnFlag, ColumnType
from tests.router.helpers import col, text

# (value, what MariaDB 10.11 prints for it in a DOUBLE column), read from the server.
MARIADB_DOUBLES = [
    (0.0, "0"), (1.0, "1"), (0.1, "0.1"), (100.0, "100"), (123.456, "123.456"),
    (1e15, "1e15"), (1e14, "100000000000000"), (123456789012345.0, "123456789012345"),
    (1234567890123456.0, "1.234567890123456e15"), (1e16, "1e16"), (1e20, "1e20"),
    (1e20 / 3, "3.333333333333333e19"), (999999999999999.9, "999999999999999.9"),
    (-2769437097822068.5, "-2769437097822068.5"), (9999999999999998.0, "9.999999999999998e15"),
    (1e-5, "0.00001"), (-1.2e-5, "-0.000012"), (1e-15, "0.000000000000001"), (1e-16, "1e-16"),
    (1.6124599595587767e-15, "0.0000000000000016124599595587767"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e308"),
    (6.849999904632568, "6.849999904632568"), (-9.317605663422148e-122, "-9.317605663422148e-122"),
]


@pytest.mark.parametrize(("value", "printed"), MARIADB_DOUBLES)
def test_doubles_print_as_mariadb_prints_them(value: float, printed: str) -> None:
    assert gcvt(value) == printed.encode()
    assert format_double(value, 31) == printed.encode()


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=500)
def test_printed_doubles_read_back_exactly(value: float) -> None:
    assert float(gcvt(value)) == value


@given(st.integers(0, 2**64 - 1))
@settings(max_examples=300)
def test_any_bit_pattern_reads_back(bits: int) -> None:
    value = struct.unpack("d", struct.pack("Q", bits))[0]
    if value == value and abs(value) != float("inf"):
        assert float(gcvt(value)) == value


def test_doubles_with_fixed_decimals_never_print_minus_zero() -> None:
    assert format_double(2.5, 2) == b"2.50"
    assert format_double(-0.001, 2) == b"0.00"
    assert format_double(-1.005, 1) == b"-1.0"


@pytest.mark.parametrize(("value", "scale", "printed"), [
    ("15", 0, "15"), ("12.3", 2, "12.30"), ("2.345", 2, "2.35"), ("-2.345", 2, "-2.35"),
    ("-0.001", 2, "0.00"), ("99999999999999999999999999999999.99", 2,
                            "99999999999999999999999999999999.99"),
])
def test_decimals_round_half_away_from_zero(value: str, scale: int, printed: str) -> None:
    assert format_decimal(Decimal(value), scale) == printed.encode()


@pytest.mark.parametrize(("total", "count", "scale", "printed"), [
    ("5", 3, 4, "1.6667"), ("-5", 3, 4, "-1.6667"), ("7.08", 3, 6, "2.360000"),
    ("1", 8, 4, "0.1250"), ("0.00005", 1, 4, "0.0001"), ("0", 7, 4, "0.0000"),
    ("990000", 2, 4, "495000.0000"),
])
def test_averages_divide_exactly(total: str, count: int, scale: int, printed: str) -> None:
    assert divide_decimal(Decimal(total), count, scale) == printed.encode()


@given(st.integers(-10**30, 10**30), st.integers(0, 6), st.integers(1, 10**6),
       st.integers(0, 10))
def test_average_is_the_exact_quotient_rounded_half_up(n: int, exp: int, count: int,
                                                       scale: int) -> None:
    total = Decimal(n).scaleb(-exp)
    exact = Context(prec=200).divide(total, Decimal(count))
    want = exact.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP,
                          context=Context(prec=200))
    got = divide_decimal(total, count, scale)
    assert Decimal(got.decode()) == want
    assert len(got.decode().partition(".")[2]) == scale


def test_general_ci_folds_case_accents_and_trailing_spaces() -> None:
    assert general_fold("abc") == general_fold("ABC") == general_fold("Abc")
    assert general_fold("é") == general_fold("E") == general_fold("ê")
    assert general_fold("ß") == general_fold("s")
    assert general_fold("x ") == general_fold("x")
    assert general_fold("\U0001F600") == general_fold("\U0001F601")  # all U+FFFD
    assert general_fold("a") < general_fold("B") < general_fold("c")
    assert general_fold("한") != general_fold("할")


def test_unicode_ci_expands_sharp_s() -> None:
    assert unicode_fold("ß") == unicode_fold("SS")
    assert unicode_fold("Å") == unicode_fold("a")


def test_string_keys_follow_charset_and_binary_flag() -> None:
    ci = value_key(text("g"))
    assert ci(b"abc") == ci(b"ABC ")
    binary_coll = value_key(text("g", binary_collation=True))
    assert binary_coll(b"abc") != binary_coll(b"ABC")
    assert binary_coll(b"abc") == binary_coll(b"abc  ")  # *_bin is PAD SPACE
    varbinary = value_key(col("d", ColumnType.VAR_STRING, charset=63, flags=ColumnFlag.BINARY))
    assert varbinary(b"abc") != varbinary(b"abc ")


def test_numeric_and_temporal_keys() -> None:
    assert value_key(col("k"))(b"-3") == -3
    assert value_key(col("p", ColumnType.NEWDECIMAL, decimals=2))(b"1.50") == Decimal("1.5")
    assert value_key(col("f", ColumnType.DOUBLE, decimals=31))(b"1e20") == 1e20
    time = value_key(col("t", ColumnType.TIME))
    assert time(b"-01:00:00") < time(b"00:00:00") < time(b"20:00:00") < time(b"100:00:00")
    assert time_micros(b"-838:59:59.000001") == -(838 * 3600 + 59 * 60 + 59) * 10**6 - 1


def test_enum_columns_cannot_be_ordered() -> None:
    enum = col("e", ColumnType.STRING, charset=45, flags=ColumnFlag.ENUM)
    with pytest.raises(ScatterUnsupported, match="ENUM"):
        order_key(enum)
    assert value_key(enum)(b"a") == value_key(enum)(b"A")


@pytest.mark.parametrize(("literal", "value"), [
    (b"12", 12), (b"1.5", Decimal("1.5")), (b"1e3", 1000.0), (b"'a''b'", "a'b"),
    (b'"x\\ny"', "x\ny"), (b"0x41", 65), (b"X'ff'", 255), (b"b'101'", 5),
])
def test_literal_slots_parse_as_mysql_reads_them(literal: bytes, value: object) -> None:
    assert literal_value(literal) == value
    assert type(literal_value(literal)) is type(value)


def test_strings_convert_to_numbers_by_their_prefix() -> None:
    assert to_number("12abc") == 12.0
    assert to_number(" -1.5e2x") == -150.0
    assert to_number("abc") == 0.0


@given(st.lists(st.text(alphabet=" \t\n!aAb\u00e9", max_size=6), min_size=2, max_size=8))
def test_strings_order_as_a_pad_space_collation(values: list[str]) -> None:
    """MariaDB compares as if the shorter string were padded with spaces: 'a\\t' < 'a' = 'a '.
    The key must order every pair as the padded strings do, and be equal exactly when they
    are."""
    def padded(a: str, b: str) -> tuple[str, str]:
        a, b = general_fold(a), general_fold(b)
        width = max(len(a), len(b))
        return str(a).ljust(width), str(b).ljust(width)

    for a in values:
        for b in values:
            left, right = padded(a, b)
            ka, kb = general_fold(a), general_fold(b)
            assert (ka < kb) == (left < right), (a, b)
            assert (ka == kb) == (left == right), (a, b)
            assert (ka > kb) == (left > right), (a, b)
