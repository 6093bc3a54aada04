"""Column definitions of a relayed shard result name the logical database; rows are untouched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dal.wire.framing import PacketBuffer
from dal.wire.results import ResponseScanner, encode_result_set
from pool.rename import HeaderRenamer, RenamingSink
from router.rows.columns import ColumnDefinition, decode_text_row


def result(schema: bytes, names: list[str], rows: list[list[bytes | None]]) -> bytes:
    columns = [ColumnDefinition(name=n.encode(), type=253, schema=schema, table=b"orders",
                                org_table=b"orders", org_name=n.encode()) for n in names]
    return encode_result_set(columns, rows, deprecate_eof=False)


def packets(data: bytes) -> list[tuple[int, bytes]]:
    buf = PacketBuffer()
    buf.feed(data)
    out = []
    while (p := buf.next_packet()) is not None:
        out.append((p[0], p[2]))
    return out


names = st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=8), min_size=1, max_size=4,
                 unique=True)


@given(names, st.lists(st.binary(max_size=300), max_size=6), st.integers(1, 64))
@settings(max_examples=150)
def test_relay_renames_the_schema_whatever_the_chunks(cols: list[str], values: list[bytes],
                                                      chunk: int) -> None:
    rows = [[v] * len(cols) for v in values]
    raw = result(b"user_017", cols, rows)
    scanner = ResponseScanner(deprecate_eof=False)
    out: list[bytes] = []
    sink = RenamingSink(out.append, scanner, HeaderRenamer(b"trade"))
    for i in range(0, len(raw), chunk):
        piece = raw[i:i + chunk]
        scanner.feed(piece)
        sink(piece)
    assert scanner.done
    expected = result(b"trade", cols, rows)
    assert b"".join(out) == expected
    got = packets(b"".join(out))
    schemas = [ColumnDefinition.decode(p).schema for _, p in got[1:1 + len(cols)]]
    assert schemas == [b"trade"] * len(cols)
    assert [decode_text_row(p, len(cols)) for _, p in got[2 + len(cols):-1]] == rows


def test_ok_and_err_pass_unchanged() -> None:
    for raw in (b"\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00",
                b"\x09\x00\x00\x01\xff\x15\x04#28000x"):
        assert HeaderRenamer(b"trade").apply(raw) == raw


def test_header_renamer_reuses_the_last_header_and_notices_a_new_one() -> None:
    renamer = HeaderRenamer(b"trade")
    first = result(b"user_017", ["id", "c"], [[b"1", b"x"]])
    again = result(b"user_017", ["id", "c"], [[b"2", None], [b"3", b"y"]])
    altered = result(b"user_017", ["id", "c", "extra"], [[b"4", b"z", b"e"]])
    assert renamer.apply(first) == result(b"trade", ["id", "c"], [[b"1", b"x"]])
    assert renamer.apply(again) == result(b"trade", ["id", "c"], [[b"2", None], [b"3", b"y"]])
    assert renamer.apply(altered) == result(b"trade", ["id", "c", "extra"],
                                            [[b"4", b"z", b"e"]])
    assert renamer.apply(first[:7]) is None  # the header has not fully arrived
    ok = b"\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00"
    assert renamer.apply(ok) == ok
