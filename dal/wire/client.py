"""The client role of the MySQL protocol, sans-IO: the login exchange, then one command at a
time. As asyncpg's core protocol, it is the base of the class that owns the socket
(`pool.connection.BackendConnection`), which feeds it; nothing here reads or writes one.

States (named, and changed only by the methods below):
  GREETING  connected, waiting for the server's handshake
  AUTH      the login response went out: auth switches, caching_sha2 exchanges, then OK or ERR
  READY     logged in, no command in flight
  BUSY      a command is in flight (one at a time: a second one is an error, not a queue)
  LOST      closed with a command in flight whose end the owner has not reported yet
  CLOSED    closed or failed; never used again

``busy`` (BUSY or LOST) and ``closed`` (LOST or CLOSED) are kept beside ``state``, set by the
same transitions, so that the pool's hot path reads plain attributes.
"""

from __future__ import annotations

import struct

from dal.wire import auth
from dal.wire.constants import (
    CLIENT_MYSQL,
    FLAVOUR_EXTENDED_METADATA,
    FLAVOUR_FOUND_ROWS,
    MARIADB_CLIENT_EXTENDED_METADATA,
    Capability,
)
from dal.wire.framing import PacketBuffer, frame
from dal.wire.messages import ERR, OK, Handshake, HandshakeResponse, is_err
from router.rows.errors import ProtocolError

GREETING, AUTH, READY, BUSY, LOST, CLOSED = "greeting", "auth", "ready", "busy", "lost", "closed"

# (state, what happened) -> next state. `start_command` and `command_done` follow the same
# rules without the lookup (they run for every statement; a unit test holds them to it), and
# the relay of `pool.connection.BackendConnection` takes their READY <-> BUSY step inline.
TRANSITIONS: dict[tuple[str, str], str] = {
    (GREETING, "login"): AUTH,
    (AUTH, "ok"): READY,
    (READY, "command"): BUSY,
    (BUSY, "done"): READY,
    (CLOSED, "command"): LOST,  # found dead when used: the owner reports the loss
    (LOST, "done"): CLOSED,
    (CLOSED, "done"): CLOSED,
    (BUSY, "close"): LOST,
    (LOST, "close"): LOST,
    **{(state, "close"): CLOSED for state in (GREETING, AUTH, READY, CLOSED)},
}

BACKEND_CAPABILITIES = (
    Capability.LONG_PASSWORD | Capability.LONG_FLAG | Capability.PROTOCOL_41
    | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.CONNECT_ATTRS
)


class LoginRefused(Exception):
    """The server refused the login (its ERR), or asked for something DAL cannot do."""

    def __init__(self, code: int, message: str, sqlstate: str = "HY000") -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.sqlstate = sqlstate


class ClientConnection:
    """One backend connection's protocol state, client role."""

    __slots__ = ("_buffer", "_caps", "_extended", "_over_tls", "_password", "_plugin",
                 "_scramble", "_seq", "busy", "closed", "extended_metadata", "hello", "state",
                 "status")

    def __init__(self) -> None:
        self.state = GREETING
        self.busy = False
        self.closed = False
        self._buffer = PacketBuffer()
        self.hello: Handshake | None = None  # the server's greeting
        self.status = 0  # the server status flags of the last reply
        self._caps = 0
        self._extended = 0  # MariaDB extended capabilities asked for
        # Column definitions carry MariaDB's extended type info (negotiated at login).
        self.extended_metadata = False
        self._seq = 0
        self._over_tls = False
        self._password = b""
        self._scramble = b""
        self._plugin = auth.NATIVE

    def _move(self, what: str) -> None:
        state = TRANSITIONS.get((self.state, what))
        if state is None:
            raise RuntimeError(f"{what} is not allowed in state {self.state}")
        self.state = state
        self.busy = state is BUSY or state is LOST
        self.closed = state is LOST or state is CLOSED

    # -- bytes in ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server outside a relayed or collected response."""
        self._buffer.feed(data)

    def next_packet(self) -> tuple[int, bytes] | None:
        """The next whole packet: (sequence id, payload), or None until more bytes arrive."""
        packet = self._buffer.next_packet()
        return None if packet is None else (packet[0], packet[2])

    # -- login -------------------------------------------------------------------------------

    def greeting(self, seq: int, payload: bytes, *, flavour: int, schema: str | None,
                 tls: bool) -> Handshake:
        """Read the server's handshake; raises `LoginRefused` if it is an ERR. ``flavour``
        (`dal.wire.constants.FLAVOUR_*`): FOUND_ROWS, and extended metadata when the server
        offers it. With ``tls`` the owner checks that the server offers it
        (``hello.capabilities``) before `ssl_request`."""
        if is_err(payload):
            err = ERR.decode(payload)
            raise LoginRefused(err.code, err.message, err.sqlstate)
        hello = self.hello = Handshake.decode(payload)
        caps = BACKEND_CAPABILITIES | (flavour & FLAVOUR_FOUND_ROWS)
        if flavour & FLAVOUR_EXTENDED_METADATA and (
                hello.extended & MARIADB_CLIENT_EXTENDED_METADATA):
            # MariaDB reads the extended capabilities only from a client without CLIENT_MYSQL.
            caps &= ~CLIENT_MYSQL
            self._extended = MARIADB_CLIENT_EXTENDED_METADATA
            self.extended_metadata = True
        if schema:
            caps |= Capability.CONNECT_WITH_DB
        if tls:
            caps |= Capability.SSL
        self._caps, self._over_tls, self._seq = int(caps), tls, seq
        return hello

    def ssl_request(self) -> bytes:
        """The SSLRequest packet; the TLS handshake follows it on the same socket."""
        self._seq += 1
        return frame(struct.pack("<IIB23x", self._caps, 1 << 30, 45), self._seq)

    def login_response(self, user: str, password: bytes, schema: str | None) -> bytes:
        """The handshake response packet (over TLS if `ssl_request` went first)."""
        hello = self.hello
        assert hello is not None, "greeting first"
        self._password, self._scramble = password, hello.scramble
        self._plugin = hello.auth_plugin or auth.NATIVE
        login = HandshakeResponse(
            capabilities=self._caps, max_packet=1 << 30, collation=45, user=user.encode(),
            auth_response=auth_response(self._plugin, password, self._scramble),
            database=schema.encode() if schema else None, auth_plugin=self._plugin,
            attributes={b"program_name": b"dal"}, extended=self._extended,
        )
        self._move("login")
        return frame(login.encode(), self._seq + 1)

    def auth_reply(self, seq: int, payload: bytes) -> bytes:
        """Answer one packet of the auth exchange: the bytes to send (maybe none). After the
        server's OK the state is READY. Raises `LoginRefused` or `ProtocolError`."""
        head = payload[:1]
        password = self._password
        if head == b"\x00":
            self.status = OK.decode(payload).status
            self._password = b""
            self._move("ok")
            return b""
        if head == b"\xff":
            err = ERR.decode(payload)
            raise LoginRefused(err.code, err.message, err.sqlstate)
        if head == b"\xfe":  # auth switch
            plugin, _, data = payload[1:].partition(b"\x00")
            self._scramble = data.rstrip(b"\x00") or self._scramble
            return frame(auth_response(plugin, password, self._scramble), seq + 1)
        if head != b"\x01":
            raise ProtocolError(f"unexpected packet during login: {payload[:16]!r}")
        more = payload[1:2]
        if more == b"\x03":
            return b""  # sha2 fast auth succeeded; OK follows
        if more == b"\x04" and self._over_tls:
            return frame(password + b"\x00", seq + 1)  # over TLS: clear text
        if more == b"\x04":
            return frame(auth.SHA2_REQUEST_PUBLIC_KEY, seq + 1)
        return frame(rsa_encrypt(payload[1:], password, self._scramble), seq + 1)

    # -- commands ----------------------------------------------------------------------------

    def start_command(self) -> None:
        """A command goes out: READY -> BUSY (CLOSED -> LOST: found dead when used)."""
        state = self.state
        if state is READY:
            self.state = BUSY
            self.busy = True
        elif state is CLOSED:
            self._move("command")
        else:
            raise RuntimeError("backend connection already has a command in flight"
                               if self.busy else f"no commands in state {state}")

    def command_done(self) -> None:
        """The command's end was reported: BUSY -> READY, LOST -> CLOSED."""
        state = self.state
        if state is BUSY:
            self.state = READY
            self.busy = False
        elif state is LOST:
            self._move("done")

    def mark_closed(self) -> None:
        """Closed or failed: never used again."""
        self._move("close")


def auth_response(plugin: bytes, password: bytes, scramble: bytes) -> bytes:
    """The client's answer to a challenge of ``plugin``."""
    if plugin == auth.CACHING_SHA2:
        return auth.sha2_response(password, scramble)
    if plugin == auth.NATIVE:
        return auth.native_response(password, scramble)
    raise LoginRefused(1251, f"backend asks for unsupported auth plugin {plugin.decode()!r}",
                       "08004")


def rsa_encrypt(pem: bytes, password: bytes, scramble: bytes) -> bytes:
    """caching_sha2_password's full authentication over plain TCP: the password XOR the
    scramble, encrypted with the server's RSA public key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_public_key(pem)
    clear = password + b"\x00"
    nonce = scramble[:20]
    xored = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(clear))
    return key.encrypt(xored, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),  # type: ignore[union-attr]
                                           algorithm=hashes.SHA1(), label=None))
