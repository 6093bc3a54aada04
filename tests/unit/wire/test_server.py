"""The server-role connection (dal/wire/server.py), driven with bytes only: no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.constants import MAX_PAYLOAD
from dal.wire.events import (
    AuthPacket,
    ComChangeUser,
    ComFieldList,
    ComInitDb,
    ComPing,
    ComQuery,
    ComQuit,
    ComResetConnection,
    ComSetOption,
    ComStatistics,
    ComStmtBulkExecute,
    ComStmtClose,
    ComStmtExecute,
    ComStmtFetch,
    ComStmtPrepare,
    ComStmtReset,
    ComStmtSendLongData,
    EmptyPacket,
    ProtocolViolation,
    UnknownCommand,
)
from dal.wire.framing import frame
from dal.wire.server import CLOSED, COMMAND, LOGIN, ServerConnection, decode_command
from tests.unit.wire.helpers import chunk_sizes, chunked


def logged_in(max_payload: int = 1 << 20) -> ServerConnection:
    conn = ServerConnection(max_payload)
    conn.logged_in()
    return conn


def whole_command(conn: ServerConnection, data: bytes) -> object | None:
    """What the front end's hot path makes of ``data``: the command event of a chunk that
    `whole_packet` recognises (the front end runs COM_QUERY and COM_STMT_EXECUTE from the
    payload itself, and decodes the rest), else None."""
    if conn.whole_packet(data) < 0:
        return None
    return decode_command(data[4:], 0, data)


def plain(event: object) -> object:
    """``event`` without the packet only the hot path keeps (`ComQuery.raw`)."""
    if isinstance(event, ComQuery):
        return ComQuery(event.payload, event.last_seq)
    return event


def events_of(stream: bytes, sizes: list[int] | None = None) -> list:
    """Feed ``stream`` as the front end does: each chunk is offered to the hot path first,
    else buffered and read event by event. Returns (event, reply sequence id) pairs."""
    conn = logged_in()
    out = []
    for piece in chunked(stream, sizes):
        event = whole_command(conn, piece)
        if event is not None:
            out.append((plain(event), conn.reply_seq))
            continue
        conn.receive_data(piece)
        while (event := conn.next_event()) is not None:
            out.append((event, conn.reply_seq))
    assert conn.pending() == 0
    return out


COMMANDS = [
    (b"\x03SELECT 1", ComQuery(b"\x03SELECT 1", 0)),
    (b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00", ComStmtExecute(
        b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00", 0)),
    (b"\x0e", ComPing()),
    (b"\x01", ComQuit()),
    (b"\x02tr\xc3\xa9de", ComInitDb("tréde")),
    (b"\x04orders\x00", ComFieldList(b"\x04orders\x00")),
    (b"\x09", ComStatistics(b"\x09", 0)),
    (b"\x1f", ComResetConnection()),
    (b"\x11app\x00", ComChangeUser(b"\x11app\x00")),
    (b"\x1b\x01\x00", ComSetOption(1)),
    (b"\x1b\x00", ComSetOption(-1)),
    (b"\x16SELECT ?", ComStmtPrepare(0x16, b"\x16SELECT ?", 0)),
    (b"\x19\x01\x00\x00\x00", ComStmtClose(0x19, b"\x19\x01\x00\x00\x00", 0)),
    (b"\x1a\x01\x00\x00\x00", ComStmtReset(0x1A, b"\x1a\x01\x00\x00\x00", 0)),
    (b"\x18\x01\x00\x00\x00\x00\x00x", ComStmtSendLongData(
        0x18, b"\x18\x01\x00\x00\x00\x00\x00x", 0)),
    (b"\x1c\x01\x00\x00\x00\x05\x00\x00\x00", ComStmtFetch(
        0x1C, b"\x1c\x01\x00\x00\x00\x05\x00\x00\x00", 0)),
    (b"\xfa\x01\x00\x00\x00", ComStmtBulkExecute(b"\xfa\x01\x00\x00\x00")),
    (b"\x05", UnknownCommand(0x05)),
    (b"", EmptyPacket()),
]


@pytest.mark.parametrize(("payload", "event"), COMMANDS)
def test_each_command_is_its_event(payload: bytes, event: object) -> None:
    assert decode_command(payload, 0) == event
    assert type(decode_command(payload, 0)) is type(event)  # subclasses are distinct events
    got = events_of(frame(payload, 0))
    assert [e for e, _ in got] == [event]
    assert got[0][1] == 1


def test_a_query_keeps_its_packet_for_relaying() -> None:
    raw = frame(b"\x03SELECT 1", 0)
    event = whole_command(logged_in(), raw)
    assert isinstance(event, ComQuery)
    assert event.raw == raw and event.sql == b"SELECT 1" and event.last_seq == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([p for p, _ in COMMANDS]), min_size=1, max_size=8),
       chunk_sizes)
def test_any_chunking_gives_the_same_events(payloads: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(frame(p, 0) for p in payloads)
    whole = events_of(stream)
    assert [decode_command(p, 0) for p in payloads] == [e for e, _ in whole]
    for way in (sizes, [1]):
        assert events_of(stream, way) == whole


def test_a_command_split_over_16_mib_packets() -> None:
    payload = b"\x03" + b"x" * MAX_PAYLOAD
    conn = ServerConnection(1 << 26)
    conn.logged_in()
    stream = frame(payload, 0)
    assert whole_command(conn, stream) is None
    conn.receive_data(stream)
    event = conn.next_event()
    assert event == ComQuery(payload, 1)
    assert conn.reply_seq == 2


def test_hot_path_declines_when_bytes_are_buffered() -> None:
    conn = logged_in()
    packet = frame(b"\x0e", 0)
    conn.receive_data(packet[:2])
    assert whole_command(conn, packet) is None  # the partial packet comes first
    conn.receive_data(packet[2:])
    assert conn.next_event() == ComPing()


def test_hot_path_names_the_command_byte_and_its_event_is_the_decoded_one() -> None:
    for payload, _ in COMMANDS:
        raw = frame(payload, 0)
        conn = logged_in()
        if not payload:  # an empty packet takes the buffered path (EmptyPacket)
            assert conn.whole_packet(raw) == -1
            continue
        assert conn.whole_packet(raw) == payload[0]  # what the front end dispatches on
        assert conn.reply_seq == 1
        assert whole_command(logged_in(), raw) == decode_command(payload, 0, raw)
    assert logged_in().whole_packet(frame(b"\x0e", 0) * 2) == -1


@pytest.mark.parametrize("chunk", [
    frame(b"\x0e", 0) + frame(b"\x0e", 0),  # two packets
    frame(b"\x0e", 3),  # not at sequence id 0
    frame(b"\x03SELECT 1", 0)[:-1],  # short
])
def test_hot_path_takes_exactly_one_whole_packet(chunk: bytes) -> None:
    assert whole_command(logged_in(), chunk) is None


def test_hot_path_only_in_the_command_phase() -> None:
    conn = ServerConnection(1 << 20)
    assert whole_command(conn, frame(b"\x0e", 0)) is None
    assert conn.next_event() is None


def test_command_not_at_sequence_zero_is_a_violation() -> None:
    conn = logged_in()
    conn.receive_data(frame(b"\x03SELECT 1", 5))
    with pytest.raises(ProtocolViolation) as info:
        conn.next_event()
    assert (info.value.code, info.value.sqlstate, info.value.seq) == (1156, "08S01", 6)
    assert conn.state is CLOSED


def test_oversize_packet_is_a_violation_as_soon_as_its_size_is_known() -> None:
    conn = logged_in(max_payload=100)
    conn.receive_data(frame(b"\x03" + b"x" * 200, 0)[:10])
    with pytest.raises(ProtocolViolation) as info:
        conn.next_event()
    assert (info.value.code, info.value.seq) == (1153, 1)
    assert "max_allowed_packet" in str(info.value)
    assert conn.state is CLOSED


def test_oversize_packet_is_not_taken_by_the_hot_path() -> None:
    conn = logged_in(max_payload=100)
    assert whole_command(conn, frame(b"\x03" + b"x" * 200, 0)) is None


def test_split_packets_out_of_order_are_a_violation() -> None:
    conn = logged_in(max_payload=1 << 26)
    stream = bytearray(frame(b"\x03" + b"x" * MAX_PAYLOAD, 0))
    stream[4 + MAX_PAYLOAD + 3] = 7  # the continuation's sequence id
    conn.receive_data(bytes(stream))
    with pytest.raises(ProtocolViolation) as info:
        conn.next_event()
    assert info.value.code == 1156


def test_login_phase_reads_auth_packets() -> None:
    conn = ServerConnection(1 << 20)
    assert conn.state is LOGIN
    conn.receive_data(frame(b"response", 1)[:3])
    assert conn.next_auth_packet() is None
    conn.receive_data(frame(b"response", 1)[3:] + b"\x16\x03")  # a TLS handshake follows
    assert conn.next_auth_packet() == AuthPacket(1, b"response")
    assert conn.next_event() is None  # no commands before the login ends
    assert conn.take_rest() == b"\x16\x03"
    conn.logged_in()
    assert conn.state is COMMAND


def test_transitions_are_checked() -> None:
    conn = logged_in()
    with pytest.raises(RuntimeError):
        conn.logged_in()
    conn.close()
    conn.close()  # closing twice is fine
    with pytest.raises(RuntimeError):
        conn.logged_in()


def test_closed_drops_what_arrives() -> None:
    conn = logged_in()
    conn.receive_data(frame(b"\x0e", 0)[:2])
    conn.close()
    conn.receive_data(frame(b"\x0e", 0))
    assert conn.pending() == 0
    assert conn.next_event() is None
    assert whole_command(conn, frame(b"\x0e", 0)) is None
