"""The server side of the connection phase: greeting, authentication, default database.

Runs once per client as a coroutine (the slow path). Supports mysql_native_password and
caching_sha2_password, including the full-auth path over plain TCP (RSA public key exchange)
that MySQL 8 clients take when DAL cannot verify a fast-auth scramble.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from config.model import User
from dal import errors
from dal.login_backoff import LoginBackoff
from dal.wire import auth
from dal.wire.constants import (
    MARIADB_CLIENT_EXTENDED_METADATA,
    MARIADB_CLIENT_STMT_BULK_OPERATIONS,
    Capability,
    Status,
)
from dal.wire.framing import frame
from dal.wire.messages import ERR, OK, Handshake, HandshakeResponse
from router.rows.errors import ProtocolError

# Without LONG_PASSWORD (CLIENT_MYSQL), as MariaDB: MariaDB clients then read the extended
# capabilities, where DAL offers bulk execution (dal.bulk) and extended type info in column
# definitions (relayed from backend connections that negotiated it too: pool flavours).
SERVER_CAPABILITIES = (
    Capability.FOUND_ROWS | Capability.LONG_FLAG
    | Capability.CONNECT_WITH_DB | Capability.NO_SCHEMA | Capability.IGNORE_SPACE
    | Capability.PROTOCOL_41 | Capability.INTERACTIVE | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS | Capability.SECURE_CONNECTION | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
)

SERVER_EXTENDED = MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA


class LoginFailed(Exception):
    """Login refused; ``err`` is what the client is told before the connection closes."""

    def __init__(self, err: ERR, seq: int) -> None:
        super().__init__(err.message)
        self.err = err
        self.seq = seq  # the sequence id the client expects the ERR at


@dataclass(slots=True)
class LoginResult:
    user: str
    user_config: User
    capabilities: int
    collation: int
    database: str | None
    attributes: dict[bytes, bytes]
    next_seq: int
    tls: bool = False
    extended: int = 0  # MariaDB extended capabilities both sides have
    scramble: bytes = b""  # the last one sent: COM_CHANGE_USER's first answer is made over it


ReadPacket = Callable[[], Awaitable[tuple[int, bytes]]]
Write = Callable[[bytes], None]
StartTLS = Callable[[], Awaitable[None]]


class Authenticator:
    """Checks logins against the configured users."""

    def __init__(self, users: dict[str, User], rsa: auth.RSAKeys,
                 backoff: LoginBackoff | None = None) -> None:
        self.users = users
        self.rsa = rsa
        self.backoff = backoff  # server.login_backoff; None: no backoff
        # The extended capabilities offered; extended metadata is dropped at start when the
        # default backend does not offer it (dal/server.py).
        self.extended = SERVER_EXTENDED

    async def login(self, read: ReadPacket, write: Write, server_version: bytes,
                    connection_id: int, peer: str,
                    start_tls: StartTLS | None = None) -> LoginResult:
        """Run the connection phase; raises `LoginFailed` or `ProtocolError`.

        ``start_tls``: DAL offers TLS; called on an SSLRequest, it upgrades the transport.
        """
        blocked = self.blocked(peer)
        if blocked is not None:  # refused before the greeting, as MySQL refuses a blocked host
            raise LoginFailed(blocked, 0)
        scramble = auth.new_scramble()
        offered = int(SERVER_CAPABILITIES) | (Capability.SSL if start_tls else 0)
        hello = Handshake(server_version, connection_id, scramble, offered,
                          status=Status.AUTOCOMMIT, auth_plugin=auth.NATIVE,
                          extended=self.extended)
        write(frame(hello.encode(), 0))
        seq, payload = await read()
        tls = False
        if len(payload) == 32 and int.from_bytes(payload[:4], "little") & Capability.SSL:
            if start_tls is None:
                raise LoginFailed(ERR(*_code(
                    errors.BAD_HANDSHAKE, "DAL offers no TLS (no server.tls in its config); "
                    "connect without SSL (ssl-mode=DISABLED)")), seq + 1)
            await start_tls()
            tls = True
            seq, payload = await read()
        response = HandshakeResponse.decode(payload)
        caps = response.capabilities & offered
        name = response.user.decode("utf-8", "replace")
        user = self.users.get(name)
        plugin = response.auth_plugin or auth.NATIVE
        data = response.auth_response
        ok = False
        await self.hold(name)
        if user is not None:
            ok, seq, data, scramble = await self.verify(user, plugin, data, scramble, seq, read,
                                                         write, tls)
        self.outcome(peer, name, ok)
        if not ok:
            using = "YES" if data else "NO"
            raise LoginFailed(ERR(*_code(
                errors.ACCESS_DENIED,
                f"Access denied for user '{name}'@'{peer}' (using password: {using})")), seq + 1)
        assert user is not None
        if user.require_tls and not tls:
            raise LoginFailed(ERR(*_code(
                errors.SECURE_TRANSPORT_REQUIRED, f"Connections using insecure transport are "
                f"prohibited for user '{name}' (users.{name}.require_tls); connect with TLS "
                "(ssl-mode=REQUIRED)")), seq + 1)
        database = response.database.decode("utf-8", "replace") if response.database else None
        return LoginResult(name, user, caps, response.collation, database,
                           response.attributes, seq + 1, tls, response.extended & self.extended,
                           scramble)

    def blocked(self, peer: str) -> ERR | None:
        """The 1129 refusal when ``peer`` is blocked by server.login_backoff, else None."""
        backoff = self.backoff
        seconds = backoff.blocked_for(peer) if backoff is not None else 0.0
        if backoff is None or not seconds:
            return None
        return ERR(*_code(errors.HOST_BLOCKED, f"Host '{peer}' is blocked for {seconds:.0f} more "
                          f"seconds after {backoff.failures_of(peer)} failed logins "
                          "(server.login_backoff); wait, then log in with the right password"))

    async def hold(self, name: str) -> None:
        """Wait before checking a password for a user with recent failures (every attempt
        waits, whatever its password, so that hanging up early tells nothing)."""
        delay = self.backoff.delay_for(name) if self.backoff is not None else 0.0
        if delay:
            await asyncio.sleep(delay)

    def outcome(self, peer: str, name: str, ok: bool) -> None:
        """Tell the backoff how a password check ended."""
        if self.backoff is not None:
            if ok:
                self.backoff.succeeded(peer, name)
            else:
                self.backoff.failed(peer, name)

    async def verify(self, user: User, plugin: bytes, data: bytes, scramble: bytes, seq: int,
                      read: ReadPacket, write: Write,
                      tls: bool = False) -> tuple[bool, int, bytes, bytes]:
        """Check the password; returns (accepted, last sequence id, the client's last answer,
        the scramble in force: ``scramble``, or the one an AuthSwitchRequest sent).

        Over TLS, caching_sha2_password's full authentication takes the password in clear
        text (as MySQL does); over plain TCP only RSA-encrypted."""
        switch = switch_plugin(user, plugin, data)
        if switch is not None:
            plugin = switch
            scramble = auth.new_scramble()
            write(frame(b"\xfe" + plugin + b"\x00" + scramble + b"\x00", seq + 1))
            seq, data = await read()
        ok, seq, data = await self._check(user, plugin, data, scramble, seq, read, write, tls)
        return ok, seq, data, scramble

    async def _check(self, user: User, plugin: bytes, data: bytes, scramble: bytes, seq: int,
                     read: ReadPacket, write: Write, tls: bool) -> tuple[bool, int, bytes]:
        native, sha2 = user.native_hash(), user.sha2_hash()
        if not data:
            return _empty_password(native, sha2), seq, data
        if plugin == auth.NATIVE:
            assert native is not None
            return auth.native_check(data, scramble, native), seq, data
        # caching_sha2_password
        if not data:
            return False, seq, data
        if sha2 is not None:
            if auth.sha2_check(data, scramble, sha2):
                write(frame(auth.SHA2_FAST_OK, seq + 1))
                return True, seq + 1, data
            return False, seq, data
        # Only the native hash is stored: the fast-auth scramble cannot be checked, so ask
        # for the password itself (RSA-encrypted unless over TLS), as MySQL does on a cache miss.
        write(frame(auth.SHA2_FULL_AUTH, seq + 1))
        seq, data = await read()
        if tls and data != auth.SHA2_REQUEST_PUBLIC_KEY:
            password = data[:-1] if data.endswith(b"\x00") else data
            return auth.password_matches(password, native, sha2), seq, data
        if data == auth.SHA2_REQUEST_PUBLIC_KEY:
            write(frame(b"\x01" + self.rsa.public_pem(), seq + 1))
            seq, data = await read()
        if len(data) < 64:
            raise LoginFailed(ERR(*_code(
                errors.ACCESS_DENIED, "caching_sha2_password full authentication over an "
                "unencrypted connection needs the RSA exchange; the client sent a cleartext "
                "password, which DAL refuses")), seq + 1)
        try:
            password = self.rsa.decrypt_password(data, scramble)
        except ValueError:
            return False, seq, data
        return auth.password_matches(password, native, sha2), seq, data


def switch_plugin(user: User, plugin: bytes, data: bytes) -> bytes | None:
    """The plugin to switch ``user`` to (AuthSwitchRequest), or None when the client's answer
    ``data`` made with ``plugin`` can be checked as it is: switch when the plugin cannot be
    checked, or when the client sent no answer to the challenge (libmariadb does that when its
    default plugin differs from the one announced, and expects a switch)."""
    native, sha2 = user.native_hash(), user.sha2_hash()
    if (plugin not in (auth.NATIVE, auth.CACHING_SHA2) or (plugin == auth.NATIVE
                                                             and native is None)
            or (not data and not _empty_password(native, sha2))):
        return auth.NATIVE if native is not None else auth.CACHING_SHA2
    return None


def _empty_password(native: bytes | None, sha2: bytes | None) -> bool:
    if sha2 is not None:
        return sha2 == hashlib.sha256(hashlib.sha256(b"").digest()).digest()
    return native == hashlib.sha1(hashlib.sha1(b"").digest()).digest()


def ok_packet(seq: int, status: int = Status.AUTOCOMMIT) -> bytes:
    """A framed OK packet."""
    return frame(OK(status=status).encode(), seq)


def err_packet(err: ERR, seq: int) -> bytes:
    """A framed ERR packet."""
    return frame(err.encode(), seq)


def _code(pair: tuple[int, str], message: str) -> tuple[int, str, str]:
    return pair[0], message, pair[1]


__all__ = ["Authenticator", "LoginFailed", "LoginResult", "ProtocolError", "err_packet",
           "ok_packet"]
