"""The client-role connection (dal/wire/client.py), driven with bytes only: a login played
against it packet by packet, and the command states the pool's hot path relies on."""

from __future__ import annotations

import hashlib

import pytest

from dal.wire import auth
from dal.wire.client import (
    AUTH,
    BUSY,
    CLOSED,
    GREETING,
    LOST,
    READY,
    TRANSITIONS,
    ClientConnection,
    LoginRefused,
)
from dal.wire.constants import (
    CLIENT_MYSQL,
    FLAVOUR_EXTENDED_METADATA,
    FLAVOUR_FOUND_ROWS,
    MARIADB_CLIENT_EXTENDED_METADATA,
    Capability,
)
from dal.wire.framing import PacketBuffer, frame
from dal.wire.messages import ERR, OK, Handshake, HandshakeResponse
from router.rows.errors import ProtocolError

SCRAMBLE = b"abcdefghij0123456789"


def greeting(plugin: bytes = auth.NATIVE, caps: int = 0xFFFFFFFF) -> bytes:
    return Handshake(b"10.11.0-MariaDB", 7, SCRAMBLE, caps, auth_plugin=plugin).encode()


def logged_in(wire: ClientConnection | None = None) -> ClientConnection:
    """``wire`` (a new one if None) through a whole native-password login, as a backend would
    answer it."""
    wire = wire if wire is not None else ClientConnection()
    wire.greeting(0, greeting(), flavour=0, schema=None, tls=False)
    wire.login_response("dal", b"pw", None)
    assert wire.auth_reply(2, OK().encode()) == b""
    return wire


def payload_of(packet: bytes) -> tuple[int, bytes]:
    buf = PacketBuffer()
    buf.feed(packet)
    first, _, payload = buf.next_packet()  # type: ignore[misc]
    assert buf.pending() == 0
    return first, payload


def test_native_login() -> None:
    wire = ClientConnection()
    assert wire.state is GREETING
    hello = wire.greeting(0, greeting(), flavour=FLAVOUR_FOUND_ROWS, schema="trade", tls=False)
    assert hello.connection_id == 7
    seq, payload = payload_of(wire.login_response("dal", b"pw", "trade"))
    assert seq == 1 and wire.state is AUTH
    response = HandshakeResponse.decode(payload)
    assert response.user == b"dal" and response.database == b"trade"
    assert response.capabilities & Capability.FOUND_ROWS
    assert response.capabilities & Capability.CONNECT_WITH_DB
    assert not response.capabilities & Capability.SSL
    stored = hashlib.sha1(hashlib.sha1(b"pw").digest()).digest()
    assert auth.native_check(response.auth_response, SCRAMBLE, stored)
    assert wire.auth_reply(2, OK(status=2).encode()) == b""
    assert wire.state is READY and wire.status == 2


@pytest.mark.parametrize("offered", [True, False], ids=["mariadb-offers", "not-offered"])
def test_extended_metadata_flavour_asks_only_a_server_that_offers_it(offered: bool) -> None:
    """MariaDB reads the extended capabilities of a client without CLIENT_MYSQL only."""
    caps = 0xFFFFFFFF & ~CLIENT_MYSQL if offered else 0xFFFFFFFF
    hello = Handshake(b"10.11.0-MariaDB", 7, SCRAMBLE, caps, auth_plugin=auth.NATIVE,
                      extended=MARIADB_CLIENT_EXTENDED_METADATA).encode()
    wire = ClientConnection()
    wire.greeting(0, hello, flavour=FLAVOUR_EXTENDED_METADATA, schema=None, tls=False)
    response = HandshakeResponse.decode(payload_of(wire.login_response("dal", b"pw", None))[1])
    assert wire.extended_metadata is offered
    assert bool(response.extended & MARIADB_CLIENT_EXTENDED_METADATA) is offered
    assert bool(response.capabilities & CLIENT_MYSQL) is not offered
    assert not response.capabilities & Capability.FOUND_ROWS


def test_tls_login_sends_an_ssl_request_first() -> None:
    wire = ClientConnection()
    wire.greeting(0, greeting(auth.CACHING_SHA2), flavour=0, schema=None, tls=True)
    seq, request = payload_of(wire.ssl_request())
    assert seq == 1 and len(request) == 32
    assert int.from_bytes(request[:4], "little") & Capability.SSL
    seq, _ = payload_of(wire.login_response("dal", b"pw", None))
    assert seq == 2
    assert wire.auth_reply(3, auth.SHA2_FULL_AUTH) == frame(b"pw\x00", 4)  # clear over TLS


def test_auth_switch_and_sha2_exchanges() -> None:
    wire = ClientConnection()
    wire.greeting(0, greeting(), flavour=0, schema=None, tls=False)
    wire.login_response("dal", b"pw", None)
    other = b"zyxwvutsrqponmlkjihg"
    seq, answer = payload_of(wire.auth_reply(2, b"\xfe" + auth.CACHING_SHA2 + b"\x00"
                                             + other + b"\x00"))
    assert seq == 3 and answer == auth.sha2_response(b"pw", other)
    assert wire.auth_reply(4, auth.SHA2_FAST_OK) == b""  # the OK follows
    assert payload_of(wire.auth_reply(4, auth.SHA2_FULL_AUTH)) == (
        5, auth.SHA2_REQUEST_PUBLIC_KEY)  # no TLS: ask for the key
    with pytest.raises(ProtocolError):
        wire.auth_reply(6, b"\x07what")


def test_login_refused() -> None:
    wire = ClientConnection()
    with pytest.raises(LoginRefused) as info:
        wire.greeting(0, ERR(1129, "blocked", "HY000").encode(), flavour=0,
                      schema=None, tls=False)
    assert info.value.code == 1129
    wire = ClientConnection()
    wire.greeting(0, greeting(), flavour=0, schema=None, tls=False)
    wire.login_response("dal", b"bad", None)
    with pytest.raises(LoginRefused) as info:
        wire.auth_reply(2, ERR(1045, "Access denied", "28000").encode())
    assert (info.value.code, info.value.sqlstate) == (1045, "28000")
    with pytest.raises(LoginRefused) as info:
        wire.auth_reply(2, b"\xfeunknown_plugin\x00" + SCRAMBLE + b"\x00")
    assert info.value.code == 1251


def test_one_command_at_a_time() -> None:
    wire = logged_in()
    wire.start_command()
    assert wire.state is BUSY and wire.busy
    with pytest.raises(RuntimeError, match="in flight"):
        wire.start_command()
    wire.command_done()
    assert wire.state is READY and not wire.busy


def test_no_command_before_the_login_ends() -> None:
    with pytest.raises(RuntimeError):
        ClientConnection().start_command()


def test_closed_under_a_command_until_its_end_is_reported() -> None:
    wire = logged_in()
    wire.start_command()
    wire.mark_closed()  # the backend hung up: the command is still the owner's to report
    assert wire.state is LOST and wire.closed and wire.busy
    wire.command_done()
    assert wire.state is CLOSED and wire.closed and not wire.busy
    wire.start_command()  # found dead when used: reported as lost too
    assert wire.state is LOST and wire.busy
    wire.command_done()
    wire.command_done()
    assert wire.state is CLOSED


def test_hot_transitions_follow_the_table() -> None:
    for state, what, method in ((READY, "command", "start_command"),
                                (BUSY, "done", "command_done"),
                                (CLOSED, "command", "start_command"),
                                (LOST, "done", "command_done"),
                                (CLOSED, "done", "command_done")):
        wire = logged_in()
        if state is not READY:
            wire.start_command()
        if state is LOST:
            wire.mark_closed()
        elif state is CLOSED:
            wire.mark_closed()
            wire.command_done()
        assert wire.state is state
        getattr(wire, method)()
        assert wire.state is TRANSITIONS[(state, what)]
        assert wire.busy is (wire.state in (BUSY, LOST))
        assert wire.closed is (wire.state in (LOST, CLOSED))


def test_packets_between_commands() -> None:
    wire = logged_in()
    data = frame(b"\x00\x00\x00\x02\x00\x00\x00", 1)
    wire.receive_data(data[:3])
    assert wire.next_packet() is None
    wire.receive_data(data[3:])
    assert wire.next_packet() == (1, b"\x00\x00\x00\x02\x00\x00\x00")
