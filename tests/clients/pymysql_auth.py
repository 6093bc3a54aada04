"""pymysql connections that show which authentication path a login took.

pymysql answers the server greeting with the plugin the server announces (DAL announces
mysql_native_password), so on its own it reaches caching_sha2_password only through an auth
switch. `TracingConnection(sha2_first=True)` answers the greeting with a caching_sha2_password
scramble instead, as MySQL 8 clients do by default; that is how a login of a user whose only
stored hash is the native one reaches DAL's full-authentication (RSA) path.

Every connection records the server's packets of the connection phase in ``auth_trace``, as
short names:

- ``switch:<plugin>``: an AuthSwitchRequest to <plugin>;
- ``fast-ok`` / ``full-auth``: caching_sha2_password's fast-auth result (0x01 0x03 / 0x01 0x04);
- ``public-key``: the server's RSA public key (0x01 followed by a PEM);
- ``ok``: the final OK packet.
"""

from __future__ import annotations

import pymysql
from pymysql import _auth
from pymysql.connections import MysqlPacket


def describe_auth_packet(data: bytes) -> str:
    """The short name of one server packet of the connection phase."""
    if data[:1] == b"\x00":
        return "ok"
    if data[:1] == b"\xfe":
        return "switch:" + data[1:].split(b"\x00", 1)[0].decode("ascii", "replace")
    if data[:2] == b"\x01\x03":
        return "fast-ok"
    if data[:2] == b"\x01\x04":
        return "full-auth"
    if data[:1] == b"\x01" and b"PUBLIC KEY" in data:
        return "public-key"
    return f"other:{data[:8].hex()}"


class TracingConnection(pymysql.connections.Connection):
    """A pymysql connection that records the server's authentication packets."""

    def __init__(self, *args: object, sha2_first: bool = False, **kwargs: object) -> None:
        self.sha2_first = sha2_first
        self.auth_trace: list[str] = []
        self.announced_plugin: str | None = None
        self._tracing = False
        super().__init__(*args, **kwargs)

    def _get_server_information(self) -> None:
        super()._get_server_information()
        self.announced_plugin = self._auth_plugin_name
        if self.sha2_first:
            self._auth_plugin_name = "caching_sha2_password"
        self._tracing = True  # the greeting is read; trace what follows it

    def _request_authentication(self) -> None:
        try:
            super()._request_authentication()
        finally:
            self._tracing = False

    def _read_packet(self, packet_type: type = MysqlPacket) -> MysqlPacket:
        packet = super()._read_packet(packet_type)
        if self._tracing:
            self.auth_trace.append(describe_auth_packet(packet.get_all_data()))
        return packet


class CountingSha2Handler:
    """An ``auth_plugin_map`` handler for caching_sha2_password: counts its calls on the
    connection (``conn.sha2_handler_calls``) and lets pymysql's own implementation answer."""

    def __init__(self, conn: pymysql.connections.Connection) -> None:
        self.conn = conn

    def authenticate(self, packet: MysqlPacket) -> MysqlPacket:
        calls = getattr(self.conn, "sha2_handler_calls", 0)
        self.conn.sha2_handler_calls = calls + 1  # type: ignore[attr-defined]
        return _auth.caching_sha2_password_auth(self.conn, packet)
