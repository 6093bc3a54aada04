"""A scatter read that needs no merge, relayed shard by shard in bounded memory.

``SELECT * FROM orders`` (no ORDER BY, GROUP BY, LIMIT, DISTINCT or aggregate) is the
concatenation of the shards' results, so DAL sends one column-definition header (the first
shard's, named for the logical database), then each shard's rows in shard order as they
arrive, then one EOF. At most `WINDOW` shards run at once; a shard ahead of the one being
relayed buffers at most `SHARD_BUFFER` bytes before DAL stops reading its backend socket, and
relaying waits while the client has more than `CLIENT_BUFFER` bytes unsent. So memory stays
bounded whatever the row count (a dump of a million orders holds a few megabytes).

Outside a transaction each leg takes a pooled connection with the read's session state
(`_Pooled`). Inside an XA transaction (mode xa) the legs run on the transaction's branch
connections, one per instance, so that the read sees the transaction's own writes and one
snapshot per instance (`_Branches`): an instance's legs run one after another on its branch,
each sent when the one before it there has ended, instances concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from dal import xa
from dal.execute.home import home_schema
from dal.wire.constants import Status
from dal.wire.framing import frame, packet_count
from dal.wire.messages import EOF, ERR
from pool.connection import BackendConnection, BackendError, ConnectionLost
from pool.rename import rename_column
from pool.state import apply_state
from router.rows.buffer import Reader
from router.rows.columns import column_schema

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from router.targets import Target

WINDOW = 8  # shards read concurrently
SHARD_BUFFER = 1 << 20  # bytes one shard may hold before its backend socket is paused
CLIENT_BUFFER = 1 << 20  # the client's unsent bytes above which relaying waits
_COUNT, _COLUMNS, _EOF, _ROWS, _DONE = range(5)


class _Leg:
    """One shard's response as it arrives: raw bytes, paused past `SHARD_BUFFER`."""

    def __init__(self) -> None:
        self.conn: BackendConnection = None  # type: ignore[assignment]  # set by the source
        self.data = bytearray()
        self.ended = False
        self.lost = False
        self.paused = False
        self.dropping = False  # the relay stopped early: the rest is read and dropped
        self.wake = asyncio.Event()
        self.over = asyncio.Event()  # its response ended, or it never started

    def sink(self, chunk: bytes) -> None:
        if self.dropping:
            return
        self.data += chunk
        self.wake.set()
        if len(self.data) > SHARD_BUFFER and not self.paused:
            self.paused = True
            self.conn.transport.pause_reading()

    def finished(self, conn: BackendConnection, scanner: object | None) -> None:
        self.ended = True
        self.lost = scanner is None
        self.wake.set()
        self.over.set()

    def drop_rest(self) -> None:
        """Read the rest of the response away (memory stays bounded)."""
        self.dropping = True
        self.data = bytearray()
        self.resume()

    def take(self) -> bytearray:
        data, self.data = self.data, bytearray()
        self.resume()
        return data

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            if not self.conn.closed:
                self.conn.transport.resume_reading()


class _Pooled:
    """Legs on pooled connections with the read's session state (outside a transaction)."""

    cancellable = True  # a leg not started yet may be cancelled

    def __init__(self, session: SessionPort, state: dict[str, str]) -> None:
        self.session = session
        self.state = state

    async def open(self, leg: _Leg, target: Target) -> None:
        pool = self.session.server.pools[target.instance]
        conn = await pool.acquire(self.session.flavour)
        try:
            await apply_state(conn, home_schema(self.session, target.instance), self.state)
        except BaseException:
            pool.release(conn, reusable=not conn.closed)
            raise
        leg.conn = conn

    async def close(self, leg: _Leg) -> None:
        """A finished leg's connection goes back to its pool; one still answering is closed."""
        leg.resume()
        pool = self.session.server.pools[leg.conn.instance]
        if not leg.ended:
            leg.conn.abort()
            pool.release(leg.conn, reusable=False)
        else:
            pool.release(leg.conn, reusable=not leg.conn.closed and not leg.lost)


class _Branches:
    """Legs on the XA transaction's branch connections (mode xa, inside a transaction)."""

    cancellable = False  # opening a branch (XA START) must not be cut short

    def __init__(self, session: SessionPort) -> None:
        self.session = session
        self.tails: dict[str, _Leg] = {}  # the last leg started on each instance

    async def open(self, leg: _Leg, target: Target) -> None:
        # Before the first await, so in the order the legs were started: the leg before this
        # one on the same branch.
        before = self.tails.get(target.instance)
        self.tails[target.instance] = leg
        if before is not None:
            await before.over.wait()
        leg.conn = await xa.branch(self.session, target.instance)
        xa.settle(self.session)

    async def close(self, leg: _Leg) -> None:
        """The branch stays the transaction's: a leg the relay left early is read to its end
        first; a branch whose connection broke is dropped from the transaction."""
        if not leg.ended:
            leg.drop_rest()
            await leg.over.wait()
        txn = self.session.xa
        if (leg.lost or leg.conn.closed) and txn is not None and (
                txn.branches.get(leg.conn.instance) is leg.conn):  # not dropped by a leg before
            xa.drop_branch(self.session, leg.conn)


_Source = _Pooled | _Branches


async def _start(source: _Source, target: Target, sql: bytes) -> _Leg:
    leg = _Leg()
    try:
        await source.open(leg, target)
    except BaseException:
        leg.over.set()  # the next leg on its branch may go
        raise
    leg.conn.relay(frame(b"\x03" + sql, 0), leg.sink, leg.finished)
    return leg


class _Relay:
    """Turns the shards' responses into one result set written to the client. Row packets
    are relayed as the bytes they came in, with only their sequence ids rewritten."""

    def __init__(self, session: SessionPort, logical: bytes) -> None:
        self.session = session
        self.logical = logical
        self.seq = session.reply_seq
        self.header_sent = False
        self.out: list[bytes] = []
        self.rows = 0  # for FOUND_ROWS()

    def emit(self, payload: bytes) -> None:
        self.out.append(frame(payload, self.seq & 0xFF))
        self.seq += packet_count(len(payload))

    def flush(self) -> None:
        if self.out:
            self.session.send(b"".join(self.out))
            self.out.clear()

    async def relay(self, leg: _Leg) -> None:
        """Relay one shard's rows (and the header, for the first); raises BackendError on the
        shard's ERR or a lost connection."""
        buf = bytearray()
        phase, columns, continued = _COUNT, 0, False
        first = not self.header_sent
        while True:
            await leg.wake.wait()
            leg.wake.clear()
            buf += leg.take()
            pos, run, n = 0, -1, len(buf)
            seq = self.seq
            while phase != _DONE and pos + 4 <= n:
                length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                end = pos + 4 + length
                if end > n:
                    break
                if phase == _ROWS:
                    if not continued and buf[pos + 4] in (0xFE, 0xFF) and (
                            length < 9 or buf[pos + 4] == 0xFF):
                        if run >= 0:
                            self.out.append(bytes(buf[run:pos]))
                            run = -1
                        if buf[pos + 4] == 0xFF:
                            err = ERR.decode(bytes(buf[pos + 4:end]))
                            self.seq = seq
                            raise BackendError(err.code, err.message, err.sqlstate)
                        phase = _DONE
                    else:
                        if not continued:  # a row's first packet
                            self.rows += 1
                        buf[pos + 3] = seq & 0xFF
                        seq += 1
                        run = pos if run < 0 else run
                    continued = length == 0xFFFFFF
                else:
                    self.seq = seq
                    phase, columns = self._header(bytes(buf[pos + 4:end]), phase, columns,
                                                  first)
                    seq = self.seq
                pos = end
            if run >= 0:
                self.out.append(bytes(buf[run:pos]))
            self.seq = seq
            del buf[:pos]
            self.flush()
            await self.drained()
            if phase == _DONE or (leg.ended and not leg.data):  # else more came meanwhile
                break
        if leg.lost or phase != _DONE:
            raise ConnectionLost(f"lost connection to backend {leg.conn.instance} during a "
                                 "scatter read")

    def _header(self, payload: bytes, phase: int, columns: int, first: bool) -> tuple[int, int]:
        """One packet before the rows: the column count, a definition, or the EOF after them
        (sent for the first shard only, named for the logical database)."""
        if payload[0] == 0xFF:
            err = ERR.decode(payload)
            raise BackendError(err.code, err.message, err.sqlstate)
        if phase == _COUNT:
            if first:
                self.emit(payload)
            return _COLUMNS, Reader(payload, 0).lenenc_int() or 0
        if phase == _COLUMNS:
            if first:
                schema = column_schema(payload)
                self.emit(rename_column(payload, self.logical) if schema else payload)
            return (_EOF if columns == 1 else _COLUMNS), columns - 1
        if first:  # the EOF after the column definitions
            self.emit(EOF(0, self.session.status).encode())
            self.header_sent = True
        return _ROWS, 0

    async def drained(self) -> None:
        """Wait while the client has more than `CLIENT_BUFFER` bytes unsent."""
        transport = self.session.transport
        while transport is not None and not transport.is_closing() and (
                transport.get_write_buffer_size() > CLIENT_BUFFER):
            await asyncio.sleep(0.002)
        if transport is None or transport.is_closing():  # the client went away: stop reading
            raise ConnectionLost("the client closed its connection during a scatter read")


async def stream(session: SessionPort, shards: list[Target], sqls: list[bytes],
                 state: dict[str, str], logical: bytes, in_xa: bool = False) -> None:
    """Run a merge-free scatter read and write its result to the client as it arrives;
    ``in_xa``: on the XA transaction's branches (opening the transaction if this is its
    first statement), else on pooled connections with ``state``.

    Raises BackendError when a shard fails before anything was sent; after the header went
    out, a failure ends the result with the shard's ERR instead."""
    source: _Source
    if in_xa:
        await xa.ensure_begun(session, shards[0].instance)
        source = _Branches(session)
    else:
        source = _Pooled(session, state)
    relay = _Relay(session, logical)
    todo = deque(zip(shards, sqls, strict=True))
    started: deque[asyncio.Future[_Leg]] = deque()
    try:
        while todo or started:
            while todo and len(started) < WINDOW:
                target, sql = todo.popleft()
                started.append(asyncio.ensure_future(_start(source, target, sql)))
            leg = await started[0]
            try:
                await relay.relay(leg)
            finally:
                started.popleft()
                await source.close(leg)
        relay.emit(EOF(0, session.status & ~Status.MORE_RESULTS_EXISTS).encode())
        relay.flush()
        session.row_count, session.found_rows_count = -1, relay.rows
    except BackendError as exc:
        if not relay.header_sent:
            raise
        relay.emit(exc.to_err().encode())
        relay.flush()
    finally:
        if source.cancellable:
            for future in started:
                future.cancel()
        for future in started:
            with contextlib.suppress(BaseException):  # a leg that never started
                await source.close(await future)
