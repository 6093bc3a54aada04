"""Text-protocol values: Python keys that compare as MySQL compares a column, and numbers
printed exactly as MariaDB prints them.

Collations. A column definition's charset id is the connection's result charset
(character_set_results), not the column's collation: MariaDB 10.11 sends 45 for
utf8mb4_general_ci, utf8mb4_unicode_ci and utf8mb4_bin columns alike (checked). What survives is
the BINARY flag, which MariaDB sets for ``*_bin`` collations. So a string column compares:

- charset 63 (VARBINARY, BLOB): as bytes;
- BINARY flag set: by code point, trailing spaces ignored (``*_bin`` collations are PAD SPACE);
- otherwise case- and accent-insensitively. utf8mb4_general_ci is approximated per character:
  the upper case of its base letter (NFD without combining marks; 'ß' is 'S'), every character
  outside the BMP equal (general_ci weighs them all as U+FFFD), trailing spaces ignored. When
  the charset id itself names a unicode_ci collation (a client that SET NAMES ... COLLATE it),
  the key is NFKD without marks, case-folded ('ß' = 'ss'). Neither reproduces the full weight
  tables (general_ci sorts some punctuation and symbols differently from code points, and
  unicode_ci has contractions and ignorable characters); strings that differ only in those
  may group or sort differently than on one server.

PAD SPACE. MariaDB's collations compare as if the shorter string were padded with spaces, so a
character below the space sorts a string first: 'a\t' < 'a' = 'a ' < 'a!'. Keys are `PadSpace`
strings (trailing spaces stripped, ordered with that padding), not plain str, which would put
'a' before 'a\t'.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from router.fingerprint import unquote_string
from router.primitives.errors import ScatterUnsupported
from router.rows.columns import ColumnDefinition
from router.rows.types import BINARY_COLLATION, ColumnFlag, ColumnType

Key = Any
KeyFn = Callable[[bytes], Key]

NOT_FIXED_DEC = 31  # decimals of a DOUBLE printed in its shortest form
DECIMAL_CONTEXT = Context(prec=200)  # DECIMAL has at most 65 digits: sums stay exact

INTEGER_TYPES = frozenset({ColumnType.TINY, ColumnType.SHORT, ColumnType.LONG,
                           ColumnType.LONGLONG, ColumnType.INT24, ColumnType.YEAR})
DECIMAL_TYPES = frozenset({ColumnType.DECIMAL, ColumnType.NEWDECIMAL})
FLOAT_TYPES = frozenset({ColumnType.FLOAT, ColumnType.DOUBLE})
NUMERIC_TYPES = INTEGER_TYPES | DECIMAL_TYPES | FLOAT_TYPES
DATE_TYPES = frozenset({ColumnType.DATE, ColumnType.DATETIME, ColumnType.TIMESTAMP,
                        ColumnType.NEWDATE})
STRING_TYPES = frozenset({ColumnType.VARCHAR, ColumnType.VAR_STRING, ColumnType.STRING,
                          ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB,
                          ColumnType.BLOB, ColumnType.JSON, ColumnType.ENUM, ColumnType.SET})

_LATIN1 = frozenset({5, 8, 15, 31, 47, 48, 49, 94})
_UNICODE_CI = frozenset({192, 214, 224, 246})
_NUMBER_PREFIX = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


# -- keys ------------------------------------------------------------------------------------

def _numeric(t: int) -> Callable[[bytes], int | Decimal | float] | None:
    """The decoder of a numeric column type's text value, or None for other types."""
    if t in INTEGER_TYPES:
        return int
    if t in DECIMAL_TYPES:
        return _decimal
    if t in FLOAT_TYPES:
        return float
    return None


def value_key(col: ColumnDefinition) -> KeyFn:
    """A function from a non-NULL value of ``col`` to a hashable key that is equal, and
    ordered, as MySQL compares values of that column (see the module note on collations)."""
    t = col.type
    numeric = _numeric(t)
    if numeric is not None:
        return numeric
    if t == ColumnType.TIME:
        return time_micros
    if t in DATE_TYPES or t in (ColumnType.BIT, ColumnType.GEOMETRY, ColumnType.NULL):
        return bytes
    return string_key(col)


def order_key(col: ColumnDefinition) -> KeyFn:
    """Like `value_key`, for ORDER BY: refuses ENUM and SET columns, which MySQL orders by
    member index, a number the text protocol does not carry."""
    if col.flags & (ColumnFlag.ENUM | ColumnFlag.SET) or col.type in (ColumnType.ENUM,
                                                                       ColumnType.SET):
        raise ScatterUnsupported(f"ORDER BY the ENUM/SET column '{col.name.decode()}' "
                                 "(MySQL orders it by member index)")
    return value_key(col)


def string_key(col: ColumnDefinition) -> KeyFn:
    """The comparison key of a string column, chosen from its charset id and BINARY flag."""
    if col.charset == BINARY_COLLATION:
        return bytes
    codec = codec_of(col.charset)
    if col.flags & ColumnFlag.BINARY:
        return lambda raw: PadSpace(raw.decode(codec, "surrogateescape").rstrip(" "))
    if col.charset in _UNICODE_CI:
        return lambda raw: unicode_fold(raw.decode(codec, "surrogateescape"))
    return lambda raw: general_fold(raw.decode(codec, "surrogateescape"))


def codec_of(charset: int) -> str:
    """The Python codec for a result charset id (utf-8 unless latin1)."""
    return "latin-1" if charset in _LATIN1 else "utf-8"


class _GeneralWeights(dict[int, str]):
    """Code point -> utf8mb4_general_ci approximate weight, filled on first use."""

    def __missing__(self, cp: int) -> str:
        char = chr(cp)
        if cp > 0xFFFF:
            weight = "\ufffd"
        else:
            parts = unicodedata.normalize("NFD", char)
            if len(parts) > 1 and all(unicodedata.combining(c) for c in parts[1:]):
                char = parts[0]
            upper = char.upper()
            weight = upper if len(upper) == 1 else ("S" if char == "ß" else char)
        self[cp] = weight
        return weight


_GENERAL = _GeneralWeights()


class PadSpace(str):
    """A string (trailing spaces stripped) that orders as a PAD SPACE collation does: as if the
    shorter were padded with spaces, so ``'a\t' < 'a' < 'a!'`` (a plain ``str`` puts ``'a'``
    first). Equal and hashed as the stripped string."""

    __slots__ = ()

    def _cmp(self, other: str) -> int:
        n = min(len(self), len(other))
        mine, theirs = self[:n], other[:n]  # plain str: slicing drops the subclass
        if mine != theirs:
            return -1 if mine < theirs else 1
        if len(self) == len(other):
            return 0
        # The longer one goes on with non-space text after any spaces: against padding,
        # its first non-space character decides.
        longer = self if len(self) > n else other
        follows = longer[n:].lstrip(" ")[:1]
        sign = 1 if follows > " " else -1
        return sign if longer is self else -sign

    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return self._cmp(other) < 0

    def __le__(self, other: str) -> bool:  # type: ignore[override]
        return self._cmp(other) <= 0

    def __gt__(self, other: str) -> bool:  # type: ignore[override]
        return self._cmp(other) > 0

    def __ge__(self, other: str) -> bool:  # type: ignore[override]
        return self._cmp(other) >= 0


def general_fold(text: str) -> PadSpace:
    """The utf8mb4_general_ci key of ``text`` (approximate; see the module note)."""
    return PadSpace(text.translate(_GENERAL).rstrip(" "))


def unicode_fold(text: str) -> PadSpace:
    """The utf8mb4_unicode_ci key of ``text`` (approximate; see the module note)."""
    parts = unicodedata.normalize("NFKD", text)
    return PadSpace("".join(c for c in parts if not unicodedata.combining(c)).casefold()
                    .rstrip(" "))


def time_micros(raw: bytes) -> int:
    """A TIME value ('-838:59:59.000000') as signed microseconds."""
    text = raw.decode("ascii")
    sign = -1 if text.startswith("-") else 1
    clock, _, frac = text.lstrip("-").partition(".")
    h, m, s = (int(p) for p in clock.split(":"))
    return sign * (((h * 60 + m) * 60 + s) * 1_000_000 + int((frac + "000000")[:6]))


def _decimal(raw: bytes) -> Decimal:
    return Decimal(raw.decode("ascii"))


# -- numbers as Python values ------------------------------------------------------------------

def number(col: ColumnDefinition) -> Callable[[bytes], int | Decimal | float]:
    """A decoder for arithmetic on ``col``: int, Decimal or float; strings and temporals as
    MySQL converts them to numbers (a leading numeric prefix, else 0)."""
    numeric = _numeric(col.type)
    if numeric is not None:
        return numeric
    codec = codec_of(col.charset)
    return lambda raw: to_number(raw.decode(codec, "surrogateescape"))


def to_number(text: str) -> float:
    """MySQL's string-to-double conversion: the longest numeric prefix, else 0."""
    match = _NUMBER_PREFIX.match(text)
    return float(match.group(1)) if match else 0.0


def literal_value(text: bytes) -> object:
    """A literal's value from its SQL text (a fingerprint slot): str for a quoted string,
    int for an integer or hex/bit literal, Decimal for 1.5, float for 1e3."""
    head = text[:1]
    if head in (b"'", b'"'):
        return unquote_string(text).decode("utf-8", "surrogateescape")
    low = text.lower()
    if low.startswith(b"0x"):
        return int(text[2:], 16)
    if low.startswith(b"x'"):
        return int(text[2:-1] or b"0", 16)
    if low.startswith(b"b'"):
        return int(text[2:-1] or b"0", 2)
    if b"e" in low:
        return float(text)
    if b"." in text:
        return Decimal(text.decode("ascii"))
    return int(text)


# -- numbers as MariaDB prints them ----------------------------------------------------------

def format_decimal(value: Decimal, scale: int) -> bytes:
    """A DECIMAL with ``scale`` digits after the point (half away from zero, never '-0')."""
    quantum = Decimal(1).scaleb(-scale)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT)
    if not rounded:
        rounded = abs(rounded)
    return f"{rounded:f}".encode("ascii")


def divide_decimal(total: Decimal, count: int, scale: int) -> bytes:
    """``total / count`` rounded half away from zero to ``scale`` digits, exactly (AVG)."""
    sign, digits, exponent = total.as_tuple()
    assert isinstance(exponent, int)
    n = int("".join(map(str, digits)) or "0")
    shift = exponent + scale
    num = n * 10 ** max(shift, 0)
    den = count * 10 ** max(-shift, 0)
    q, r = divmod(num, den)
    if 2 * r >= den:
        q += 1
    return scaled(-q if sign else q, scale)


def scaled(q: int, scale: int) -> bytes:
    """The integer ``q`` read as ``q / 10**scale``, printed with exactly ``scale`` decimals."""
    digits = str(abs(q)).rjust(scale + 1, "0")
    body = f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits
    return (f"-{body}" if q < 0 else body).encode("ascii")


def format_double(value: float, decimals: int) -> bytes:
    """A DOUBLE as MariaDB's text protocol prints it: with a fixed number of decimals when
    the column has them, else the shortest round-trip digits (``my_gcvt``)."""
    if decimals < NOT_FIXED_DEC:
        text = f"{value:.{decimals}f}"
        return (text[1:] if text.startswith("-") and not float(text) else text).encode()
    return gcvt(value)


def gcvt(value: float) -> bytes:
    """MariaDB's ``my_gcvt(x, MY_GCVT_ARG_DOUBLE, <wide>)``: shortest digits, in 'f' format
    when the decimal exponent is in [-14, 15] or the digits reach past the point, else 'e'
    format ('1e20', '3.333333333333333e19', '5e-324')."""
    if value == 0 or value != value or value in (float("inf"), float("-inf")):
        return b"0"
    try:
        d = Decimal(repr(abs(value))).normalize(DECIMAL_CONTEXT)
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        return b"0"
    _, digit_tuple, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent
    sign = "-" if value < 0 else ""
    if point >= -14 and (point <= 15 or len(digits) > point):
        if point <= 0:
            body = "0." + "0" * -point + digits
        elif point >= len(digits):
            body = digits + "0" * (point - len(digits))
        else:
            body = f"{digits[:point]}.{digits[point:]}"
    else:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        body = f"{mantissa}e{point - 1}"
    return (sign + body).encode("ascii")
