"""The events a `ServerConnection` reads from a client: one small class per command.

Each command event keeps what its handler needs and nothing it has to decode again: the whole
``payload`` (command byte first) where a handler passes it on, and ``last_seq``, the sequence
id of the command's last packet (the reply starts after it). Slotted plain dataclasses, not
frozen ones: a frozen dataclass pays for `object.__setattr__` on every field, and `ComQuery`
is built for every statement.

Protocol violations are exceptions (`ProtocolViolation`), not events: after one the connection
is closed, with the MySQL error the exception carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.rows.errors import ProtocolError


class ProtocolViolation(ProtocolError):
    """The client broke framing (oversize packet, a command not at sequence id 0, split
    packets out of order): answer ``code``/``sqlstate`` at ``seq``, then close."""

    def __init__(self, message: str, code: int, sqlstate: str, seq: int) -> None:
        super().__init__(message, code=code, sqlstate=sqlstate)
        self.seq = seq


@dataclass(slots=True)
class AuthPacket:
    """A packet of the connection phase (handshake response, SSLRequest, auth data), or of
    a command's own authentication exchange (COM_CHANGE_USER)."""

    seq: int
    payload: bytes


class ComQuery:
    """COM_QUERY. ``raw``: the framed packet, when the client sent exactly that one packet
    (relayed as it is). Built for every statement: a hand-written slotted class, and ``sql``
    cut from the payload only when asked for."""

    __slots__ = ("last_seq", "payload", "raw")

    def __init__(self, payload: bytes, last_seq: int, raw: bytes | None = None) -> None:
        self.payload = payload
        self.last_seq = last_seq
        self.raw = raw

    @property
    def sql(self) -> bytes:
        """The statement text."""
        return self.payload[1:]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ComQuery) and self.payload == other.payload
                and self.last_seq == other.last_seq and self.raw == other.raw)

    def __hash__(self) -> int:
        return hash((self.payload, self.last_seq, self.raw))

    def __repr__(self) -> str:
        return f"ComQuery({self.payload!r}, {self.last_seq}, {self.raw!r})"


@dataclass(slots=True)
class ComStmtExecute:
    """COM_STMT_EXECUTE."""

    payload: bytes
    last_seq: int


@dataclass(slots=True)
class ComPing:
    """COM_PING."""


@dataclass(slots=True)
class ComQuit:
    """COM_QUIT."""


@dataclass(slots=True)
class ComInitDb:
    """COM_INIT_DB: the database name (decoded as UTF-8, bad bytes replaced)."""

    name: str


@dataclass(slots=True)
class ComFieldList:
    """COM_FIELD_LIST (the payload is relayed)."""

    payload: bytes


@dataclass(slots=True)
class ComStatistics:
    """COM_STATISTICS (the payload is relayed)."""

    payload: bytes
    last_seq: int


@dataclass(slots=True)
class ComResetConnection:
    """COM_RESET_CONNECTION."""


@dataclass(slots=True)
class ComChangeUser:
    """COM_CHANGE_USER (decoded by the handler: it depends on the client's capabilities)."""

    payload: bytes


@dataclass(slots=True)
class ComSetOption:
    """COM_SET_OPTION: 0 multi statements on, 1 off; -1 when the packet is too short."""

    option: int


@dataclass(slots=True)
class StmtCommand:
    """A prepared-statement command other than execute: ``code`` says which."""

    code: int
    payload: bytes
    last_seq: int


class ComStmtPrepare(StmtCommand):
    """COM_STMT_PREPARE."""

    __slots__ = ()


class ComStmtClose(StmtCommand):
    """COM_STMT_CLOSE."""

    __slots__ = ()


class ComStmtReset(StmtCommand):
    """COM_STMT_RESET."""

    __slots__ = ()


class ComStmtSendLongData(StmtCommand):
    """COM_STMT_SEND_LONG_DATA."""

    __slots__ = ()


class ComStmtFetch(StmtCommand):
    """COM_STMT_FETCH."""

    __slots__ = ()


@dataclass(slots=True)
class ComStmtBulkExecute:
    """COM_STMT_BULK_EXECUTE (MariaDB; a command only when the client negotiated it)."""

    payload: bytes


@dataclass(slots=True)
class UnknownCommand:
    """A command DAL does not support: ``code`` is its first byte."""

    code: int


@dataclass(slots=True)
class EmptyPacket:
    """A command packet with no payload at all (answered 1047; the connection stays)."""


CommandEvent = (ComQuery | ComStmtExecute | ComPing | ComQuit | ComInitDb | ComFieldList
                | ComStatistics | ComResetConnection | ComChangeUser | ComSetOption
                | StmtCommand | ComStmtBulkExecute | UnknownCommand | EmptyPacket)
