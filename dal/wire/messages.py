"""Protocol messages: handshake, OK/ERR/EOF, column definitions and text rows.

Each message is a small dataclass with ``encode() -> bytes`` (the payload) and a ``decode``
classmethod that raises only `ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dal.wire.constants import CLIENT_MYSQL, EOF_HEADER, ERR_HEADER, OK_HEADER, Capability, Status
from router.rows.buffer import Reader, lenenc_bytes, lenenc_int, u16, u32
from router.rows.errors import ProtocolError
from router.rows.types import UTF8MB4_GENERAL_CI


@dataclass(slots=True)
class Handshake:
    """HandshakeV10, the server's greeting."""

    server_version: bytes
    connection_id: int
    scramble: bytes  # 20 bytes
    capabilities: int
    collation: int = UTF8MB4_GENERAL_CI
    status: int = Status.AUTOCOMMIT
    auth_plugin: bytes = b"mysql_native_password"
    extended: int = 0  # MariaDB's extended capabilities, sent when CLIENT_MYSQL (bit 0) is clear

    def encode(self) -> bytes:
        caps = self.capabilities
        return b"".join((
            b"\x0a",
            self.server_version, b"\x00",
            u32(self.connection_id),
            self.scramble[:8], b"\x00",
            u16(caps & 0xFFFF),
            bytes((self.collation & 0xFF,)),
            u16(self.status),
            u16((caps >> 16) & 0xFFFF),
            bytes((len(self.scramble) + 1,)),
            b"\x00" * 6, u32(0 if caps & CLIENT_MYSQL else self.extended),
            self.scramble[8:], b"\x00",
            self.auth_plugin, b"\x00",
        ))

    @classmethod
    def decode(cls, payload: bytes) -> Handshake:
        r = Reader(payload)
        protocol = r.u8()
        if protocol != 10:
            raise ProtocolError(f"unsupported handshake protocol version {protocol}")
        version = r.null_terminated()
        conn_id = r.u32()
        part1 = r.fixed(8)
        r.u8()
        caps = r.u16()
        collation = r.u8() if r.remaining() else UTF8MB4_GENERAL_CI
        status = r.u16() if r.remaining() >= 2 else 0
        caps |= (r.u16() << 16) if r.remaining() >= 2 else 0
        scramble_len = r.u8() if r.remaining() else 0
        extended = 0
        if r.remaining() >= 10:
            reserved = r.fixed(10)
            extended = 0 if caps & CLIENT_MYSQL else int.from_bytes(reserved[6:], "little")
        part2 = b""
        if caps & Capability.SECURE_CONNECTION:
            n = max(13, scramble_len - 8)
            part2 = r.fixed(min(n, r.remaining())).rstrip(b"\x00")
        plugin = b""
        if caps & Capability.PLUGIN_AUTH and r.remaining():
            plugin = r.null_terminated_or_rest()
        return cls(version, conn_id, part1 + part2, caps, collation, status, plugin, extended)


@dataclass(slots=True)
class HandshakeResponse:
    """HandshakeResponse41, the client's login."""

    capabilities: int
    max_packet: int
    collation: int
    user: bytes
    auth_response: bytes
    database: bytes | None = None
    auth_plugin: bytes | None = None
    attributes: dict[bytes, bytes] = field(default_factory=dict)
    extended: int = 0  # MariaDB's extended capabilities (the filler's last 4 bytes)

    def encode(self) -> bytes:
        caps = self.capabilities
        parts = [u32(caps), u32(self.max_packet), bytes((self.collation & 0xFF,)), b"\x00" * 19,
                 u32(0 if caps & CLIENT_MYSQL else self.extended),
                 self.user, b"\x00"]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            parts.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            parts += [bytes((len(self.auth_response),)), self.auth_response]
        else:
            parts += [self.auth_response, b"\x00"]
        if caps & Capability.CONNECT_WITH_DB:
            parts += [self.database or b"", b"\x00"]
        if caps & Capability.PLUGIN_AUTH:
            parts += [self.auth_plugin or b"", b"\x00"]
        if caps & Capability.CONNECT_ATTRS:
            attrs = b"".join(lenenc_bytes(k) + lenenc_bytes(v) for k, v in self.attributes.items())
            parts.append(lenenc_bytes(attrs))
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes) -> HandshakeResponse:
        r = Reader(payload)
        caps = r.u32()
        if not caps & Capability.PROTOCOL_41:
            raise ProtocolError("client does not speak protocol 4.1", code=1043, sqlstate="08S01")
        max_packet = r.u32()
        collation = r.u8()
        filler = r.fixed(23)
        extended = 0 if caps & CLIENT_MYSQL else int.from_bytes(filler[19:], "little")
        user = r.null_terminated()
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_str()
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.fixed(r.u8())
        else:
            auth = r.null_terminated()
        database = None
        if caps & Capability.CONNECT_WITH_DB and r.remaining():
            database = r.null_terminated_or_rest() or None
        plugin = None
        if caps & Capability.PLUGIN_AUTH and r.remaining():
            plugin = r.null_terminated_or_rest()
        attrs: dict[bytes, bytes] = {}
        if caps & Capability.CONNECT_ATTRS and r.remaining():
            block = Reader(r.lenenc_str())
            while block.remaining():
                key = block.lenenc_str()
                attrs[key] = block.lenenc_str()
        return cls(caps, max_packet, collation, user, auth, database, plugin, attrs, extended)


@dataclass(slots=True)
class SSLRequest:
    """The 32-byte packet a client sends before starting TLS."""

    capabilities: int
    max_packet: int
    collation: int


@dataclass(slots=True)
class OK:
    """An OK packet (header 0x00, or 0xFE when it ends a result set under DEPRECATE_EOF)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = Status.AUTOCOMMIT
    warnings: int = 0
    info: bytes = b""
    session_state: bytes = b""
    header: int = OK_HEADER

    def encode(self) -> bytes:
        parts = [bytes((self.header,)), lenenc_int(self.affected_rows),
                 lenenc_int(self.last_insert_id), u16(self.status), u16(self.warnings)]
        if self.info or self.session_state or self.status & Status.SESSION_STATE_CHANGED:
            parts.append(lenenc_bytes(self.info))
        if self.status & Status.SESSION_STATE_CHANGED:
            parts.append(lenenc_bytes(self.session_state))
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes) -> OK:
        r = Reader(payload)
        header = r.u8()
        if header not in (OK_HEADER, EOF_HEADER):
            raise ProtocolError(f"not an OK packet (header 0x{header:02x})")
        affected = r.lenenc_int() or 0
        insert_id = r.lenenc_int() or 0
        status = r.u16()
        warnings = r.u16()
        info = b""
        state = b""
        if r.remaining():
            info = r.lenenc_bytes() or b""
            if status & Status.SESSION_STATE_CHANGED and r.remaining():
                state = r.lenenc_bytes() or b""
        return cls(affected, insert_id, status, warnings, info, state, header)


@dataclass(slots=True)
class ERR:
    """An ERR packet: code, SQLSTATE and message."""

    code: int
    message: str
    sqlstate: str = "HY000"

    def encode(self) -> bytes:
        state = (self.sqlstate.encode() + b"HY000")[:5]
        return b"\xff" + u16(self.code) + b"#" + state + self.message.encode("utf-8", "replace")

    @classmethod
    def decode(cls, payload: bytes) -> ERR:
        r = Reader(payload)
        if r.u8() != ERR_HEADER:
            raise ProtocolError("not an ERR packet")
        code = r.u16()
        state = "HY000"
        if r.remaining() and r.data[r.pos] == 0x23:  # '#'
            r.u8()
            state = r.fixed(5).decode("ascii", "replace")
        return cls(code, r.rest().decode("utf-8", "replace"), state)


@dataclass(slots=True)
class EOF:
    """A classic EOF packet: warnings and status."""

    warnings: int = 0
    status: int = Status.AUTOCOMMIT

    def encode(self) -> bytes:
        return b"\xfe" + u16(self.warnings) + u16(self.status)

    @classmethod
    def decode(cls, payload: bytes) -> EOF:
        if len(payload) < 5 or payload[0] != EOF_HEADER:
            raise ProtocolError("not an EOF packet")
        r = Reader(payload, 1)
        return cls(r.u16(), r.u16())


def is_eof(payload: bytes) -> bool:
    """EOF = header 0xFE and fewer than 9 bytes (a row can start with 0xFE, but is longer)."""
    return len(payload) < 9 and len(payload) > 0 and payload[0] == EOF_HEADER


def is_err(payload: bytes) -> bool:
    return len(payload) > 0 and payload[0] == ERR_HEADER


def is_ok(payload: bytes) -> bool:
    return len(payload) >= 7 and payload[0] == OK_HEADER
