"""Packet framing: `frame()` and `PacketBuffer`, 16 MiB continuation, sequence ids, size cap."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.constants import MAX_PAYLOAD
from dal.wire.framing import PacketBuffer, frame, packet_count
from router.rows.errors import ProtocolError
from tests.unit.wire.helpers import (
    chunk_sizes,
    physical_packets,
    receive,
    receive_all_ways,
    send,
)

payloads = st.binary(max_size=600)
seqs = st.integers(0, 255)


@cache
def pattern(n: int) -> bytes:
    """n bytes that repeat with period 251 (prime), so a misplaced slice shows."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]



# -- small payloads ------------------------------------------------------------------------------

@settings(max_examples=30)
@given(payloads, seqs, chunk_sizes)
def test_frame_round_trip(payload: bytes, seq: int, sizes: list[int]) -> None:
    stream = frame(payload, seq)
    assert stream[:4] == len(payload).to_bytes(3, "little") + bytes((seq,))
    packets, rest = receive_all_ways(stream, sizes)
    assert packets == [(seq, seq, payload)]
    assert rest == b""


@settings(max_examples=30)
@given(st.lists(payloads, max_size=12), seqs, chunk_sizes)
def test_stream_of_packets_whole_bytewise_and_chunked_agree(
        items: list[bytes], seq: int, sizes: list[int]) -> None:
    stream = send(items, seq)
    packets, rest = receive_all_ways(stream, sizes)
    assert [p[2] for p in packets] == items
    assert [p[0] for p in packets] == [(seq + i) & 0xFF for i in range(len(items))]
    assert all(first == last for first, last, _ in packets)
    assert rest == b""


@settings(max_examples=30)
@given(st.binary(max_size=40), st.sampled_from([bytes, bytearray, memoryview]))
def test_frame_accepts_any_buffer(payload: bytes, kind: type) -> None:
    assert frame(kind(payload), 3) == frame(payload, 3)


@pytest.mark.parametrize(("seq", "wire"), [(0, 0), (255, 255), (256, 0), (257, 1), (511, 255)])
def test_sequence_id_wraps_at_256(seq: int, wire: int) -> None:
    assert frame(b"x", seq)[3] == wire


def test_sequence_ids_wrap_across_a_stream() -> None:
    packets, _ = receive(send([i.to_bytes(2, "little") for i in range(300)], 250))
    assert [p[0] for p in packets] == [(250 + i) % 256 for i in range(300)]


@settings(max_examples=30)
@given(st.lists(payloads, min_size=1, max_size=5), st.binary(min_size=1, max_size=30), seqs,
       chunk_sizes)
def test_trailing_partial_data_stays_pending(
        items: list[bytes], extra: bytes, seq: int, sizes: list[int]) -> None:
    """Whatever follows the last complete packet (part of a header, or a header and part of
    its body) is kept, not returned, and handed back by take_rest()."""
    partial = frame(extra, 9)[:-1]  # one byte short of complete
    for cut in {1, 2, 3, 4, len(partial)}:
        tail = partial[:cut]
        packets, rest = receive_all_ways(send(items, seq) + tail, sizes)
        assert [p[2] for p in packets] == items
        assert rest == tail


def test_pending_and_take_rest() -> None:
    buf = PacketBuffer()
    buf.feed(frame(b"abc", 0) + b"\x05\x00")
    assert buf.pending() == 9
    assert buf.next_packet() == (0, 0, b"abc")
    assert buf.pending() == 2
    assert buf.next_packet() is None
    assert buf.take_rest() == b"\x05\x00"
    assert buf.pending() == 0
    buf.feed(frame(b"next", 1))
    assert buf.next_packet() == (1, 1, b"next")


def test_empty_payload() -> None:
    assert frame(b"", 4) == b"\x00\x00\x00\x04"
    packets, rest = receive_all_ways(frame(b"", 4) + frame(b"", 5))
    assert packets == [(4, 4, b""), (5, 5, b"")]
    assert rest == b""


@pytest.mark.parametrize(("n", "count"), [(0, 1), (MAX_PAYLOAD - 1, 1), (MAX_PAYLOAD, 2),
                                          (MAX_PAYLOAD + 1, 2), (2 * MAX_PAYLOAD, 3),
                                          (2 * MAX_PAYLOAD + 1, 3)])
def test_packet_count(n: int, count: int) -> None:
    assert packet_count(n) == count


# -- payloads of 16 MiB and more (fixed sizes: each costs tens of milliseconds) -----------------

LARGE = [
    MAX_PAYLOAD - 1,          # the largest single packet
    MAX_PAYLOAD,              # full packet + empty trailing packet
    MAX_PAYLOAD + 1,          # full packet + 1 byte
    2 * MAX_PAYLOAD,          # two full packets + empty trailing packet
    2 * MAX_PAYLOAD + 12345,  # > 32 MiB
]


@pytest.mark.parametrize("n", LARGE)
def test_large_payload_framing(n: int) -> None:
    seq = 254  # so that the sequence ids of the continuation packets wrap
    stream = frame(pattern(n), seq)
    found = physical_packets(stream)
    lengths = [length for length, _ in found]
    assert len(found) == packet_count(n)
    assert all(length == MAX_PAYLOAD for length in lengths[:-1])
    assert lengths[-1] == n % MAX_PAYLOAD if n >= MAX_PAYLOAD else lengths[-1] == n
    assert [s for _, s in found] == [(seq + i) & 0xFF for i in range(len(found))]
    if n % MAX_PAYLOAD == 0:
        assert stream.endswith(bytes((0, 0, 0, (seq + len(found) - 1) & 0xFF)))


@pytest.mark.parametrize("n", LARGE)
def test_large_payload_round_trip_whole(n: int) -> None:
    payload = pattern(n)
    seq = 254
    last = (seq + packet_count(n) - 1) & 0xFF
    packets, rest = receive(frame(payload, seq) + frame(b"after", last + 1))
    assert len(packets) == 2
    first, got_last, got = packets[0]
    assert (first, got_last) == (seq, last)
    assert got == payload
    assert packets[1] == ((last + 1) & 0xFF, (last + 1) & 0xFF, b"after")
    assert rest == b""


@pytest.mark.parametrize(("n", "step"), [(MAX_PAYLOAD, 1 << 20), (2 * MAX_PAYLOAD, 3_000_001),
                                         (2 * MAX_PAYLOAD + 12345, 1 << 20)])
def test_large_payload_round_trip_in_chunks(n: int, step: int) -> None:
    """Fed in chunks, the split payload appears only once its last packet has arrived."""
    payload = pattern(n)
    stream = frame(payload, 7) + frame(b"z", 7 + packet_count(n))
    buf = PacketBuffer()
    got = []
    fed = 0
    for pos in range(0, len(stream), step):
        buf.feed(stream[pos:pos + step])
        fed = min(pos + step, len(stream))
        while (packet := buf.next_packet()) is not None:
            got.append((fed, packet))
    end_of_payload = len(stream) - 5
    assert [p for _, p in got] == [(7, (7 + packet_count(n) - 1) & 0xFF, payload),
                                   ((7 + packet_count(n)) & 0xFF,) * 2 + (b"z",)]
    assert got[0][0] >= end_of_payload
    assert buf.pending() == 0


@pytest.mark.parametrize("cut", [1, 3, 4, 5])
def test_split_payload_waits_for_the_empty_trailing_packet(cut: int) -> None:
    """A 0xFFFFFF payload is not complete until its empty trailing packet has fully arrived."""
    stream = frame(pattern(MAX_PAYLOAD), 0)
    assert stream[-4:] == b"\x00\x00\x00\x01"
    buf = PacketBuffer()
    buf.feed(stream[:-4] + stream[-4:][:cut])
    if cut < 4:
        assert buf.next_packet() is None
        buf.feed(stream[-4 + cut:])
    assert buf.next_packet() == (0, 1, pattern(MAX_PAYLOAD))


@pytest.mark.parametrize("where", [1, 2])
def test_out_of_order_sequence_id_inside_split_payload(where: int) -> None:
    """A continuation packet with the wrong sequence id raises 1156 as soon as its header is
    seen, before its body arrives."""
    stream = bytearray(frame(pattern(2 * MAX_PAYLOAD + 10), 5))
    header = where * (MAX_PAYLOAD + 4)
    assert stream[header + 3] == 5 + where
    stream[header + 3] = 99
    buf = PacketBuffer()
    buf.feed(stream[:header + 4])  # up to and including the bad header, no body
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1156
    assert exc.value.sqlstate == "08S01"


def test_out_of_order_sequence_id_in_empty_trailing_packet() -> None:
    stream = bytearray(frame(pattern(MAX_PAYLOAD), 200))
    stream[-1] = 200
    buf = PacketBuffer()
    buf.feed(stream)
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1156


# -- the size cap --------------------------------------------------------------------------------

@settings(max_examples=30)
@given(st.integers(0, 1000), st.integers(1, 500), st.integers(0, 4))
def test_oversized_payload_refused_on_its_header(limit: int, over: int, body: int) -> None:
    """1153 as soon as the header is seen: with no body, or with some of it."""
    n = limit + over
    buf = PacketBuffer(max_payload=limit)
    buf.feed(frame(bytes(n), 0)[:4 + min(body, n - 1)])
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1153
    assert exc.value.sqlstate == "08S01"


@settings(max_examples=30)
@given(st.integers(0, 1000), st.integers(1, 500))
def test_oversized_payload_refused_when_fed_whole(limit: int, over: int) -> None:
    buf = PacketBuffer(max_payload=limit)
    buf.feed(frame(bytes(limit + over), 0))
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1153


@given(st.integers(0, 1000), st.integers(0, 1000), chunk_sizes)
@settings(max_examples=50)
def test_payload_at_or_under_the_cap_accepted(limit: int, under: int, sizes: list[int]) -> None:
    n = max(0, limit - under)
    packets, _ = receive(frame(bytes(n), 0), sizes, max_payload=limit)
    assert packets == [(0, 0, bytes(n))]


def test_split_payload_refused_on_first_header() -> None:
    buf = PacketBuffer(max_payload=1000)
    buf.feed(b"\xff\xff\xff\x00")
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1153


def test_split_payload_refused_when_its_total_passes_the_cap() -> None:
    """The first 16 MiB packet fits; the continuation header that takes the total past the cap
    raises before the continuation's body arrives."""
    stream = frame(pattern(MAX_PAYLOAD + 50), 0)
    buf = PacketBuffer(max_payload=MAX_PAYLOAD + 10)
    buf.feed(stream[:MAX_PAYLOAD + 4])
    assert buf.next_packet() is None
    buf.feed(stream[MAX_PAYLOAD + 4:MAX_PAYLOAD + 8])
    with pytest.raises(ProtocolError) as exc:
        buf.next_packet()
    assert exc.value.code == 1153


def test_split_payload_at_the_cap_accepted() -> None:
    payload = pattern(MAX_PAYLOAD + 10)
    packets, _ = receive(frame(payload, 0), [1 << 22], max_payload=MAX_PAYLOAD + 10)
    assert packets == [(0, 1, payload)]


# -- arbitrary streams ---------------------------------------------------------------------------

@given(st.binary(max_size=300), chunk_sizes, st.integers(0, 300))
@settings(max_examples=120)
def test_arbitrary_stream_raises_only_protocol_error(
        stream: bytes, sizes: list[int], limit: int) -> None:
    try:
        packets, rest = receive(stream, sizes, max_payload=limit)
    except ProtocolError as exc:
        assert exc.code in (1153, 1156)
        return
    assert sum(4 + len(p[2]) for p in packets) + len(rest) == len(stream)
