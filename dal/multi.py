"""Multi-statements: one COM_QUERY holding several statements (CLIENT_MULTI_STATEMENTS at
login, or COM_SET_OPTION on).

The batch is split (router.split), and each statement goes through the session's ordinary
path (planned, routed on its own, maybe relayed from a shard) while the session's result sink
is a `BatchSink` (dal/execute/sink.py). Each statement's response is then re-framed with
sequence ids that continue across the batch, and SERVER_MORE_RESULTS_EXISTS is set in the
closing OK/EOF of every result but the last. An ERR stops the batch and is its last packet,
as in MySQL. Results are sent once the whole batch has run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dal.execute.sink import BatchSink
from dal.wire.constants import Status
from dal.wire.framing import frame, packet_count
from pool.responses import decode_packets

if TYPE_CHECKING:
    from dal.ports import SessionPort

_MORE = int(Status.MORE_RESULTS_EXISTS)


def _status_offset(payload: bytes) -> int | None:
    """Where the status flags are in a closing OK or classic EOF packet, else None."""
    head = payload[0]
    if head == 0xFE and len(payload) < 9:  # EOF: header, warnings, status
        return 3
    if head == 0x00:  # OK: header, lenenc affected rows, lenenc insert id, status
        pos = 1
        for _ in range(2):
            first = payload[pos]
            pos += 1 if first < 0xFB else {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 1)
        return pos
    return None


def with_more_results(payload: bytes) -> bytes:
    """The closing packet of a result with SERVER_MORE_RESULTS_EXISTS set."""
    at = _status_offset(payload)
    if at is None or len(payload) < at + 2:
        return payload
    status = payload[at] | payload[at + 1] << 8 | _MORE
    return payload[:at] + bytes((status & 0xFF, status >> 8)) + payload[at + 2:]


async def run_captured(session: SessionPort, statement: bytes, seq: int) -> list[bytes]:
    """Run one text statement on the session's ordinary path with its response captured
    (replies framed from ``seq``); the response's payloads, empty if the client went away."""
    real = session.sink
    capture = session.sink = BatchSink()
    try:
        waiter = asyncio.get_running_loop().create_future()
        session.batch_waiter = waiter
        session.busy = False
        try:
            session.run_query(b"\x03" + statement, seq)
        except Exception:  # as on the ordinary path: an ERR for this statement, the batch ends
            session.internal_error("statement in a batch failed")
        if session.busy:
            await waiter  # the statement's path calls `_drain` when it is done
    finally:
        session.batch_waiter = None
        session.sink = real
    session.busy = True
    return decode_packets(b"".join(capture.chunks))


async def run_batch(session: SessionPort, statements: list[bytes]) -> None:
    """Run the statements in order and send their results as one multi-result response."""
    seq = session.reply_seq
    out: list[bytes] = []
    for index, statement in enumerate(statements):
        payloads = await run_captured(session, statement, seq)
        if not payloads:  # the client went away mid-statement
            return
        last = index == len(statements) - 1
        failed = payloads[-1][:1] == b"\xff"
        if not last and not failed:
            payloads[-1] = with_more_results(payloads[-1])
        for body in payloads:
            out.append(frame(body, seq))
            seq = (seq + packet_count(len(body))) & 0xFF
        if failed or session.phase != "command":
            break
    session.send(b"".join(out))
    session.busy = False
