"""The binary protocol codec: every type round-trips; arbitrary bytes raise only ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.binary import (
    DateTime,
    Execute,
    PrepareOk,
    Time,
    decode_binary_row,
    decode_value,
    encode_binary_row,
    encode_value,
    sql_literal,
    value_from_text,
    value_to_text,
)
from router.params import param_count
from router.rows.buffer import Reader
from router.rows.errors import ProtocolError
from router.rows.types import ColumnType as T

INT_BITS = {T.TINY: 8, T.SHORT: 16, T.YEAR: 16, T.LONG: 32, T.INT24: 32, T.LONGLONG: 64}
STRINGS = [T.DECIMAL, T.NEWDECIMAL, T.VARCHAR, T.BIT, T.JSON, T.ENUM, T.SET, T.TINY_BLOB,
           T.MEDIUM_BLOB, T.LONG_BLOB, T.BLOB, T.VAR_STRING, T.STRING, T.GEOMETRY]

datetimes = st.builds(DateTime, st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31),
                      st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                      st.integers(0, 999999))
times = st.builds(Time, st.booleans(), st.integers(0, 34), st.integers(0, 23),
                  st.integers(0, 59), st.integers(0, 59), st.integers(0, 999999)).map(
    lambda t: t if any(t[1:]) else Time())  # -00:00:00 is zero, and is sent as zero


@st.composite
def typed_values(draw):
    """(type, unsigned, value) for every binary-protocol type."""
    kind = draw(st.sampled_from(["int", "float", "double", "string", "date", "datetime",
                                 "time"]))
    if kind == "int":
        code = draw(st.sampled_from(sorted(INT_BITS)))
        unsigned = draw(st.booleans())
        bits = INT_BITS[code]
        low, high = (0, (1 << bits) - 1) if unsigned else (-(1 << bits - 1), (1 << bits - 1) - 1)
        return code, unsigned, draw(st.integers(low, high))
    if kind == "float":
        value = draw(st.floats(width=32, allow_nan=False))
        return T.FLOAT, False, value
    if kind == "double":
        return T.DOUBLE, False, draw(st.floats(allow_nan=False))
    if kind == "string":
        return draw(st.sampled_from(STRINGS)), False, draw(st.binary(max_size=300))
    if kind == "date":
        d = draw(datetimes)
        return T.DATE, False, DateTime(d.year, d.month, d.day)
    if kind == "datetime":
        return draw(st.sampled_from([T.DATETIME, T.TIMESTAMP])), False, draw(datetimes)
    return T.TIME, False, draw(times)


@given(typed_values())
def test_every_type_round_trips(item):
    code, unsigned, value = item
    data = encode_value(code, unsigned, value)
    r = Reader(data)
    assert decode_value(code, unsigned, r) == value
    assert r.remaining() == 0


@given(st.lists(st.one_of(typed_values(), st.just(None)), max_size=20))
def test_rows_round_trip_with_nulls(items):
    types = [(T.NULL, False) if i is None else (i[0], i[1]) for i in items]
    values = [None if i is None else i[2] for i in items]
    row = encode_binary_row(types, values)
    assert row[0] == 0 and len(row) >= 1 + (len(items) + 9) // 8
    assert decode_binary_row(row, types) == values


def _parameter(item) -> bool:
    """Not INT24 or YEAR: MariaDB binds such parameters as NULL and reads none of their bytes,
    so COM_STMT_EXECUTE refuses them (`test_int24_and_year_parameters_are_refused`)."""
    return item is None or item[0] not in (T.INT24, T.YEAR)


@given(st.lists(st.one_of(typed_values(), st.just(None)).filter(_parameter), max_size=20),
       st.booleans())
def test_execute_round_trips(items, cursor):
    types = [(T.VAR_STRING, False) if i is None else (i[0], i[1]) for i in items]
    values = [None if i is None else encode_value(*i) for i in items]
    ex = Execute(7, int(cursor), 1, types, values)
    back = Execute.decode(ex.encode(), len(items), None)
    assert (back.statement_id, back.flags, back.iterations) == (7, int(cursor), 1)
    assert back.values == values
    if items:
        assert back.types == types and back.new_params_bound
        # A re-execution may leave the types out: the ones bound before are used.
        bare = ex.encode()
        nbytes = (len(items) + 7) // 8
        head = bare[:10 + nbytes]
        rest = bare[10 + nbytes + 1 + 2 * len(items):]
        again = Execute.decode(head + b"\x00" + rest, len(items), types)
        assert again.values == values and not again.new_params_bound
        for i, item in enumerate(items):
            assert back.value(i) == (None if item is None else item[2])


def test_long_data_parameters_are_not_in_the_packet():
    ex = Execute(1, 0, 1, [(T.BLOB, False), (T.LONG, False)], [None, encode_value(T.LONG, 0, 5)])
    payload = ex.encode()
    back = Execute.decode(payload, 2, None, long_data={0})
    assert back.values[1] == encode_value(T.LONG, False, 5) and back.values[0] is None


def test_execute_without_types_first_is_refused():
    one = (1).to_bytes(4, "little")
    payload = b"\x17" + one + b"\x00" + one + b"\x00\x00"
    with pytest.raises(ProtocolError):
        Execute.decode(payload, 1, None)


def test_prepare_ok_round_trips():
    ok = PrepareOk(42, 3, 2, 1)
    assert PrepareOk.decode(ok.encode()) == ok
    assert len(ok.encode()) == 12


@given(st.binary(max_size=200), st.integers(0, 12))
@settings(max_examples=500)
def test_arbitrary_execute_bytes_raise_only_protocol_error(data, params):
    with contextlib.suppress(ProtocolError):
        Execute.decode(b"\x17" + data, params, None)


@given(st.binary(max_size=200), st.lists(st.sampled_from(sorted(INT_BITS) + STRINGS
                                                         + [T.FLOAT, T.DOUBLE, T.DATE, T.TIME,
                                                            T.DATETIME]), max_size=10))
@settings(max_examples=500)
def test_arbitrary_row_bytes_raise_only_protocol_error(data, codes):
    with contextlib.suppress(ProtocolError):
        decode_binary_row(data, [(c, False) for c in codes])


@given(st.binary(max_size=40))
def test_arbitrary_prepare_ok_bytes_raise_only_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        PrepareOk.decode(data)


@given(typed_values())
def test_text_form_converts_back(item):
    code, unsigned, value = item
    if code in (T.FLOAT, T.DOUBLE) or (code == T.TIME and value.days > 34):
        return
    text = value_to_text(code, value)
    assert value_from_text(code, unsigned, text) == value


def test_text_forms_as_mariadb_writes_them():
    assert value_from_text(T.DATETIME, False, b"2024-02-29 23:59:58.120000") == \
        DateTime(2024, 2, 29, 23, 59, 58, 120000)
    assert value_from_text(T.DATE, False, b"0000-00-00") == DateTime()
    assert value_from_text(T.TIME, False, b"-838:59:59.5") == Time(True, 34, 22, 59, 59, 500000)
    assert value_from_text(T.LONGLONG, True, b"18446744073709551615") == 2**64 - 1
    with pytest.raises(ValueError):
        value_from_text(T.TINY, False, b"200")


def test_sql_literals():
    assert sql_literal(T.LONGLONG, 5) == b"5"
    assert sql_literal(T.VAR_STRING, b"it's") == b"'it''s'"
    assert sql_literal(T.VAR_STRING, b"a\\b") == b"X'615c62'"
    assert sql_literal(T.BLOB, b"\x00") == b"X'00'"
    assert sql_literal(T.NEWDECIMAL, b"-12.50") == b"-12.50"
    assert sql_literal(T.NEWDECIMAL, b"1; DROP") == b"'1; DROP'"
    assert sql_literal(T.DATETIME, DateTime(2024, 1, 2, 3, 4, 5, 6)) == \
        b"'2024-01-02 03:04:05.000006'"
    assert sql_literal(T.NULL, None) == b"NULL"
    assert sql_literal(T.DOUBLE, 31.0) == b"31" and sql_literal(T.DOUBLE, 0.5) == b"0.5"


def test_param_markers_skip_strings_and_comments():
    assert param_count(b"SELECT ? FROM t WHERE a = '?' AND `?` = ? /* ? */ -- ?\n") == 2


@given(st.lists(st.one_of(typed_values(), st.just(None)), min_size=1, max_size=8),
       st.integers(0, 5), st.integers(1, 64))
def test_scanner_finds_the_end_of_binary_result_sets(items, nrows, chunk):
    """The relay's ResponseScanner frames binary results as text ones: byte by byte or in
    chunks, it ends exactly at the final EOF and reads its status."""
    from dal.wire.framing import frame
    from dal.wire.messages import EOF
    from dal.wire.results import ResponseScanner
    from router.rows.buffer import lenenc_int
    from router.rows.columns import ColumnDefinition

    types = [(T.VAR_STRING, False) if i is None else (i[0], i[1]) for i in items]
    values = [None if i is None else i[2] for i in items]
    payloads = [lenenc_int(len(items))]
    payloads += [ColumnDefinition(name=b"c", type=code).encode() for code, _ in types]
    payloads.append(EOF(0, 2).encode())
    payloads += [encode_binary_row(types, values)] * nrows
    payloads.append(EOF(1, 0x22).encode())
    data = b"".join(frame(p, i + 1) for i, p in enumerate(payloads))
    scanner = ResponseScanner(deprecate_eof=False)
    used = 0
    for start in range(0, len(data), chunk):
        used += scanner.feed(data[start:start + chunk])
    assert scanner.done and used == len(data)
    assert (scanner.status, scanner.warnings) == (0x22, 1)


@pytest.mark.parametrize("code", [T.INT24, T.YEAR])
def test_int24_and_year_parameters_are_refused(code) -> None:
    ex = Execute(7, 0, 1, [(code, False)], [encode_value(code, False, 5)])
    with pytest.raises(ProtocolError, match=f"unknown parameter type {int(code)}"):
        Execute.decode(ex.encode(), 1, None)
