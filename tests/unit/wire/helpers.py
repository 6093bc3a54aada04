"""Test helpers: join an encoder to a `PacketBuffer` "on the other side", with no network.

As in h11's tests, what one side sends must be what the other side receives, whether the stream
arrives whole, one byte at a time, or in arbitrary chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from dal.wire.framing import PacketBuffer, frame

T = TypeVar("T")

Packet = tuple[int, int, bytes]  # (first_seq, last_seq, payload)

# Streams longer than this are not also replayed byte by byte (it would only cost time).
BYTEWISE_LIMIT = 4096

# Chunk sizes for replaying a stream: mostly small, sometimes large.
chunk_sizes = st.lists(
    st.one_of(st.integers(1, 16), st.integers(1, 4096)), min_size=1, max_size=20)


def chunked(data: bytes, sizes: Sequence[int] | None) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes, cycling through them; whole if None."""
    if not sizes:
        yield data
        return
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos:pos + n]
        pos += n
        i += 1


def receive(stream: bytes, sizes: Sequence[int] | None = None, *,
            max_payload: int = 1 << 30) -> tuple[list[Packet], bytes]:
    """Feed ``stream`` to a fresh `PacketBuffer` in chunks, draining packets after every chunk.

    Returns the packets and whatever bytes are still pending at the end.
    """
    buf = PacketBuffer(max_payload=max_payload)
    packets: list[Packet] = []
    for piece in chunked(stream, sizes):
        buf.feed(piece)
        while (packet := buf.next_packet()) is not None:
            packets.append(packet)
    assert buf.next_packet() is None
    pending = buf.pending()
    rest = buf.take_rest()
    assert len(rest) == pending
    assert buf.pending() == 0
    return packets, rest


def receive_all_ways(stream: bytes, sizes: Sequence[int] | None = None, *,
                     max_payload: int = 1 << 30) -> tuple[list[Packet], bytes]:
    """`receive` whole, one byte at a time (short streams) and in ``sizes`` chunks; all agree."""
    whole = receive(stream, None, max_payload=max_payload)
    ways = [sizes] if sizes else []
    if len(stream) <= BYTEWISE_LIMIT:
        ways.append([1])
    for way in ways:
        assert receive(stream, way, max_payload=max_payload) == whole, f"chunks {way}"
    return whole


def send(payloads: Iterable[bytes], seq: int = 0) -> bytes:
    """Frame payloads as one side would send them, sequence ids counting up from ``seq``."""
    out = []
    for payload in payloads:
        out.append(frame(payload, seq))
        seq += len(payload) // 0xFFFFFF + 1
    return b"".join(out)


def exchange(messages: Iterable[Any], decode: Callable[[bytes], T], *, seq: int = 0,
             sizes: Sequence[int] | None = None) -> list[T]:
    """The pairing helper: encode ``messages`` on one side, receive and decode on the other.

    Each message is anything with ``encode() -> bytes`` or a raw payload. The stream is replayed
    whole, byte by byte and in ``sizes`` chunks; sequence ids must arrive consecutive from ``seq``.
    """
    payloads = [m if isinstance(m, bytes | bytearray) else m.encode() for m in messages]
    packets, rest = receive_all_ways(send(payloads, seq), sizes)
    assert rest == b""
    assert [p[2] for p in packets] == payloads
    expected = seq & 0xFF
    for first, last, _payload in packets:
        assert first == expected
        expected = (last + 1) & 0xFF
    return [decode(p[2]) for p in packets]


def physical_packets(stream: bytes) -> list[tuple[int, int]]:
    """(length, seq) of each physical packet of a framed stream."""
    out = []
    pos = 0
    while pos < len(stream):
        length = int.from_bytes(stream[pos:pos + 3], "little")
        out.append((length, stream[pos + 3]))
        pos += 4 + length
    assert pos == len(stream)
    return out
