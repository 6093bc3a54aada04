"""Protocol messages: encode/decode round trips over the pairing helper, fuzzing, classification."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.constants import Capability, Status
from dal.wire.messages import EOF, ERR, OK, Handshake, HandshakeResponse, is_eof, is_err, is_ok
from router.rows.buffer import lenenc_bytes, lenenc_int
from router.rows.columns import ColumnDefinition, decode_text_row, encode_text_row
from router.rows.errors import ProtocolError
from tests.unit.wire.helpers import chunk_sizes, exchange

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFFFFFF)
u64s = st.integers(0, 2**64 - 1)
no_nul = st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"\x01"))
no_nul_nonempty = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\x00", b"\x01"))
# Servers never put a NUL in the scramble (MySQL and MariaDB draw printable bytes).
scrambles = st.binary(min_size=20, max_size=20).map(lambda b: b.replace(b"\x00", b"\x01"))
values = st.one_of(st.none(), st.binary(max_size=300))


# -- Handshake -----------------------------------------------------------------------------------

BASE_CAPS = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH


@st.composite
def handshakes(draw: st.DrawFn) -> Handshake:
    return Handshake(
        server_version=draw(no_nul),
        connection_id=draw(u32s),
        scramble=draw(scrambles),
        capabilities=BASE_CAPS | draw(u32s),
        collation=draw(u8s),
        status=draw(u16s),
        auth_plugin=draw(no_nul),
    )


@given(handshakes(), chunk_sizes)
@settings(max_examples=60)
def test_handshake_round_trip(hello: Handshake, sizes: list[int]) -> None:
    assert exchange([hello], Handshake.decode, seq=0, sizes=sizes) == [hello]


def test_handshake_layout() -> None:
    """HandshakeV10 as REFERENCE.md section 4 lays it out."""
    scramble = bytes(range(65, 85))
    caps = BASE_CAPS | Capability.DEPRECATE_EOF
    raw = Handshake(b"8.0.36-dal", 0x01020304, scramble, caps, 45, 2, b"caching_sha2_password"
                    ).encode()
    expected = (b"\x0a" + b"8.0.36-dal\x00" + b"\x04\x03\x02\x01" + scramble[:8] + b"\x00"
                + (caps & 0xFFFF).to_bytes(2, "little") + b"\x2d" + b"\x02\x00"
                + (caps >> 16).to_bytes(2, "little") + b"\x15" + b"\x00" * 10
                + scramble[8:] + b"\x00" + b"caching_sha2_password\x00")
    assert raw == expected


def test_handshake_decodes_a_mysql_greeting() -> None:
    """A MySQL 8 greeting as captured on the wire (scramble bytes replaced)."""
    scramble = b"ABCDEFGHIJKLMNOPQRST"
    raw = (b"\x0a8.0.36\x00" + b"\x0b\x00\x00\x00" + scramble[:8] + b"\x00" + b"\xff\xff"
           + b"\xff" + b"\x02\x00" + b"\xff\xdf" + b"\x15" + b"\x00" * 10 + scramble[8:]
           + b"\x00" + b"caching_sha2_password\x00")
    hello = Handshake.decode(raw)
    assert hello.server_version == b"8.0.36"
    assert hello.connection_id == 11
    assert hello.scramble == scramble
    assert hello.capabilities == 0xDFFFFFFF
    assert hello.collation == 255
    assert hello.status == Status.AUTOCOMMIT
    assert hello.auth_plugin == b"caching_sha2_password"


# -- HandshakeResponse ---------------------------------------------------------------------------

LAYOUT_BITS = [
    Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA,
    Capability.SECURE_CONNECTION,
    Capability.CONNECT_WITH_DB,
    Capability.PLUGIN_AUTH,
    Capability.CONNECT_ATTRS,
]
LAYOUTS = [
    sum((bit for bit, on in zip(LAYOUT_BITS, combo, strict=True) if on), Capability(0))
    for combo in itertools.product([False, True], repeat=len(LAYOUT_BITS))
]
LAYOUT_MASK = sum(LAYOUT_BITS, Capability(0))


@st.composite
def handshake_responses(draw: st.DrawFn, layout: int) -> HandshakeResponse:
    other = draw(u32s) & ~LAYOUT_MASK
    caps = Capability.PROTOCOL_41 | layout | other
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth = draw(st.binary(max_size=300))
    elif caps & Capability.SECURE_CONNECTION:
        auth = draw(st.binary(max_size=255))
    else:
        auth = draw(no_nul)
    database = draw(st.one_of(st.none(), no_nul_nonempty))
    plugin = draw(no_nul)
    attrs = draw(st.dictionaries(st.binary(max_size=30), st.binary(max_size=300), max_size=6))
    return HandshakeResponse(caps, draw(u32s), draw(u8s), draw(no_nul), auth, database, plugin,
                             attrs)


def as_received(msg: HandshakeResponse) -> HandshakeResponse:
    """What the other side decodes: fields whose capability bit is clear are not sent."""
    caps = msg.capabilities
    return HandshakeResponse(
        caps, msg.max_packet, msg.collation, msg.user, msg.auth_response,
        msg.database if caps & Capability.CONNECT_WITH_DB else None,
        msg.auth_plugin if caps & Capability.PLUGIN_AUTH else None,
        msg.attributes if caps & Capability.CONNECT_ATTRS else {},
    )


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda c: f"0x{int(c):06x}")
@given(data=st.data())
@settings(max_examples=8)
def test_handshake_response_round_trip(layout: int, data: st.DataObject) -> None:
    msg = data.draw(handshake_responses(layout))
    sizes = data.draw(chunk_sizes)
    assert exchange([msg], HandshakeResponse.decode, seq=1, sizes=sizes) == [as_received(msg)]


def test_handshake_response_layout() -> None:
    caps = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.CONNECT_WITH_DB
            | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
            | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA)
    auth = bytes(range(20))
    raw = HandshakeResponse(caps, 1 << 24, 45, b"app", auth, b"trade", b"mysql_native_password",
                            {b"_client_name": b"pymysql"}).encode()
    attrs = lenenc_bytes(b"_client_name") + lenenc_bytes(b"pymysql")
    assert raw == (int(caps).to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + b"\x2d"
                   + b"\x00" * 23 + b"app\x00" + b"\x14" + auth + b"trade\x00"
                   + b"mysql_native_password\x00" + lenenc_int(len(attrs)) + attrs)


def test_handshake_response_without_protocol_41_refused() -> None:
    raw = HandshakeResponse(Capability.SECURE_CONNECTION, 0, 45, b"u", b"").encode()
    with pytest.raises(ProtocolError) as exc:
        HandshakeResponse.decode(raw)
    assert exc.value.code == 1043


def test_handshake_response_with_database_only() -> None:
    """Some clients stop after the database and omit its NUL."""
    caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.CONNECT_WITH_DB
    raw = HandshakeResponse(caps, 0, 45, b"u", b"x" * 20, b"db").encode()[:-1]
    assert HandshakeResponse.decode(raw).database == b"db"


# -- OK, ERR, EOF --------------------------------------------------------------------------------

@st.composite
def oks(draw: st.DrawFn) -> OK:
    with_state = draw(st.booleans())
    status = draw(u16s)
    if with_state:
        status |= Status.SESSION_STATE_CHANGED
        state = draw(st.binary(max_size=300))
    else:
        status &= ~Status.SESSION_STATE_CHANGED
        state = b""
    return OK(draw(u64s), draw(u64s), status, draw(u16s),
              draw(st.one_of(st.just(b""), st.binary(max_size=300))), state,
              draw(st.sampled_from([0x00, 0xFE])))


@given(st.lists(oks(), min_size=1, max_size=4), chunk_sizes)
@settings(max_examples=60)
def test_ok_round_trip(items: list[OK], sizes: list[int]) -> None:
    assert exchange(items, OK.decode, seq=1, sizes=sizes) == items


@pytest.mark.parametrize("header", [0x00, 0xFE])
@pytest.mark.parametrize("info", [b"", b"Rows matched: 1  Changed: 1  Warnings: 0"])
@pytest.mark.parametrize("state", [None, b"", b"\x00\x0c\x0aautocommit\x02ON"])
def test_ok_layout(header: int, info: bytes, state: bytes | None) -> None:
    """header, affected, insert id, status, warnings; then info (lenenc) when there is info or
    session state; then the session state when SESSION_STATE_CHANGED is set."""
    status = Status.AUTOCOMMIT | (Status.SESSION_STATE_CHANGED if state is not None else 0)
    msg = OK(300, 5, status, 2, info, state or b"", header)
    expected = bytes((header,)) + b"\xfc\x2c\x01" + b"\x05" + int(status).to_bytes(2, "little") \
        + b"\x02\x00"
    if state is not None:
        expected += lenenc_bytes(info) + lenenc_bytes(state)
    elif info:
        expected += lenenc_bytes(info)
    assert msg.encode() == expected
    assert OK.decode(expected) == msg


def test_minimal_ok() -> None:
    raw = OK().encode()
    assert raw == b"\x00\x00\x00\x02\x00\x00\x00"
    assert OK.decode(raw) == OK()


@settings(max_examples=50)
@given(u16s, st.text(max_size=200),
       st.text(alphabet="0123456789ABCDEFHYZ", min_size=5, max_size=5), chunk_sizes)
def test_err_round_trip(code: int, message: str, sqlstate: str, sizes: list[int]) -> None:
    message = message.encode("utf-8", "replace").decode("utf-8")
    err = ERR(code, message, sqlstate)
    assert exchange([err], ERR.decode, seq=1, sizes=sizes) == [err]


def test_err_layout() -> None:
    raw = ERR(1045, "Access denied", "28000").encode()
    assert raw == b"\xff\x15\x04#28000Access denied"
    assert is_err(raw)


def test_err_without_sqlstate() -> None:
    """Pre-4.1 style ERR (no '#'): SQLSTATE defaults to HY000."""
    assert ERR.decode(b"\xff\x15\x04Access denied") == ERR(1045, "Access denied", "HY000")


@settings(max_examples=30)
@given(u16s, u16s, chunk_sizes)
def test_eof_round_trip(warnings: int, status: int, sizes: list[int]) -> None:
    eof = EOF(warnings, status)
    raw = eof.encode()
    assert raw == b"\xfe" + warnings.to_bytes(2, "little") + status.to_bytes(2, "little")
    assert exchange([eof], EOF.decode, seq=3, sizes=sizes) == [eof]


# -- column definitions and rows -----------------------------------------------------------------

@st.composite
def column_definitions(draw: st.DrawFn) -> ColumnDefinition:
    name = st.binary(max_size=300)
    return ColumnDefinition(
        name=draw(name), type=draw(u8s), schema=draw(name), table=draw(name),
        org_table=draw(name), org_name=draw(name), charset=draw(u16s), length=draw(u32s),
        flags=draw(u16s), decimals=draw(u8s), catalog=draw(st.sampled_from([b"def", b""])),
        default=draw(values),
    )


@given(st.lists(column_definitions(), min_size=1, max_size=5), chunk_sizes)
@settings(max_examples=30)
def test_column_definition_round_trip(cols: list[ColumnDefinition], sizes: list[int]) -> None:
    assert exchange(cols, ColumnDefinition.decode, seq=2, sizes=sizes) == cols


def test_column_definition_layout() -> None:
    col = ColumnDefinition(b"id", 8, b"trade", b"t", b"t_0", b"id", 63, 20, 0x20 | 1, 0)
    assert col.encode() == (b"\x03def\x05trade\x01t\x03t_0\x02id\x02id\x0c" + b"\x3f\x00"
                            + b"\x14\x00\x00\x00" + b"\x08" + b"\x21\x00" + b"\x00" + b"\x00\x00")


@given(st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=8), chunk_sizes)
@settings(max_examples=50)
def test_text_rows_with_nulls_round_trip(
        rows: list[list[bytes | None]], sizes: list[int]) -> None:
    payloads = [encode_text_row(row) for row in rows]
    assert exchange(payloads, lambda p: decode_text_row(p, 3), seq=5, sizes=sizes) == rows


def test_text_row_null_and_empty_differ() -> None:
    assert encode_text_row([None, b"", b"a"]) == b"\xfb\x00\x01a"
    assert decode_text_row(b"\xfb\x00\x01a", 3) == [None, b"", b"a"]


def test_text_row_column_count_mismatch() -> None:
    with pytest.raises(ProtocolError):
        decode_text_row(b"\x01a\x01b", 1)
    with pytest.raises(ProtocolError):
        decode_text_row(b"\x01a", 2)


# -- arbitrary bytes raise only ProtocolError ----------------------------------------------------

DECODERS: dict[str, Callable[[bytes], object]] = {
    "Handshake": Handshake.decode,
    "HandshakeResponse": HandshakeResponse.decode,
    "OK": OK.decode,
    "ERR": ERR.decode,
    "EOF": EOF.decode,
    "ColumnDefinition": ColumnDefinition.decode,
    "text_row_1": lambda p: decode_text_row(p, 1),
    "text_row_4": lambda p: decode_text_row(p, 4),
}

# Valid encodings to mutate, so the fuzzing reaches past the first few fields.
SAMPLES = [
    Handshake(b"8.0.36", 7, b"A" * 20, 0xFFFFFFFF).encode(),
    HandshakeResponse(0xFFFFFFFF, 1 << 24, 45, b"app", b"x" * 20, b"db", b"p",
                      {b"k": b"v"}).encode(),
    HandshakeResponse(int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
                          | Capability.CONNECT_ATTRS), 0, 45, b"app", b"x" * 3,
                      attributes={b"k": b"v"}).encode(),
    OK(1, 2, 0x4002, 3, b"info", b"\x00\x01\x00").encode(),
    ERR(1045, "no", "28000").encode(),
    EOF(1, 2).encode(),
    ColumnDefinition(b"c", 253, default=b"x").encode(),
    encode_text_row([b"a", None, b"ccc", b""]),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 3))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(u8s)
    cut = draw(st.integers(0, len(raw)))
    return bytes(raw[:cut]) + draw(st.binary(max_size=4))


@pytest.mark.parametrize("name", DECODERS)
@given(payload=st.one_of(st.binary(max_size=120), mutated()))
@settings(max_examples=80)
def test_decode_arbitrary_bytes_raises_only_protocol_error(name: str, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        DECODERS[name](payload)


# -- classification ------------------------------------------------------------------------------

@settings(max_examples=30)
@given(st.binary(max_size=20))
def test_classification_rules(payload: bytes) -> None:
    first = payload[0] if payload else None
    assert is_eof(payload) == (first == 0xFE and len(payload) < 9)
    assert is_ok(payload) == (first == 0x00 and len(payload) >= 7)
    assert is_err(payload) == (first == 0xFF)
    assert is_eof(payload) + is_ok(payload) + is_err(payload) <= 1


def test_classification_of_encoded_messages() -> None:
    eof = EOF(0, 2).encode()
    assert (is_eof(eof), is_ok(eof), is_err(eof)) == (True, False, False)
    ok = OK().encode()
    assert (is_eof(ok), is_ok(ok), is_err(ok)) == (False, True, False)
    err = ERR(1064, "syntax").encode()
    assert (is_eof(err), is_ok(err), is_err(err)) == (False, False, True)
    assert not (is_eof(b"") or is_ok(b"") or is_err(b""))


@settings(max_examples=30)
@given(st.binary(min_size=8, max_size=64))
def test_text_row_starting_with_fe_is_not_eof(rest: bytes) -> None:
    """A row whose first value is a lenenc string of 2^24 bytes or more starts with 0xFE and is
    at least 9 bytes long: never an EOF."""
    assert not is_eof(b"\xfe" + rest)


def test_long_text_row_is_not_eof() -> None:
    row = encode_text_row([b"v" * (1 << 24)])
    assert row[0] == 0xFE
    assert not is_eof(row)
    assert not is_ok(row)


def test_short_fe_ok_looks_like_eof() -> None:
    """A 0xFE OK (DEPRECATE_EOF terminator) with small fields is under 9 bytes, so is_eof() says
    EOF: only the negotiated DEPRECATE_EOF tells them apart (the result scanner's job)."""
    raw = OK(header=0xFE).encode()
    assert len(raw) == 7
    assert is_eof(raw)
    assert not is_ok(raw)
