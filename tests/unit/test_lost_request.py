"""When a backend connection breaks under a command, could the backend have read it?

Real TCP on 127.0.0.1 against a small asyncio server that plays the backend's part (no
MySQL needed: this is about sockets). DAL retries a statement only when the answer is no.
"""

from __future__ import annotations

import asyncio

from config.protection import BreakerConfig
from dal.wire.results import RESULT
from pool.breaker import Breaker
from pool.connection import BackendConnection
from tests.unit.wire.test_client import logged_in

REQUEST = b"\x09\x00\x00\x00\x03SELECT 1"


async def _lost_under(read_first: bool) -> tuple[BackendConnection, list]:
    """Relay REQUEST on a connection whose server closes it: before the request arrives
    (``read_first`` False: the close is in flight while DAL writes) or after reading it."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if read_first:
            await reader.readexactly(len(REQUEST))
        writer.close()
        closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, conn = await loop.create_connection(lambda: BackendConnection("t"), "127.0.0.1", port)
    logged_in(conn)  # the login, played in memory: this test is about the socket
    ended: list = []
    if not read_first:
        conn.transport.pause_reading()  # DAL has not read the close yet
        await closed.wait()
        await asyncio.sleep(0.05)
    conn.relay(REQUEST, lambda data: None, lambda c, scanner: ended.append(scanner))
    if not read_first:
        conn.transport.resume_reading()
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.01)
    server.close()
    return conn, ended


def test_a_request_written_after_the_backend_closed_is_unread() -> None:
    conn, ended = asyncio.run(_lost_under(read_first=False))
    assert ended == [None] and conn.closed and not conn.unsent
    assert conn.unread_request() == (REQUEST, RESULT, None)


def test_a_request_the_backend_read_is_not_retried() -> None:
    conn, ended = asyncio.run(_lost_under(read_first=True))
    assert ended == [None] and conn.closed
    assert conn.unread_request() is None


def test_a_connection_found_closed_is_not_written_and_not_a_breaker_failure() -> None:
    async def scenario() -> tuple[BackendConnection, list]:
        conn, _ = await _lost_under(read_first=True)
        conn.breaker = Breaker("t", BreakerConfig())
        ended: list = []
        conn.relay(REQUEST, lambda data: None, lambda c, scanner: ended.append(scanner))
        await asyncio.sleep(0.01)
        return conn, ended

    conn, ended = asyncio.run(scenario())
    assert ended == [None] and conn.unsent and not conn.busy
    assert conn.breaker is not None and conn.breaker.window_counts() == (0, 0, 0)
    assert conn.unread_request() == (REQUEST, RESULT, None)


SECOND = b"\x09\x00\x00\x00\x03SELECT 2"


def test_of_pipelined_requests_only_those_never_acknowledged_are_unread() -> None:
    """The backend reads the first request and closes; a second one, pipelined behind it, is
    written after the close: the first may have run (no retry), the second cannot have."""

    async def scenario() -> tuple[BackendConnection, list]:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(len(REQUEST))
            writer.close()
            closed.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, conn = await loop.create_connection(lambda: BackendConnection("t"), "127.0.0.1",
                                               port)
        logged_in(conn)
        ended: list = []

        def done(c: BackendConnection, scanner: object) -> None:
            ended.append((c.request, scanner, c.unread_request()))

        conn.transport.pause_reading()  # DAL has not read the close yet
        conn.relay(REQUEST, lambda data: None, done)
        await closed.wait()
        await asyncio.sleep(0.05)
        conn.relay(SECOND, lambda data: None, done)  # pipelined behind, written after close
        assert conn.depth == 2
        await asyncio.sleep(0.05)
        conn.transport.resume_reading()
        for _ in range(100):
            if len(ended) == 2:
                break
            await asyncio.sleep(0.01)
        server.close()
        return conn, ended

    conn, ended = asyncio.run(scenario())
    assert conn.closed and not conn.busy
    assert ended == [(REQUEST, None, None), (SECOND, None, (SECOND, RESULT, None))]
