"""Bad input never crashes DAL or hurts other clients: each abuse gets a defined outcome."""

from __future__ import annotations

import os
import time

import pymysql
import pytest

from tests.rawclient import RawClient, error_of

pytestmark = pytest.mark.usefixtures("connect")


def healthy(connect) -> None:
    """Another client is still served correctly."""
    with connect().cursor() as cur:
        cur.execute("SELECT 40 + 2")
        assert cur.fetchone() == (42,)


def test_wrong_password_gets_1045_and_nothing_else(dal, connect) -> None:
    client = RawClient(dal.port)
    payload = client.login(password="wrong")
    err = error_of(payload)
    assert err.code == 1045
    assert err.sqlstate == "28000"
    assert "Access denied for user 'app'" in err.message
    assert client.read_packet() is None, "DAL sent more than the ERR after a failed login"
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=dal.port, user="nobody", password="x")
    assert info.value.args[0] == 1045
    healthy(connect)


def test_unknown_command_gets_1047_and_session_goes_on(dal, connect) -> None:
    client = RawClient(dal.port)
    assert client.login()[:1] == b"\x00"
    client.send(b"\x01\x00\x00\x00\x99")
    err = error_of(client.read_packet()[1])
    assert err.code == 1047
    assert client.query(b"SELECT 7")[-2][-1:] == b"7"  # the session still works
    client.close()
    healthy(connect)


def test_garbage_instead_of_login_is_refused(dal, connect) -> None:
    client = RawClient(dal.port)
    client.greeting()
    client.send(os.urandom(3) + b"\x01" + os.urandom(200))
    # Either an ERR (bad handshake) followed by a close, or a close when the random length
    # announces more bytes than arrive (then the login timeout closes it).
    packet = client.read_packet()
    if packet is not None:
        assert error_of(packet[1]).code in (1043, 1045, 1153)
    assert client.closed_by_server(timeout=10)
    healthy(connect)


def test_random_bytes_after_login_never_break_other_clients(dal, connect) -> None:
    for _ in range(20):
        client = RawClient(dal.port)
        assert client.login()[:1] == b"\x00"
        client.send(os.urandom(64))
        client.close()
    healthy(connect)


def test_out_of_order_sequence_id_gets_1156_and_close(dal, connect) -> None:
    client = RawClient(dal.port)
    client.login()
    client.send(b"\x09\x00\x00\x05\x03SELECT 1")
    err = error_of(client.read_packet()[1])
    assert err.code == 1156
    assert client.closed_by_server()
    healthy(connect)


def test_truncated_packet_times_out_with_1159(dal, connect) -> None:
    client = RawClient(dal.port)
    client.login()
    client.send(b"\x64\x00\x00\x00\x03SELECT")  # announces 100 bytes, sends 7
    started = time.monotonic()
    healthy(connect)  # others are served while this one dangles
    packet = client.read_packet()
    waited = time.monotonic() - started
    assert packet is not None
    assert error_of(packet[1]).code == 1159
    assert 1.5 <= waited <= 8, f"read timeout fired after {waited:.1f} s (configured 2 s)"
    assert client.closed_by_server()


def test_truncated_packet_then_disconnect_is_harmless(dal, connect) -> None:
    client = RawClient(dal.port)
    client.login()
    client.send(b"\xff\xff\x00\x00\x03SELECT")
    client.close()
    healthy(connect)


def test_20_mib_statement_is_served(connect) -> None:
    size = 20 * 1024 * 1024
    conn = connect(max_allowed_packet=128 * 1024 * 1024)
    with conn.cursor() as cur:
        cur.execute("SELECT LENGTH('" + "x" * size + "')")
        assert cur.fetchone() == (size,)
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_statement_over_max_packet_gets_1153(dal, connect) -> None:
    client = RawClient(dal.port)
    client.login()
    # 65 MiB announced in split packets: refused as soon as the size passes 64 MiB.
    chunk = b"\xff\xff\xff"
    client.send(chunk + b"\x00\x03" + b"x" * (0xFFFFFF - 1))
    for seq in range(1, 5):
        client.send(chunk + bytes((seq,)) + b"x" * 0xFFFFFF)
    err = error_of(client.read_packet()[1])
    assert err.code == 1153
    assert client.closed_by_server()
    healthy(connect)


def test_client_gone_mid_statement_gives_the_connection_back(dal, connect) -> None:
    for sql in (b"SELECT SLEEP(0.5)", b"SELECT REPEAT('x', 5000000)"):
        client = RawClient(dal.port)
        client.login()
        client.send(bytes((len(sql) + 1, 0, 0, 0, 3)) + sql)
        client.close()  # gone before the answer: the relay drops it and finishes reading
    time.sleep(0.7)
    healthy(connect)  # and the fixture asserts every backend connection is back in its pool
