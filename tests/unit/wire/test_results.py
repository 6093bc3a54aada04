"""`ResponseScanner`: finds where a relayed response ends, across arbitrary chunk boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.constants import MAX_PAYLOAD, Status
from dal.wire.framing import frame
from dal.wire.messages import EOF, ERR, OK, is_eof
from dal.wire.results import (
    FIELD_LIST,
    ONE_PACKET,
    RESULT,
    ResponseScanner,
    encode_result_set,
    text_column,
)
from router.rows.buffer import lenenc_int
from router.rows.columns import ColumnDefinition, decode_text_row, encode_text_row
from router.rows.errors import ProtocolError
from tests.unit.wire.helpers import chunk_sizes, chunked, physical_packets, receive

MORE = Status.MORE_RESULTS_EXISTS
u16s = st.integers(0, 0xFFFF)
u64s = st.integers(0, 2**64 - 1)
values = st.one_of(st.none(), st.binary(max_size=300))


@dataclass
class Response:
    """A framed response and what the scanner must report at its end."""

    stream: bytes = b""
    seq: int = 1
    status: int = 0
    warnings: int = 0
    error: bool = False
    parts: list[str] = field(default_factory=list)

    def add(self, framed: bytes) -> None:
        self.stream += framed
        self.seq = (physical_packets(framed)[-1][1] + 1) & 0xFF



def scan(scanner: ResponseScanner, stream: bytes,
         sizes: Sequence[int] | None) -> tuple[int, int | None]:
    """Feed ``stream`` in chunks. Returns (bytes claimed, stream offset at which done was first
    reported, or None). Checks that nothing is claimed after done."""
    used = 0
    done_at = None
    pos = 0
    for piece in chunked(stream, sizes):
        n = scanner.feed(piece)
        assert 0 <= n <= len(piece)
        if done_at is not None:
            assert n == 0, "bytes claimed after the response ended"
        elif n < len(piece):
            assert scanner.done, "part of a chunk refused while not done"
        used += n
        pos += len(piece)
        if scanner.done and done_at is None:
            done_at = pos
    return used, done_at


def check(resp: Response, deprecate_eof: bool, shape: int, sizes: Sequence[int] | None,
          garbage: bytes = b"", scanner: ResponseScanner | None = None) -> ResponseScanner:
    if scanner is None:
        scanner = ResponseScanner(deprecate_eof, shape)
    else:
        scanner.reset(shape)
    assert not scanner.done
    used, done_at = scan(scanner, resp.stream + garbage, sizes)
    assert scanner.done
    assert used == len(resp.stream)
    # done is reported by the chunk holding the response's last byte, not earlier.
    end = 0
    for piece in chunked(resp.stream + garbage, sizes):
        end += len(piece)
        if end >= len(resp.stream):
            break
    assert done_at == end
    assert scanner.error == resp.error
    if not resp.error:
        assert scanner.status == resp.status
        assert scanner.warnings == resp.warnings
    found = physical_packets(resp.stream)
    assert scanner.packets == len(found)
    assert scanner.last_seq == found[-1][1]
    return scanner


# -- strategies ----------------------------------------------------------------------------------

columns = st.lists(
    st.builds(text_column, st.text(max_size=20), type_=st.sampled_from([3, 8, 253, 252]),
              schema=st.text(max_size=10), table=st.text(max_size=10)),
    min_size=1, max_size=4)


@st.composite
def result_set(draw: st.DrawFn, resp: Response, deprecate_eof: bool, more: bool) -> None:
    cols = draw(columns)
    rows = draw(st.lists(st.lists(values, min_size=len(cols), max_size=len(cols)), max_size=6))
    status = draw(u16s) & ~MORE | (MORE if more else 0)
    warnings = draw(u16s)
    resp.add(encode_result_set(cols, rows, deprecate_eof=deprecate_eof, status=status,
                               warnings=warnings, seq=resp.seq))
    resp.status, resp.warnings = status, warnings
    resp.parts.append(f"rs{len(cols)}x{len(rows)}")


@st.composite
def ok_packet(draw: st.DrawFn, resp: Response, more: bool) -> None:
    status = draw(u16s) & ~MORE | (MORE if more else 0)
    state = b""
    if status & Status.SESSION_STATE_CHANGED:
        state = draw(st.binary(max_size=40))
    ok = OK(draw(u64s), draw(u64s), status, draw(u16s), draw(st.binary(max_size=300)), state)
    resp.add(frame(ok.encode(), resp.seq))
    resp.status, resp.warnings = status, ok.warnings
    resp.parts.append("ok")


@st.composite
def err_packet(draw: st.DrawFn, resp: Response) -> None:
    err = ERR(draw(u16s), draw(st.text(max_size=100)), "42000")
    resp.add(frame(err.encode(), resp.seq))
    resp.error = True
    resp.parts.append("err")


@st.composite
def responses(draw: st.DrawFn, deprecate_eof: bool) -> Response:
    """OK, ERR, or one or more results (result sets or OKs) chained by MORE_RESULTS_EXISTS,
    optionally ended by an ERR."""
    resp = Response(seq=draw(st.sampled_from([1, 250])))
    count = draw(st.integers(1, 4))
    ends_in_err = draw(st.integers(0, 4)) == 0
    for i in range(count):
        more = i < count - 1 or ends_in_err
        if draw(st.booleans()):
            draw(result_set(resp, deprecate_eof, more))
        else:
            draw(ok_packet(resp, more))
    if ends_in_err:
        draw(err_packet(resp))
    return resp


garbage = st.one_of(st.just(b""), st.binary(min_size=1, max_size=30),
                    st.just(frame(OK().encode(), 1)))


# -- result responses ----------------------------------------------------------------------------

@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_result_responses_whole_bytewise_chunked(deprecate_eof: bool, data: st.DataObject) -> None:
    resp = data.draw(responses(deprecate_eof), label="response")
    sizes = data.draw(chunk_sizes, label="sizes")
    extra = data.draw(garbage, label="garbage")
    for way in (None, [1], sizes):
        check(resp, deprecate_eof, RESULT, way)
        check(resp, deprecate_eof, RESULT, way, extra)


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@given(data=st.data())
@settings(max_examples=10, deadline=None)
def test_one_scanner_reused_for_many_responses(deprecate_eof: bool, data: st.DataObject) -> None:
    scanner = ResponseScanner(deprecate_eof)
    for _ in range(3):
        resp = data.draw(responses(deprecate_eof))
        check(resp, deprecate_eof, RESULT, data.draw(chunk_sizes), scanner=scanner)


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@pytest.mark.parametrize("warnings", [0, 1, 0x1234])
@pytest.mark.parametrize("status", [0, 0x0002, 0x0003, 0x4022])
def test_result_set_terminator_status_and_warnings(
        deprecate_eof: bool, warnings: int, status: int) -> None:
    """The smallest terminators: a 5-byte EOF, or a 7-byte 0xFE OK, which is shorter than 9
    bytes and must still be read as an OK (affected rows, insert id, status, warnings) under
    DEPRECATE_EOF."""
    resp = Response(status=status, warnings=warnings)
    resp.add(encode_result_set([text_column("a")], [[b"1"], [None]], deprecate_eof=deprecate_eof,
                               status=status, warnings=warnings))
    check(resp, deprecate_eof, RESULT, None)
    check(resp, deprecate_eof, RESULT, [1])


def test_deprecate_eof_terminator_with_affected_rows_and_info() -> None:
    """A 0xFE OK carrying multi-byte affected rows / insert id and an info string."""
    body = frame(lenenc_int(1), 1) + frame(text_column("a").encode(), 2) + frame(b"\x01x", 3)
    ok = OK(70000, 2**40, 0x0022, 7, b"info", header=0xFE)
    resp = Response(stream=body + frame(ok.encode(), 4), status=0x0022, warnings=7)
    check(resp, True, RESULT, None)
    check(resp, True, RESULT, [3])


def test_multi_result_sequence() -> None:
    """CALL-like: two result sets and a trailing OK, MORE_RESULTS_EXISTS on the first two."""
    resp = Response()
    for status in (MORE | 2, MORE | 3):
        resp.add(encode_result_set([text_column("a"), text_column("b")], [[b"1", None]],
                                   deprecate_eof=False, status=status, seq=resp.seq))
    resp.add(frame(OK(0, 0, 2, 1).encode(), resp.seq))
    resp.status, resp.warnings = 2, 1
    for way in (None, [1], [7, 3]):
        check(resp, False, RESULT, way, b"trailing")


def test_scanner_not_done_until_last_result() -> None:
    first = encode_result_set([text_column("a")], [[b"1"]], deprecate_eof=False, status=MORE)
    scanner = ResponseScanner(False)
    assert scanner.feed(first) == len(first)
    assert not scanner.done
    assert scanner.status & MORE
    last = frame(OK().encode(), 5)
    assert scanner.feed(last + b"zz") == len(last)
    assert scanner.done
    assert scanner.feed(b"more") == 0


def test_err_instead_of_result() -> None:
    resp = Response(stream=frame(ERR(1064, "syntax").encode(), 1), error=True)
    check(resp, False, RESULT, [1])


def test_err_replaces_terminator_mid_stream() -> None:
    full = encode_result_set([text_column("a")], [[b"1"], [b"2"]], deprecate_eof=False)
    # keep the column count, column def, EOF and one row; then an ERR
    pkts = physical_packets(full)
    cut = sum(4 + length for length, _ in pkts[:4])
    resp = Response(stream=full[:cut] + frame(ERR(1317, "interrupted").encode(), 5), error=True)
    check(resp, False, RESULT, None)
    check(resp, False, RESULT, [1])


def test_err_after_column_definitions() -> None:
    stream = frame(b"\x01", 1) + frame(text_column("a").encode(), 2) + frame(
        ERR(1105, "x").encode(), 3)
    check(Response(stream=stream, error=True), False, RESULT, [2])


def test_local_infile_request_refused() -> None:
    with pytest.raises(ProtocolError):
        ResponseScanner(False).feed(frame(b"\xfbfile.csv", 1))


@pytest.mark.parametrize("payload", [
    b"\x00", b"\x00\x00", b"\x00\x00\x00", b"\x00\x00\x00\x02\x00\x00",  # OK cut short
    b"\x00\xfc\x01", b"\x00\x00\xfe\x01",  # OK whose lenenc runs past its end
    b"\xfc\x01", b"\xfd\x01\x00", b"\xfe\x01\x02",  # column count cut short
])
@pytest.mark.parametrize("after", [b"", frame(b"\x00\x00\x00\x02\x00\x00\x00", 2)],
                         ids=["at_end", "followed"])
def test_truncated_first_packet_refused(payload: bytes, after: bytes) -> None:
    """A too-short OK or column count raises, and is not read past its own end (into the next
    packet, or off the end of the data)."""
    with pytest.raises(ProtocolError):
        ResponseScanner(False).feed(frame(payload, 1) + after)


@pytest.mark.parametrize("payload", [b"\xfe", b"\xfe\x00\x00", b"\xfe\x00\x00\x02\x00\x00"])
def test_truncated_fe_ok_refused_under_deprecate_eof(payload: bytes) -> None:
    head = frame(b"\x01", 1) + frame(text_column("a").encode(), 2)
    with pytest.raises(ProtocolError):
        ResponseScanner(True).feed(head + frame(payload, 3))


def test_missing_eof_after_columns_refused() -> None:
    stream = frame(b"\x01", 1) + frame(text_column("a").encode(), 2) + frame(b"\x01x", 3)
    with pytest.raises(ProtocolError):
        ResponseScanner(False).feed(stream)


# -- rows that start with 0xFE, and rows of 16 MiB and more ---------------------------------------

def big_rows_response(value: bytes, deprecate_eof: bool) -> Response:
    rows = [[b"small"], [value], [b"\xfe" * 20], [None]]
    resp = Response(status=2, warnings=3)
    resp.add(encode_result_set([text_column("blob", type_=251)], rows,
                               deprecate_eof=deprecate_eof, status=2, warnings=3))
    return resp


BIG_VALUES = {
    # first byte of the row is 0xFE (8-byte lenenc length): 2 packets, the second 10 bytes
    "fe_lenenc": b"\xfe" * (1 << 24),
    # payload of exactly 0xFFFFFF bytes (0xFD + 3-byte length): a full packet + an empty one
    "exact_16mib": b"\xfe" * (MAX_PAYLOAD - 4),
    # continuation packet of 2 bytes, FE FE or FF FF, which looks like an EOF or an ERR
    "tail_fe": b"\xfe" * ((1 << 24) - 3),
    "tail_ff": b"\xff" * ((1 << 24) - 3),
}


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@pytest.mark.parametrize("kind", BIG_VALUES)
def test_rows_over_16_mib(deprecate_eof: bool, kind: str) -> None:
    value = BIG_VALUES[kind]
    row = encode_text_row([value])
    assert len(row) >= MAX_PAYLOAD
    if kind == "fe_lenenc":
        assert row[0] == 0xFE
    resp = big_rows_response(value, deprecate_eof)
    packets = physical_packets(resp.stream)
    assert sum(1 for length, _ in packets if length == MAX_PAYLOAD) == 1
    for way in (None, [MAX_PAYLOAD + 3, 2, 5, 1 << 20]):
        check(resp, deprecate_eof, RESULT, way)
    received, _ = receive(resp.stream)
    assert decode_text_row(received[2 + (not deprecate_eof) + 1][2], 1) == [value]


def test_row_starting_with_fe_under_deprecate_eof_is_not_the_terminator() -> None:
    """Under DEPRECATE_EOF a 0xFE packet of 0xFFFFFF bytes is a row, not the closing OK."""
    value = b"v" * (1 << 24)
    resp = big_rows_response(value, True)
    scanner = ResponseScanner(True)
    cut = resp.stream.index(b"\xff\xff\xff") + 4 + 1  # up to the row's first byte
    assert resp.stream[cut - 1] == 0xFE
    assert scanner.feed(resp.stream[:cut]) == cut
    assert not scanner.done
    assert scanner.feed(resp.stream[cut:]) == len(resp.stream) - cut
    assert scanner.done and scanner.warnings == 3


@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@given(data=st.data())
@settings(max_examples=10, deadline=None)
def test_large_rows_split_across_chunks(deprecate_eof: bool, data: st.DataObject) -> None:
    """Rows of tens of kilobytes whose packets are cut anywhere by the chunking."""
    big = st.builds(lambda n, b: bytes((b,)) * n, st.integers(65530, 70010), st.integers(0, 255))
    rows = data.draw(st.lists(st.lists(st.one_of(st.none(), big), min_size=1, max_size=1),
                              min_size=1, max_size=3))
    resp = Response(status=2, warnings=1)
    resp.add(encode_result_set([text_column("a")], rows, deprecate_eof=deprecate_eof,
                               status=2, warnings=1))
    sizes = data.draw(st.lists(st.one_of(st.integers(1, 9), st.integers(1000, 50000)),
                               min_size=1, max_size=8))
    check(resp, deprecate_eof, RESULT, sizes)


# -- FIELD_LIST and ONE_PACKET -------------------------------------------------------------------

field_defs = st.lists(st.builds(ColumnDefinition, st.binary(max_size=20), st.integers(0, 255),
                                catalog=st.sampled_from([b"def", b"x" * 260]),
                                default=values), max_size=5)


@given(field_defs, u16s, u16s, chunk_sizes, garbage)
@settings(max_examples=30, deadline=None)
def test_field_list_response(cols: list[ColumnDefinition], warnings: int, status: int,
                             sizes: list[int], extra: bytes) -> None:
    resp = Response(status=status, warnings=warnings)
    for col in cols:
        resp.add(frame(col.encode(), resp.seq))
    resp.add(frame(EOF(warnings, status).encode(), resp.seq))
    for way in (None, [1], sizes):
        check(resp, False, FIELD_LIST, way, extra)
        check(resp, True, FIELD_LIST, way, extra)


def test_field_list_err() -> None:
    resp = Response(stream=frame(ERR(1146, "no such table").encode(), 1), error=True)
    check(resp, False, FIELD_LIST, [1])


def test_field_list_warnings_not_stale() -> None:
    scanner = ResponseScanner(False)
    check(Response(stream=frame(OK(0, 0, 2, 9).encode(), 1), status=2, warnings=9), False,
          RESULT, None, scanner=scanner)
    check(Response(stream=frame(EOF(0, 2).encode(), 1), status=2, warnings=0), False,
          FIELD_LIST, None, scanner=scanner)


@settings(max_examples=30)
@given(st.binary(min_size=1, max_size=300), chunk_sizes, garbage)
def test_one_packet_response(payload: bytes, sizes: list[int], extra: bytes) -> None:
    resp = Response(stream=frame(payload, 1), error=payload[0] == 0xFF)
    scanner = ResponseScanner(False, ONE_PACKET)
    used, _ = scan(scanner, resp.stream + extra, sizes)
    assert scanner.done
    assert used == len(resp.stream)
    assert scanner.error == resp.error


# -- encode_result_set itself --------------------------------------------------------------------

@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@given(cols=columns, data=st.data())
@settings(max_examples=25, deadline=None)
def test_encode_result_set_layout(deprecate_eof: bool, cols: list[ColumnDefinition],
                                  data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.lists(values, min_size=len(cols), max_size=len(cols)),
                              max_size=5))
    status, warnings = data.draw(u16s), data.draw(u16s)
    stream = encode_result_set(cols, rows, deprecate_eof=deprecate_eof, status=status,
                               warnings=warnings, seq=3)
    packets, rest = receive(stream)
    assert rest == b""
    assert [p[0] for p in packets] == [(3 + i) & 0xFF for i in range(len(packets))]
    payloads = [p[2] for p in packets]
    assert payloads[0] == lenenc_int(len(cols))
    assert [ColumnDefinition.decode(p) for p in payloads[1:1 + len(cols)]] == cols
    pos = 1 + len(cols)
    if not deprecate_eof:
        assert EOF.decode(payloads[pos]) == EOF(warnings, status)
        pos += 1
    assert [decode_text_row(p, len(cols)) for p in payloads[pos:-1]] == rows
    if deprecate_eof:
        assert payloads[-1][0] == 0xFE
        assert OK.decode(payloads[-1]) == OK(0, 0, status, warnings, header=0xFE)
    else:
        assert is_eof(payloads[-1])
        assert EOF.decode(payloads[-1]) == EOF(warnings, status)


# -- arbitrary bytes -----------------------------------------------------------------------------

SHAPES = {"result": RESULT, "field_list": FIELD_LIST, "one_packet": ONE_PACKET}


def valid_or_mutated() -> st.SearchStrategy[bytes]:
    sample = st.one_of(
        responses(False).map(lambda r: r.stream), responses(True).map(lambda r: r.stream))

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        raw = bytearray(draw(sample))
        for _ in range(draw(st.integers(0, 3))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw[:draw(st.integers(0, len(raw)))])

    return mutate()


@st.composite
def small_packets(draw: st.DrawFn) -> bytes:
    """Well-framed packets with arbitrary short bodies: truncated OK, EOF, ERR, counts."""
    items = draw(st.lists(st.binary(max_size=10), min_size=1, max_size=8))
    return b"".join(frame(p, i) for i, p in enumerate(items))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("deprecate_eof", [False, True], ids=["classic", "deprecate_eof"])
@given(stream=st.one_of(st.binary(max_size=200), small_packets(), valid_or_mutated()),
       sizes=chunk_sizes)
@settings(max_examples=40, deadline=None)
def test_arbitrary_bytes_raise_only_protocol_error(
        shape: str, deprecate_eof: bool, stream: bytes, sizes: list[int]) -> None:
    scanner = ResponseScanner(deprecate_eof, SHAPES[shape])
    try:
        used, _ = scan(scanner, stream, sizes)
    except ProtocolError:
        return
    assert used <= len(stream)
    if not scanner.done:
        assert used == len(stream)
