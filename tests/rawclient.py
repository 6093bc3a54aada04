"""A minimal blocking MySQL client on DAL's own codec, for tests that send bad bytes on purpose."""

from __future__ import annotations

import socket

from dal.wire import auth
from dal.wire.constants import CLIENT_MYSQL, Capability
from dal.wire.framing import PacketBuffer, frame
from dal.wire.messages import ERR, Handshake, HandshakeResponse

CLIENT_CAPS = (Capability.LONG_PASSWORD | Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION
               | Capability.PLUGIN_AUTH | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
               | Capability.TRANSACTIONS | Capability.CONNECT_WITH_DB)


class RawClient:
    """Speaks just enough protocol to log in, then sends whatever a test wants."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.buffer = PacketBuffer()

    def read_packet(self) -> tuple[int, bytes] | None:
        """The next packet, or None when the server closed the connection."""
        while True:
            packet = self.buffer.next_packet()
            if packet is not None:
                return packet[0], packet[2]
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer.feed(data)

    def greeting(self) -> Handshake:
        packet = self.read_packet()
        assert packet is not None, "server closed before its greeting"
        return Handshake.decode(packet[1])

    def login(self, user: str = "app", password: str = "app",
              database: str | None = "trade", collation: int = 45,
              extended: int | None = None) -> bytes:
        """Log in with mysql_native_password; returns the server's final packet payload.
        ``extended``: log in as a MariaDB client (CLIENT_MYSQL clear) with these extended
        capabilities."""
        hello = self.greeting()
        caps = int(CLIENT_CAPS) if extended is None else int(CLIENT_CAPS) & ~CLIENT_MYSQL
        response = HandshakeResponse(
            capabilities=caps, max_packet=1 << 30, collation=collation, extended=extended or 0,
            user=user.encode(),
            auth_response=auth.native_response(password.encode(), hello.scramble),
            database=database.encode() if database else None, auth_plugin=auth.NATIVE)
        self.send(frame(response.encode(), 1))
        packet = self.read_packet()
        assert packet is not None, "server closed during login"
        return packet[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def query(self, sql: bytes) -> list[bytes]:
        """Send COM_QUERY and read packets until an OK, ERR or EOF-terminated result."""
        self.send(frame(b"\x03" + sql, 0))
        return self.read_response()

    def read_response(self) -> list[bytes]:
        first = self.read_packet()
        assert first is not None, "server closed instead of answering"
        payloads = [first[1]]
        if first[1][0] in (0x00, 0xFF):
            return payloads
        eofs = 0
        while eofs < 2:
            packet = self.read_packet()
            assert packet is not None, "server closed mid-result"
            payloads.append(packet[1])
            if packet[1][0] == 0xFE and len(packet[1]) < 9:
                eofs += 1
            elif packet[1][0] == 0xFF:
                break
        return payloads

    def closed_by_server(self, timeout: float = 10) -> bool:
        """True if the server closes the connection (after any packets) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()


def error_of(payload: bytes) -> ERR:
    assert payload[:1] == b"\xff", f"expected an ERR packet, got {payload[:16]!r}"
    return ERR.decode(payload)
