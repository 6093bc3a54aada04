"""Length-encoded integers and strings, and the bounds-checked `Reader`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.rows.buffer import Reader, lenenc_bytes, lenenc_int, u16, u32
from router.rows.errors import ProtocolError

# Every range boundary of the length-encoded integer, with its encoded size and first byte.
BOUNDARIES = [
    (0, 1, 0x00),
    (250, 1, 0xFA),
    (251, 3, 0xFC),
    (2**16 - 1, 3, 0xFC),
    (2**16, 4, 0xFD),
    (2**24 - 1, 4, 0xFD),
    (2**24, 9, 0xFE),
    (2**64 - 1, 9, 0xFE),
]

u64s = st.integers(0, 2**64 - 1)


@pytest.mark.parametrize(("value", "size", "first"), BOUNDARIES)
def test_lenenc_int_boundaries(value: int, size: int, first: int) -> None:
    encoded = lenenc_int(value)
    assert len(encoded) == size
    assert encoded[0] == first
    r = Reader(encoded)
    assert r.lenenc_int() == value
    assert r.remaining() == 0


@pytest.mark.parametrize(("value", "size", "first"), BOUNDARIES)
def test_lenenc_int_boundaries_inside_a_stream(value: int, size: int, first: int) -> None:
    r = Reader(b"\x07" + lenenc_int(value) + b"\x04tail")
    assert r.u8() == 7
    assert r.lenenc_int() == value
    assert r.lenenc_str() == b"tail"
    assert r.remaining() == 0


def test_lenenc_int_first_byte_markers() -> None:
    assert Reader(b"\xfb").lenenc_int() is None
    with pytest.raises(ProtocolError):
        Reader(b"\xff").lenenc_int()


@pytest.mark.parametrize("value", [-1, 2**64, 2**70])
def test_lenenc_int_out_of_range_refused(value: int) -> None:
    with pytest.raises(ValueError):
        lenenc_int(value)


@settings(max_examples=30)
@given(u64s)
def test_lenenc_int_round_trip(value: int) -> None:
    encoded = lenenc_int(value)
    expected_size = 1 if value < 251 else 3 if value < 2**16 else 4 if value < 2**24 else 9
    assert len(encoded) == expected_size
    r = Reader(encoded)
    assert r.lenenc_int() == value
    assert r.remaining() == 0


@settings(max_examples=30)
@given(st.lists(u64s, max_size=20))
def test_lenenc_int_sequence_round_trip(values: list[int]) -> None:
    r = Reader(b"".join(lenenc_int(v) for v in values))
    assert [r.lenenc_int() for _ in values] == values
    assert r.remaining() == 0


@settings(max_examples=30)
@given(u64s)
def test_truncated_lenenc_int_raises_protocol_error(value: int) -> None:
    encoded = lenenc_int(value)
    for cut in range(len(encoded)):
        with pytest.raises(ProtocolError):
            Reader(encoded[:cut]).lenenc_int()


@settings(max_examples=30)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=10))
def test_lenenc_bytes_round_trip_with_null(values: list[bytes | None]) -> None:
    encoded = b"".join(lenenc_bytes(v) for v in values)
    r = Reader(encoded)
    assert [r.lenenc_bytes() for _ in values] == values
    assert r.remaining() == 0


def test_lenenc_null_marker() -> None:
    assert lenenc_bytes(None) == b"\xfb"
    assert lenenc_bytes(b"") == b"\x00"
    assert Reader(b"\xfb").lenenc_bytes() is None
    with pytest.raises(ProtocolError):
        Reader(b"\xfb").lenenc_str()


@pytest.mark.parametrize("size", [0, 250, 251, 2**16 - 1, 2**16, 70_000])
def test_lenenc_bytes_size_boundaries(size: int) -> None:
    value = bytes(i % 251 for i in range(size))
    encoded = lenenc_bytes(value)
    r = Reader(encoded)
    assert r.lenenc_str() == value
    assert r.remaining() == 0
    with pytest.raises(ProtocolError):
        Reader(encoded[:-1]).lenenc_str()


def test_lenenc_bytes_of_16_mib() -> None:
    value = b"\xab" * 2**24
    encoded = lenenc_bytes(value)
    assert encoded[:9] == b"\xfe" + (2**24).to_bytes(8, "little")
    assert Reader(encoded).lenenc_str() == value


@settings(max_examples=30)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFF),
       st.integers(0, 2**64 - 1))
def test_fixed_width_ints_round_trip(a: int, b: int, c: int, d: int) -> None:
    r = Reader(u16(a) + u32(b) + c.to_bytes(3, "little") + d.to_bytes(8, "little") + b"\x09")
    assert (r.u16(), r.u32(), r.u24(), r.u64(), r.u8()) == (a, b, c, d, 9)
    assert r.remaining() == 0


def test_null_terminated_and_rest() -> None:
    r = Reader(b"abc\x00def\x00gh")
    assert r.null_terminated() == b"abc"
    assert r.null_terminated_or_rest() == b"def"
    assert r.null_terminated_or_rest() == b"gh"
    assert r.remaining() == 0
    assert r.rest() == b""
    with pytest.raises(ProtocolError):
        r.null_terminated()
    with pytest.raises(ProtocolError):
        Reader(b"no terminator").null_terminated()


# -- arbitrary bytes raise only ProtocolError ----------------------------------------------------

READS = ["u8", "u16", "u24", "u32", "u64", "fixed", "rest", "null_terminated",
         "null_terminated_or_rest", "lenenc_int", "lenenc_bytes", "lenenc_str", "remaining"]


def _call(r: Reader, method: str, n: int) -> object:
    if method == "fixed":
        return r.fixed(n)
    return getattr(r, method)()


@pytest.mark.parametrize("method", READS)
@given(data=st.binary(max_size=40), n=st.integers(-5, 50))
@settings(max_examples=60)
def test_each_read_on_arbitrary_bytes_raises_only_protocol_error(
        method: str, data: bytes, n: int) -> None:
    r = Reader(data)
    try:
        _call(r, method, n)
    except ProtocolError:
        return
    assert 0 <= r.pos <= len(data)


@given(data=st.binary(max_size=64), pos=st.integers(0, 80),
       calls=st.lists(st.tuples(st.sampled_from(READS), st.integers(-3, 40)), max_size=30))
@settings(max_examples=150)
def test_read_sequences_on_arbitrary_bytes_raise_only_protocol_error(
        data: bytes, pos: int, calls: list[tuple[str, int]]) -> None:
    r = Reader(data, pos)
    for method, n in calls:
        before = r.pos
        try:
            _call(r, method, n)
        except ProtocolError:
            continue
        assert before <= r.pos <= max(len(data), before)


@settings(max_examples=30)
@given(st.binary(max_size=64))
def test_reader_accepts_bytearray_and_memoryview(data: bytes) -> None:
    for source in (bytearray(data), memoryview(data)):
        r = Reader(source)
        assert r.rest() == data
