"""`pool.responses.decode_lazily` answers as `decode_response` does, rows decoded on reading."""

from __future__ import annotations

import pytest

from dal.wire.framing import frame
from dal.wire.messages import EOF, ERR, OK
from pool.errors import BackendError
from pool.responses import LazyRows, decode_lazily, decode_response
from router.rows.columns import ColumnDefinition, encode_text_row

COLUMNS = [ColumnDefinition(b"id", 8, b"user_007", b"orders"),
           ColumnDefinition(b"note", 253, b"user_007", b"orders")]


def _response(*payloads: bytes) -> bytes:
    return b"".join(frame(p, seq) for seq, p in enumerate(payloads, 1))


def _result(rows: list[list[bytes | None]], end: bytes = EOF(0, 0x22).encode()) -> bytes:
    return _response(bytes((len(COLUMNS),)), *(c.encode() for c in COLUMNS), EOF(0, 2).encode(),
                     *(encode_text_row(r) for r in rows), end)


@pytest.mark.parametrize("rows", [[], [[b"1", b"a"]], [[b"1", None], [b"2", b"x" * 300]]])
def test_a_result_set_reads_as_decode_response_reads_it(rows) -> None:
    raw = _result(rows)
    lazy, eager = decode_lazily(raw), decode_response(raw)
    assert isinstance(lazy.rows, LazyRows)
    assert (lazy.columns, list(lazy.rows), lazy.status) == (eager.columns, eager.rows,
                                                            eager.status)
    assert len(lazy.rows) == len(rows) and lazy.rows[-1:] == rows[-1:]


def test_ok_and_err_answers_are_decode_responses() -> None:
    ok = _response(OK(affected_rows=3, status=2).encode())
    assert decode_lazily(ok).ok.affected_rows == 3
    for raw in (_response(ERR(1146, "no table", "42S02").encode()),
                _result([[b"1", b"a"]], ERR(1317, "interrupted", "70100").encode())):
        with pytest.raises(BackendError) as caught:
            decode_lazily(raw)
        assert caught.value.code in (1146, 1317)


def test_known_columns_are_decoded_once_per_statement() -> None:
    known: dict = {}
    first = decode_lazily(_result([[b"1", b"a"]]), known=known)
    second = decode_lazily(_result([[b"2", b"b"]]), known=known)
    assert second.columns is first.columns and list(second.rows) == [[b"2", b"b"]]
