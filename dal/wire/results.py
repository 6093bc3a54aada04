"""Command responses: a scanner that finds where a relayed response ends, and an encoder for
result sets that DAL builds itself.

`ResponseScanner` reads a backend's response as raw stream chunks and reports when it is
complete, without copying or decoding rows: it only looks at each packet's header, its first
byte, and the status flags of terminators. This is what lets a single-target result be relayed
to the client as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dal.wire.constants import MAX_PAYLOAD, Status
from dal.wire.framing import frame
from dal.wire.messages import EOF, OK
from router.rows.buffer import lenenc_int
from router.rows.columns import ColumnDefinition, encode_text_row
from router.rows.errors import ProtocolError

_MORE_RESULTS = int(Status.MORE_RESULTS_EXISTS)  # a plain int: IntFlag ops are slow
_NOT_A_COUNT = frozenset({0x00, 0xFF, 0xFB, 0xFC, 0xFD, 0xFE})  # OK, ERR, INFILE, long counts

# Scanner states.
FIRST, COLUMNS, COLUMNS_EOF, ROWS, FIELDS, SINGLE, DONE = range(7)

# Response shapes, chosen by the command that was sent.
RESULT = FIRST      # COM_QUERY and friends: OK, ERR or a result set (possibly several)
FIELD_LIST = FIELDS  # COM_FIELD_LIST: column definitions up to an EOF, or ERR
ONE_PACKET = SINGLE  # COM_STATISTICS: one packet, whatever it holds


class ResponseScanner:
    """Tracks one command response packet by packet, across arbitrary chunk boundaries."""

    __slots__ = ("_carry", "_columns", "_deprecate_eof", "_rows_from", "_skip", "_split",
                 "affected", "error", "insert_id", "last_seq", "packets", "rows", "state",
                 "status", "warnings")

    def __init__(self, deprecate_eof: bool, shape: int = RESULT) -> None:
        self._deprecate_eof = deprecate_eof
        self.state = shape
        self._columns = 0
        self._skip = 0
        self._carry = b""
        self._split = False
        self.status = 0
        self.warnings = 0
        self.error = False
        self.insert_id = 0
        self.last_seq = 0
        self.packets = 0
        # What ROW_COUNT() and FOUND_ROWS() answer after this response: the OK's affected rows
        # (-1 after a result set), and the rows of the last result set (-1: none).
        self.affected = -1
        self.rows = -1
        self._rows_from = 0

    def reset(self, shape: int = RESULT) -> None:
        """Prepare for the next response on the same connection."""
        self.state = shape
        self._columns = 0
        self._skip = 0
        self._carry = b""
        self._split = False
        self.error = False
        self.insert_id = 0
        self.warnings = 0  # status is kept: an ERR reply does not carry one
        self.packets = 0
        self.affected = -1
        self.rows = -1

    @property
    def done(self) -> bool:
        return self.state == DONE


    @property
    def started(self) -> bool:
        """Some of the response has been read (a packet, or part of one)."""
        return bool(self.packets or self._carry or self._skip)

    def feed(self, data: bytes) -> int:
        """Scan a chunk. Returns the number of bytes of it that belong to this response.

        When the response ends inside the chunk, the rest does not belong to it (the peer sent
        something unexpected); the caller decides what to do with it.
        """
        state = self.state
        if state == FIRST and not self._carry and not self._skip:
            used = self._whole(data)
            if used:
                return used
        elif state == DONE:
            return 0
        start_len = len(data)
        base = 0
        if self._carry:
            base = len(self._carry)
            data = self._carry + data
            self._carry = b""
        pos = self._skip
        end = len(data)
        if pos >= end:
            self._skip = pos - end
            return start_len
        self._skip = 0
        while pos < end:
            if end - pos < 5:
                self._carry = data[pos:]
                return start_len
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            body = pos + 4
            after = body + length
            if self._split or length >= MAX_PAYLOAD:
                if self._split_packet(data[pos + 3], length, after - end):
                    return start_len
                pos = after
                continue
            if not length and self.state != ROWS:
                raise ProtocolError("empty packet in a response")
            first = data[body] if length else -1
            if after > end and self._needs_whole(first, length):
                self._carry = data[pos:]
                return start_len
            self.last_seq = data[pos + 3]
            self.packets += 1
            self._step(first, data, body, length)
            if self.state == DONE:
                used = min(after, end) - base
                if after > end:
                    self._skip = after - end
                return max(used, 0)
            if after > end:
                self._skip = after - end
                return start_len
            pos = after
        return start_len

    def _split_packet(self, seq: int, length: int, beyond: int) -> bool:
        """A packet of a row of 16 MiB or more, split into packets: the ones after the first
        are its continuation, whatever their first byte, and the last is shorter than
        0xFFFFFF. ``beyond``: how far the packet runs past the chunk; True if it does."""
        if self.state != ROWS:
            raise ProtocolError("split packet outside the rows of a result set")
        self._split = length >= MAX_PAYLOAD
        self.last_seq = seq
        self.packets += 1
        if beyond > 0:
            self._skip = beyond
            return True
        return False

    def _whole(self, data: bytes) -> int:
        """The common case in one pass: ``data`` starts with a whole result set with EOF
        terminators (a backend's, CLIENT_DEPRECATE_EOF not asked for), no packet of it split.
        Returns the bytes it used, with the scan done; or 0, having changed nothing, for
        `feed`'s packet-by-packet path (OK, ERR, partial or multiple results, OK terminators).
        """
        end = len(data)
        if end < 5 or data[4] in _NOT_A_COUNT or self._deprecate_eof:
            return 0
        skip = data[4] + 1  # the definitions and their EOF (a count of at least 1)
        pos = 4 + (data[0] | data[1] << 8 | data[2] << 16)
        last = pos
        for _ in range(skip):
            if pos + 5 > end:
                return 0
            last = pos
            pos += 4 + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
        if data[last + 4] != 0xFE:
            return 0  # no EOF after the definitions: the general path reports it
        rows = 0
        while pos + 4 < end:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            after = pos + 4 + length
            if after > end or not length or length >= MAX_PAYLOAD:  # partial, empty or split
                return 0
            first = data[pos + 4]
            if first == 0xFE and length < 9:  # the EOF that ends the result set
                if length < 5:
                    return 0  # a short EOF: the general path
                status = data[pos + 7] | data[pos + 8] << 8
                if status & _MORE_RESULTS:
                    return 0
                self.warnings = data[pos + 5] | data[pos + 6] << 8
                self.status = status
                self.state = DONE
                self.rows = rows
                self.affected = -1
                self.last_seq = data[pos + 3]
                self.packets += rows + skip + 2  # after earlier results of a multi-result one
                return after
            if first == 0xFF:
                return 0  # an error mid-result: the general path reports it
            rows += 1
            pos = after
        return 0

    def _needs_whole(self, first: int, length: int) -> bool:
        state = self.state
        if state == COLUMNS or (state == FIELDS and first not in (0xFE, 0xFF)):
            return False
        if state == ROWS:
            return first in (0xFE, 0xFF) and length < 0xFFFFFF
        return True

    def _step(self, first: int, data: bytes, body: int, length: int) -> None:
        state = self.state
        if state == ROWS:
            if first == 0xFE and (length < 9 if not self._deprecate_eof else length < MAX_PAYLOAD):
                self._end_result(data, body, length)
            elif first == 0xFF:
                self._fail()
            return
        if state == COLUMNS:
            self._columns -= 1
            if self._columns == 0:
                self.state = ROWS if self._deprecate_eof else COLUMNS_EOF
                self._rows_from = self.packets
            return
        if state == FIRST and first == 0x00:  # an OK: the answer to most writes
            self._end_result(data, body, length)
        elif state == FIRST:
            self._first(first, data, body, length)
        else:
            self._terminator(state, first, data, body, length)

    def _first(self, first: int, data: bytes, body: int, length: int) -> None:
        """The first packet of a response (or of the next result), not an OK: ERR or a
        column count."""
        if first == 0xFF:
            self._fail()
        elif first == 0xFB:
            raise ProtocolError("backend asked for LOCAL INFILE, which DAL does not support")
        else:
            if _lenenc_size(first) > length:
                raise ProtocolError("truncated column count")
            count = _lenenc_at(data, body)
            if count <= 0:
                raise ProtocolError("result set with no columns")
            self._columns = count
            self.state = COLUMNS

    def _terminator(self, state: int, first: int, data: bytes, body: int, length: int) -> None:
        """A packet in the states that wait for one terminator: the EOF after column
        definitions, the end of COM_FIELD_LIST's definitions, a one-packet response."""
        if state == COLUMNS_EOF:
            if first == 0xFE and length < 9:
                self.state = ROWS
                self._rows_from = self.packets
            elif first == 0xFF:
                self._fail()
            else:
                raise ProtocolError("missing EOF after column definitions")
            return
        if state == FIELDS:
            if first == 0xFE and length < 9:
                self.warnings = _u16_at(data, body + 1) if length >= 3 else 0
                self.status = _u16_at(data, body + 3) if length >= 5 else self.status
                self.state = DONE
            elif first == 0xFF:
                self._fail()
            return
        if state == SINGLE:
            if first == 0xFF:
                self.error = True
            self.state = DONE

    def _fail(self) -> None:
        self.error = True
        self.state = DONE

    def _end_result(self, data: bytes, body: int, length: int) -> None:
        if self.state == ROWS:
            self.rows = self.packets - self._rows_from - 1
            self.affected = -1
        if data[body] == 0xFE and length < 9 and not self._deprecate_eof:  # classic EOF
            self.warnings = _u16_at(data, body + 1) if length >= 3 else 0
            self.status = _u16_at(data, body + 3) if length >= 5 else 0
        else:  # OK: header, affected rows, insert id, status, warnings
            stop = body + length
            p = body + 1
            for field in range(2):
                if p >= stop or p + _lenenc_size(data[p]) > stop:
                    raise ProtocolError("truncated OK packet")
                if field == 1 and data[p]:
                    self.insert_id = _lenenc_at(data, p)
                elif field == 0 and self.state == FIRST:
                    self.affected = _lenenc_at(data, p)
                    self.rows = -1
                p += _lenenc_size(data[p])
            if p + 4 > stop:
                raise ProtocolError("truncated OK packet")
            self.status = _u16_at(data, p)
            self.warnings = _u16_at(data, p + 2)
        if self.status & _MORE_RESULTS:
            self.state = FIRST
        else:
            self.state = DONE


def _lenenc_size(first: int) -> int:
    return 1 if first < 0xFB else {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 1)


def _lenenc_at(data: bytes, pos: int) -> int:
    first = data[pos]
    if first < 0xFB:
        return first
    if first == 0xFC:
        return data[pos + 1] | data[pos + 2] << 8
    if first == 0xFD:
        return data[pos + 1] | data[pos + 2] << 8 | data[pos + 3] << 16
    if first == 0xFE and pos + 9 <= len(data):
        return int.from_bytes(data[pos + 1:pos + 9], "little")
    return -1


def _u16_at(data: bytes, pos: int) -> int:
    if pos + 1 >= len(data):
        raise ProtocolError("truncated terminator packet")
    return data[pos] | data[pos + 1] << 8


def encode_result_set(
    columns: Sequence[ColumnDefinition],
    rows: Iterable[Sequence[bytes | None]],
    *,
    deprecate_eof: bool,
    status: int = Status.AUTOCOMMIT,
    warnings: int = 0,
    seq: int = 1,
    extended: bool | None = None,
) -> bytes:
    """A whole text result set, framed, starting at sequence id ``seq``. ``extended``: the
    client negotiated MariaDB's extended metadata (every column definition then carries its
    block); None: each definition as decoded."""
    out = [frame(lenenc_int(len(columns)), seq)]
    seq += 1
    for col in columns:
        out.append(frame(col.encode(extended), seq))
        seq += 1
    if not deprecate_eof:
        out.append(frame(EOF(warnings, status).encode(), seq))
        seq += 1
    for row in rows:
        payload = encode_text_row(list(row))
        out.append(frame(payload, seq))
        seq += 1 + len(payload) // MAX_PAYLOAD
    if deprecate_eof:
        out.append(frame(OK(status=status, warnings=warnings, header=0xFE).encode(), seq))
    else:
        out.append(frame(EOF(warnings, status).encode(), seq))
    return b"".join(out)


def text_column(name: str, *, type_: int = 253, schema: str = "", table: str = "",
                length: int = 1024, charset: int = 45, flags: int = 0) -> ColumnDefinition:
    """A column definition for a result DAL builds itself (VAR_STRING unless told)."""
    raw = name.encode()
    return ColumnDefinition(name=raw, org_name=raw, type=type_, schema=schema.encode(),
                            table=table.encode(), org_table=table.encode(), length=length,
                            charset=charset, flags=flags)
