"""`dal localdb up` on a port that only closed connections hold (TIME_WAIT, as after a bench's
many client connections on a port of the ephemeral range) waits for it; on a port a live
socket holds it refuses at once (tests/integration/test_process_hygiene.py)."""

from __future__ import annotations

import socket
import sys

import pytest

from tools.localdb import _only_time_wait, _port_bound

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/tcp")


def test_a_port_left_in_time_wait_is_told_apart_from_a_bound_one() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    port = client.getsockname()[1]
    accepted, _ = server.accept()
    client.close()  # the side that closes first keeps the port in TIME_WAIT
    accepted.close()
    server.close()
    assert _port_bound("127.0.0.1", port)  # mariadbd's bind would fail now
    assert _only_time_wait(port)

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        bound = holder.getsockname()[1]
        assert _port_bound("127.0.0.1", bound)
        assert not _only_time_wait(bound)
        holder.listen()
        assert not _only_time_wait(bound)
    finally:
        holder.close()
