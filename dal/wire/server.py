"""The server role of the MySQL protocol, sans-IO: bytes in, events out (h11's shape).

A `ServerConnection` never touches a socket. Its owner feeds it what the client sent
(`receive_data`) and asks for what that was (`next_event` for commands, `next_auth_packet` in
the connection phase and during a command's own authentication exchange). Replies are framed
by the owner (`frame`); the connection only counts where a command's reply starts.

States (named, and changed only by the methods below):
  LOGIN    the connection phase: handshake response, SSLRequest, auth packets
  COMMAND  logged in: each logical packet starting at sequence id 0 is a command
  CLOSED   closed, or failing: whatever still arrives is discarded

`whole_packet` is the hot path: a chunk that is exactly one command packet, with nothing
buffered, is recognised without passing through the packet buffer; its owner decodes it
(`decode_command`) unless it runs the command straight from the payload.
"""

from __future__ import annotations

from collections.abc import Callable

from dal.wire.constants import MAX_PAYLOAD, Command
from dal.wire.events import (
    AuthPacket,
    ComChangeUser,
    ComFieldList,
    ComInitDb,
    CommandEvent,
    ComPing,
    ComQuery,
    ComQuit,
    ComResetConnection,
    ComSetOption,
    ComStatistics,
    ComStmtBulkExecute,
    ComStmtClose,
    ComStmtExecute,
    ComStmtFetch,
    ComStmtPrepare,
    ComStmtReset,
    ComStmtSendLongData,
    EmptyPacket,
    ProtocolViolation,
    UnknownCommand,
)
from dal.wire.framing import PacketBuffer
from router.rows.errors import ProtocolError

LOGIN, COMMAND, CLOSED = "login", "command", "closed"

# The legal transitions: (state, what happened) -> next state. Every state change goes
# through `_move`, which refuses anything not listed here.
TRANSITIONS: dict[tuple[str, str], str] = {
    (LOGIN, "logged_in"): COMMAND,
    (LOGIN, "close"): CLOSED,
    (COMMAND, "close"): CLOSED,
    (CLOSED, "close"): CLOSED,
}

OUT_OF_ORDER = (1156, "08S01")  # ER_NET_PACKETS_OUT_OF_ORDER

Decoder = Callable[[bytes, int, "bytes | None"], CommandEvent]


def _stmt(cls: type) -> Decoder:
    return lambda payload, last_seq, raw: cls(payload[0], payload, last_seq)


# Command byte -> decoder(payload, last_seq, raw).
DECODERS: dict[int, Decoder] = {
    Command.QUERY: lambda payload, last_seq, raw: ComQuery(payload, last_seq, raw),
    Command.STMT_EXECUTE: lambda payload, last_seq, raw: ComStmtExecute(payload, last_seq),
    Command.PING: lambda payload, last_seq, raw: ComPing(),
    Command.QUIT: lambda payload, last_seq, raw: ComQuit(),
    Command.INIT_DB: lambda payload, last_seq, raw: ComInitDb(
        payload[1:].decode("utf-8", "replace")),
    Command.FIELD_LIST: lambda payload, last_seq, raw: ComFieldList(payload),
    Command.STATISTICS: lambda payload, last_seq, raw: ComStatistics(payload, last_seq),
    Command.RESET_CONNECTION: lambda payload, last_seq, raw: ComResetConnection(),
    Command.CHANGE_USER: lambda payload, last_seq, raw: ComChangeUser(payload),
    Command.SET_OPTION: lambda payload, last_seq, raw: ComSetOption(
        payload[1] | payload[2] << 8 if len(payload) >= 3 else -1),
    Command.STMT_PREPARE: _stmt(ComStmtPrepare),
    Command.STMT_CLOSE: _stmt(ComStmtClose),
    Command.STMT_RESET: _stmt(ComStmtReset),
    Command.STMT_SEND_LONG_DATA: _stmt(ComStmtSendLongData),
    Command.STMT_FETCH: _stmt(ComStmtFetch),
    Command.STMT_BULK_EXECUTE: lambda payload, last_seq, raw: ComStmtBulkExecute(payload),
}


def decode_command(payload: bytes, last_seq: int, raw: bytes | None = None) -> CommandEvent:
    """The event of one command's payload; ``raw`` is its framed packet, if sent as one."""
    if not payload:
        return EmptyPacket()
    decoder = DECODERS.get(payload[0])
    if decoder is None:
        return UnknownCommand(payload[0])
    return decoder(payload, last_seq, raw)


class ServerConnection:
    """One client connection's protocol state, server role."""

    __slots__ = ("_buffer", "_whole_limit", "held", "reply_seq", "state")

    def __init__(self, max_payload: int) -> None:
        self.state = LOGIN
        self._buffer = PacketBuffer(max_payload)
        # Empty exactly when nothing is buffered: the owner's test for more input, with no call.
        self.held = self._buffer.held
        self._whole_limit = min(max_payload, MAX_PAYLOAD - 1)  # largest one-packet command
        self.reply_seq = 0  # the sequence id the reply to the last command starts at

    def _move(self, what: str) -> None:
        state = TRANSITIONS.get((self.state, what))
        if state is None:
            raise RuntimeError(f"{what} is not allowed in state {self.state}")
        self.state = state

    def logged_in(self) -> None:
        """The connection phase ended with an OK: commands follow."""
        self._move("logged_in")

    def close(self) -> None:
        """Closed, or closing: nothing more is read, and what arrives is dropped."""
        self._move("close")
        self._buffer = PacketBuffer(0)
        self.held = self._buffer.held

    # -- bytes in ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client (dropped once closed)."""
        if self.state is not CLOSED:
            self._buffer.feed(data)

    def pending(self) -> int:
        """Bytes received and not yet read as packets (an incomplete packet, or more)."""
        return self._buffer.pending()

    def take_rest(self) -> bytes:
        """Everything received and not read yet, removed (the start of a TLS handshake)."""
        return self._buffer.take_rest()

    def whole_packet(self, data: bytes) -> int:
        """The hot path: the command byte of ``data`` when, in state COMMAND, it is exactly
        one whole packet with sequence id 0 and nothing is buffered before it (its payload is
        ``data[4:]``, its reply starts at sequence id 1); else -1 (then `receive_data` and
        `next_event`). The owner runs COM_QUERY and COM_STMT_EXECUTE from it directly and
        decodes the rest with `decode_command`."""
        n = len(data) - 4
        if (self.state is COMMAND and not self.held and n > 0 and data[3] == 0
                and data[0] | data[1] << 8 | data[2] << 16 == n and n <= self._whole_limit):
            self.reply_seq = 1
            return data[4]
        return -1

    def next_event(self) -> CommandEvent | None:
        """The next whole command, or None until more bytes arrive. Raises
        `ProtocolViolation` when the client broke framing; the connection is then closed."""
        if self.state is not COMMAND:
            return None
        try:
            packet = self._buffer.next_packet()
        except ProtocolError as exc:
            self.close()
            raise ProtocolViolation(str(exc), exc.code, exc.sqlstate, 1) from None
        if packet is None:
            return None
        first_seq, last_seq, payload = packet
        seq = self.reply_seq = (last_seq + 1) & 0xFF
        if first_seq != 0:
            self.close()
            raise ProtocolViolation("Got packets out of order: a command must start at "
                                    f"sequence id 0, got {first_seq}", *OUT_OF_ORDER, seq)
        return decode_command(payload, last_seq)

    def next_auth_packet(self) -> AuthPacket | None:
        """The next packet of an authentication exchange (the connection phase, or a
        command's own, COM_CHANGE_USER), or None until more bytes arrive. Raises
        `ProtocolError` (1153: too big) as the packet buffer does."""
        packet = self._buffer.next_packet()
        if packet is None:
            return None
        return AuthPacket(packet[1], packet[2])
