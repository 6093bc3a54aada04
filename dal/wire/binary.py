"""The binary protocol of prepared statements: COM_STMT_PREPARE's OK, COM_STMT_EXECUTE, and
binary result rows, in both directions (sans-IO; decoding raises only `ProtocolError`).

Values are Python objects: ``int`` for the integer types, ``float`` for FLOAT/DOUBLE, ``bytes``
for everything sent as a length-encoded string (DECIMAL, strings, blobs, BIT, JSON, ...),
`DateTime` for DATE/DATETIME/TIMESTAMP and `Time` for TIME. Dates are tuples rather than
``datetime`` objects because MySQL has zero dates (``0000-00-00``) that ``datetime`` cannot hold.
A parameter's type is a pair (type code, unsigned).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from router.rows.buffer import Reader, lenenc_bytes, u16, u32
from router.rows.errors import ProtocolError
from router.rows.types import ColumnFlag, ColumnType

UNSIGNED_PARAM = 0x80  # the flag byte after a parameter's type code
CURSOR_READ_ONLY = 0x01
LAST_PREPARED = 0xFFFFFFFF  # MariaDB: "the statement this connection prepared last"

_INTS = {ColumnType.TINY: (1, "b", "B"), ColumnType.SHORT: (2, "h", "H"),
         ColumnType.YEAR: (2, "h", "H"), ColumnType.LONG: (4, "i", "I"),
         ColumnType.INT24: (4, "i", "I"), ColumnType.LONGLONG: (8, "q", "Q")}
_INT_STRUCTS = {(code, unsigned): struct.Struct("<" + (fmt_u if unsigned else fmt_s))
                for code, (_, fmt_s, fmt_u) in _INTS.items() for unsigned in (False, True)}
INT_SIZES = {code: size for code, (size, _, _) in _INTS.items()}  # integer types' widths
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_DATES = frozenset({ColumnType.DATE, ColumnType.DATETIME, ColumnType.TIMESTAMP,
                    ColumnType.NEWDATE})
_STRINGS = frozenset({ColumnType.DECIMAL, ColumnType.NEWDECIMAL, ColumnType.VARCHAR,
                      ColumnType.BIT, ColumnType.JSON, ColumnType.ENUM, ColumnType.SET,
                      ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB,
                      ColumnType.BLOB, ColumnType.VAR_STRING, ColumnType.STRING,
                      ColumnType.GEOMETRY})
# Parameter types DAL takes. Not INT24 and YEAR: MariaDB binds a parameter of either as NULL
# and reads none of its bytes (the next parameter reads them), so DAL, which would read 4 or
# 2 bytes, would route by another key than the backend compares.
KNOWN_TYPES = frozenset({*_INTS, ColumnType.FLOAT, ColumnType.DOUBLE, ColumnType.NULL,
                         ColumnType.TIME, *_DATES, *_STRINGS}) - {ColumnType.INT24,
                                                                   ColumnType.YEAR}

ParamType = tuple[int, bool]  # (type code, unsigned)


class DateTime(NamedTuple):
    """DATE, DATETIME or TIMESTAMP; a DATE has zero time fields."""

    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0


class Time(NamedTuple):
    """TIME: a signed duration, ``days`` whole days plus a time of day."""

    negative: bool = False
    days: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0


Value = int | float | bytes | DateTime | Time | None


# -- COM_STMT_PREPARE --------------------------------------------------------------------------


@dataclass(slots=True)
class PrepareOk:
    """The first packet of a COM_STMT_PREPARE reply; parameter and column definitions follow."""

    statement_id: int
    columns: int
    params: int
    warnings: int = 0

    def encode(self) -> bytes:
        return (b"\x00" + u32(self.statement_id) + u16(self.columns) + u16(self.params)
                + b"\x00" + u16(self.warnings))

    @classmethod
    def decode(cls, payload: bytes) -> PrepareOk:
        r = Reader(payload)
        if r.u8() != 0:
            raise ProtocolError("not a COM_STMT_PREPARE OK packet")
        statement_id, columns, params = r.u32(), r.u16(), r.u16()
        warnings = 0
        if r.remaining() >= 3:
            r.u8()
            warnings = r.u16()
        return cls(statement_id, columns, params, warnings)


# -- COM_STMT_EXECUTE --------------------------------------------------------------------------


@dataclass(slots=True)
class Execute:
    """COM_STMT_EXECUTE. ``values`` holds each parameter's encoded bytes (None for NULL, and
    for parameters whose value came with COM_STMT_SEND_LONG_DATA), so that it can be sent on
    unchanged; `value` decodes one."""

    statement_id: int
    flags: int = 0
    iterations: int = 1
    types: list[ParamType] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    new_params_bound: bool = True

    def value(self, index: int) -> Value:
        raw = self.values[index]
        if raw is None:
            return None
        code, unsigned = self.types[index]
        return decode_value(code, unsigned, Reader(raw))

    def encode(self) -> bytes:
        """The command payload; types are always sent (new-params-bound = 1)."""
        parts = [b"\x17", u32(self.statement_id), bytes((self.flags,)), u32(self.iterations)]
        if self.values:
            parts.append(null_bitmap([v is None for v in self.values], 0))
            parts.append(b"\x01")
            parts.append(b"".join(bytes((code, UNSIGNED_PARAM if unsigned else 0))
                                  for code, unsigned in self.types))
            parts.extend(v for v in self.values if v is not None)
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes, param_count: int, bound: Sequence[ParamType] | None,
               long_data: Collection[int] = ()) -> Execute:
        """Decode a COM_STMT_EXECUTE (command byte included) for a statement with
        ``param_count`` parameters. ``bound`` are the types of the previous execution (clients
        may omit them); ``long_data`` the parameters sent with COM_STMT_SEND_LONG_DATA."""
        r = Reader(payload)
        if r.u8() != 0x17:
            raise ProtocolError("not a COM_STMT_EXECUTE packet")
        statement_id, flags, iterations = r.u32(), r.u8(), r.u32()
        out = cls(statement_id, flags, iterations, new_params_bound=False)
        if not param_count:
            return out
        nulls = r.fixed((param_count + 7) // 8)
        new_bound = r.u8() if r.remaining() else 0
        if new_bound not in (0, 1):
            raise ProtocolError(f"bad new-params-bound flag {new_bound}")
        if new_bound:
            types = []
            for _ in range(param_count):
                code, flag = r.u8(), r.u8()
                if code not in KNOWN_TYPES:
                    raise ProtocolError(f"unknown parameter type {code}")
                types.append((code, bool(flag & UNSIGNED_PARAM)))
            out.new_params_bound = True
        elif bound is not None and len(bound) == param_count:
            types = list(bound)
        else:
            raise ProtocolError("COM_STMT_EXECUTE without parameter types before any with them")
        values: list[bytes | None] = []
        for i, (code, unsigned) in enumerate(types):
            if nulls[i >> 3] & (1 << (i & 7)) or code == ColumnType.NULL or i in long_data:
                values.append(None)
                continue
            start = r.pos
            decode_value(code, unsigned, r)
            values.append(r.data[start:r.pos])
        out.types = types
        out.values = values
        return out


def null_bitmap(nulls: Sequence[bool], offset: int) -> bytes:
    """A NULL bitmap: bit ``i + offset`` set for each true entry."""
    bits = bytearray((len(nulls) + offset + 7) // 8)
    for i, is_null in enumerate(nulls):
        if is_null:
            j = i + offset
            bits[j >> 3] |= 1 << (j & 7)
    return bytes(bits)


# -- values ------------------------------------------------------------------------------------


def decode_value(code: int, unsigned: bool, r: Reader) -> Value:
    """Read one binary-protocol value of type ``code``."""
    if code in _INTS:
        return _INT_STRUCTS[(code, unsigned)].unpack(r.fixed(_INTS[code][0]))[0]
    if code in _STRINGS:
        return r.lenenc_str()
    if code == ColumnType.DOUBLE:
        return _DOUBLE.unpack(r.fixed(8))[0]
    if code == ColumnType.FLOAT:
        return _FLOAT.unpack(r.fixed(4))[0]
    if code in _DATES:
        n = r.u8()
        if n not in (0, 4, 7, 11):
            raise ProtocolError(f"bad date length {n}")
        if n == 0:
            return DateTime()
        year, month, day = r.u16(), r.u8(), r.u8()
        hour = minute = second = micro = 0
        if n >= 7:
            hour, minute, second = r.u8(), r.u8(), r.u8()
        if n == 11:
            micro = r.u32()
        return DateTime(year, month, day, hour, minute, second, micro)
    if code == ColumnType.TIME:
        n = r.u8()
        if n not in (0, 8, 12):
            raise ProtocolError(f"bad time length {n}")
        if n == 0:
            return Time()
        negative, days = r.u8(), r.u32()
        hour, minute, second = r.u8(), r.u8(), r.u8()
        micro = r.u32() if n == 12 else 0
        return Time(bool(negative), days, hour, minute, second, micro)
    if code == ColumnType.NULL:
        return None
    raise ProtocolError(f"unknown binary type {code}")


def encode_value(code: int, unsigned: bool, value: Value) -> bytes:
    """One binary-protocol value of type ``code`` (not NULL)."""
    if code in _INTS:
        return _INT_STRUCTS[(code, unsigned)].pack(value)
    if code in _STRINGS:
        return lenenc_bytes(value)  # type: ignore[arg-type]
    if code == ColumnType.DOUBLE:
        return _DOUBLE.pack(value)
    if code == ColumnType.FLOAT:
        return _FLOAT.pack(value)
    if code in _DATES:
        d: DateTime = value  # type: ignore[assignment]
        if d.microsecond:
            return (b"\x0b" + u16(d.year) + bytes((d.month, d.day, d.hour, d.minute, d.second))
                    + u32(d.microsecond))
        if d.hour or d.minute or d.second:
            return b"\x07" + u16(d.year) + bytes((d.month, d.day, d.hour, d.minute, d.second))
        if d.year or d.month or d.day:
            return b"\x04" + u16(d.year) + bytes((d.month, d.day))
        return b"\x00"
    if code == ColumnType.TIME:
        t: Time = value  # type: ignore[assignment]
        head = bytes((int(t.negative),)) + u32(t.days) + bytes((t.hour, t.minute, t.second))
        if t.microsecond:
            return b"\x0c" + head + u32(t.microsecond)
        if any(t[1:]):
            return b"\x08" + head
        return b"\x00"
    raise ValueError(f"cannot encode type {code} as a binary value")


_DATE_TEXT = re.compile(rb"(\d{1,4})-(\d{1,2})-(\d{1,2})"
                        rb"(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?)?")
_TIME_TEXT = re.compile(rb"(-)?(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?")


def value_from_text(code: int, unsigned: bool, text: bytes) -> Value:
    """A text-protocol value (as a backend sends it for a column of type ``code``) as the
    value the binary protocol sends. Raises ValueError when the text does not fit the type."""
    if code in _INTS:
        value = int(text)
        size = _INTS[code][0] * 8
        low, high = (0, 1 << size) if unsigned else (-(1 << (size - 1)), 1 << (size - 1))
        if not low <= value < high:
            raise ValueError(f"{value} does not fit type {code}")
        return value
    if code in (ColumnType.DOUBLE, ColumnType.FLOAT):
        return float(text)
    if code in _DATES:
        m = _DATE_TEXT.fullmatch(text)
        if m is None:
            raise ValueError(f"not a date: {text!r}")
        parts = [int(g) if g else 0 for g in m.groups()[:6]]
        micro = int((m.group(7) or b"0").ljust(6, b"0"))
        return DateTime(*parts, micro)
    if code == ColumnType.TIME:
        m = _TIME_TEXT.fullmatch(text)
        if m is None:
            raise ValueError(f"not a time: {text!r}")
        hours = int(m.group(2))
        micro = int((m.group(5) or b"0").ljust(6, b"0"))
        return Time(bool(m.group(1)), hours // 24, hours % 24, int(m.group(3)),
                    int(m.group(4)), micro)
    if code in _STRINGS:
        return text
    raise ValueError(f"no binary form for type {code}")


def value_to_text(code: int, value: Value) -> bytes:
    """The text-protocol form of a binary value (as MariaDB writes it)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, DateTime):
        date = b"%04d-%02d-%02d" % value[:3]
        if code == ColumnType.DATE:
            return date
        text = date + b" %02d:%02d:%02d" % value[3:6]
        return text + (b".%06d" % value.microsecond if value.microsecond else b"")
    if isinstance(value, Time):
        hours = value.days * 24 + value.hour
        text = b"%s%02d:%02d:%02d" % (b"-" if value.negative else b"", hours, value.minute,
                                      value.second)
        return text + (b".%06d" % value.microsecond if value.microsecond else b"")
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


_DECIMAL = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BINARY_STRINGS = frozenset({ColumnType.TINY_BLOB, ColumnType.MEDIUM_BLOB, ColumnType.LONG_BLOB,
                             ColumnType.BLOB, ColumnType.GEOMETRY, ColumnType.BIT})


def sql_literal(code: int, value: Value) -> bytes:
    """A parameter value as an SQL literal, for statements DAL sends as text (inserts split by
    shard, scatters). Strings that could be misread are sent as hex literals."""
    if value is None:
        return b"NULL"
    if isinstance(value, bool | int):
        return str(int(value)).encode()
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity have no SQL literal")
        if value.is_integer() and abs(value) < 2**63:  # JavaScript drivers send ints so
            return str(int(value)).encode()
        return repr(value).encode()
    if isinstance(value, DateTime | Time):
        return b"'" + value_to_text(ColumnType.DATETIME, value) + b"'"
    if code in (ColumnType.DECIMAL, ColumnType.NEWDECIMAL) and _DECIMAL.fullmatch(value):
        return value
    if code in _BINARY_STRINGS or b"\\" in value or b"\x00" in value:
        return b"X'" + value.hex().encode() + b"'"
    return b"'" + value.replace(b"'", b"''") + b"'"


# -- binary result rows ------------------------------------------------------------------------


def column_types(columns: Sequence) -> list[ParamType]:
    """(type, unsigned) of each column definition (objects with ``type`` and ``flags``)."""
    return [(c.type, bool(c.flags & ColumnFlag.UNSIGNED)) for c in columns]


def encode_binary_row(types: Sequence[ParamType], values: Sequence[Value]) -> bytes:
    """A binary result row: 0x00, the NULL bitmap (offset 2), then the non-NULL values."""
    parts = [b"\x00", null_bitmap([v is None for v in values], 2)]
    parts.extend(encode_value(code, unsigned, v)
                 for (code, unsigned), v in zip(types, values, strict=True) if v is not None)
    return b"".join(parts)


def decode_binary_row(payload: bytes, types: Sequence[ParamType]) -> list[Value]:
    """Split a binary result row into values; None for NULL."""
    r = Reader(payload)
    if r.u8() != 0:
        raise ProtocolError("binary row does not start with 0x00")
    nulls = r.fixed((len(types) + 9) // 8)
    values: list[Value] = []
    for i, (code, unsigned) in enumerate(types):
        j = i + 2
        if nulls[j >> 3] & (1 << (j & 7)):
            values.append(None)
        else:
            values.append(decode_value(code, unsigned, r))
    if r.remaining():
        raise ProtocolError(f"binary row has {r.remaining()} bytes after its values")
    return values
