"""A minimal binary-protocol client on DAL's own codec: prepare, execute, fetch, long data.

For tests that need exact control of COM_STMT_* packets (ids, cursors, back-to-back commands);
it logs in to DAL or to a backend instance alike.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from dal.wire.binary import (
    Execute,
    ParamType,
    PrepareOk,
    Value,
    column_types,
    decode_binary_row,
    encode_value,
)
from dal.wire.constants import MARIADB_CLIENT_STMT_BULK_OPERATIONS
from dal.wire.framing import frame
from dal.wire.messages import EOF, ERR
from router.rows.buffer import Reader
from router.rows.columns import ColumnDefinition
from tests.rawclient import RawClient


class ServerError(Exception):
    def __init__(self, err: ERR) -> None:
        super().__init__(f"({err.code}) {err.message}")
        self.code = err.code
        self.message = err.message


@dataclass
class Prepared:
    id: int
    params: int
    columns: list[ColumnDefinition]


@dataclass
class Response:
    columns: list[ColumnDefinition]
    rows: list[list[Value]]
    status: int = 0
    affected_rows: int = 0
    insert_id: int = 0


class PsClient(RawClient):
    """RawClient plus the prepared-statement commands, with TCP_NODELAY as drivers set it
    (COM_STMT_CLOSE has no reply: without it, the next command waits for a delayed ACK)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10) -> None:
        super().__init__(port, host, timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def login(self, user: str = "app", password: str = "app", database: str | None = "trade",
              collation: int = 45, extended: int | None = MARIADB_CLIENT_STMT_BULK_OPERATIONS
              ) -> bytes:
        """Log in as the MariaDB connectors do, offering bulk execution."""
        return super().login(user, password, database, collation, extended)

    def packet(self) -> bytes:
        got = self.read_packet()
        assert got is not None, "server closed the connection"
        return got[1]

    def _check(self, payload: bytes) -> bytes:
        if payload[:1] == b"\xff":
            raise ServerError(ERR.decode(payload))
        return payload

    def prepare(self, sql: str | bytes) -> Prepared:
        raw = sql.encode() if isinstance(sql, str) else sql
        self.send(frame(b"\x16" + raw, 0))
        return self.read_prepare()

    def read_prepare(self) -> Prepared:
        ok = PrepareOk.decode(self._check(self.packet()))
        for _ in range(ok.params):
            self.packet()
        if ok.params:
            assert self.packet()[0] == 0xFE
        columns = [ColumnDefinition.decode(self.packet()) for _ in range(ok.columns)]
        if ok.columns:
            assert self.packet()[0] == 0xFE
        return Prepared(ok.statement_id, ok.params, columns)

    def execute(self, statement_id: int, params: list[tuple[ParamType, Value]] = (),
                flags: int = 0, send: bool = True) -> bytes:
        """Send COM_STMT_EXECUTE (``send=False``: only return the framed packet)."""
        types = [t for t, _ in params]
        values = [None if v is None else encode_value(t[0], t[1], v) for t, v in params]
        packet = frame(Execute(statement_id, flags, 1, types, values).encode(), 0)
        if send:
            self.send(packet)
        return packet

    def execute_raw(self, statement_id: int, params: list[tuple[ParamType, Value]],
                    bound: bool) -> None:
        """Send COM_STMT_EXECUTE with the types (``bound``) or without them, as drivers do
        after the first execution (the server keeps the last types bound)."""
        packet = self.execute(statement_id, params, send=False)
        if not bound and params:
            payload = packet[4:]
            end = 10 + (len(params) + 7) // 8
            payload = payload[:end] + b"\x00" + payload[end + 1 + 2 * len(params):]
            packet = frame(payload, 0)
        self.send(packet)

    def read_result(self, cursor: bool = False) -> Response:
        first = self._check(self.packet())
        if first[0] == 0x00:
            r = Reader(first, 1)
            affected, insert_id = r.lenenc_int() or 0, r.lenenc_int() or 0
            return Response([], [], r.u16(), affected, insert_id)
        count = Reader(first).lenenc_int() or 0
        columns = [ColumnDefinition.decode(self.packet()) for _ in range(count)]
        eof = EOF.decode(self.packet())
        if cursor:
            return Response(columns, [], eof.status)
        return self._rows(columns)

    def _rows(self, columns: list[ColumnDefinition]) -> Response:
        types = column_types(columns)
        rows = []
        while True:
            payload = self._check(self.packet())
            if payload[0] == 0xFE and len(payload) < 9:
                return Response(columns, rows, EOF.decode(payload).status)
            rows.append(decode_binary_row(payload, types))

    def run(self, sql: str, params: list[tuple[ParamType, Value]] = ()) -> Response:
        """Prepare, execute once, close."""
        stmt = self.prepare(sql)
        self.execute(stmt.id, list(params))
        try:
            return self.read_result()
        finally:
            self.close_statement(stmt.id)

    def fetch(self, statement_id: int, rows: int, columns: list[ColumnDefinition]) -> Response:
        self.send(frame(b"\x1c" + statement_id.to_bytes(4, "little")
                        + rows.to_bytes(4, "little"), 0))
        return self._rows(columns)

    def long_data(self, statement_id: int, param: int, data: bytes) -> None:
        self.send(frame(b"\x18" + statement_id.to_bytes(4, "little")
                        + param.to_bytes(2, "little") + data, 0))

    def reset(self, statement_id: int) -> bytes:
        self.send(frame(b"\x1a" + statement_id.to_bytes(4, "little"), 0))
        return self._check(self.packet())

    def close_statement(self, statement_id: int) -> None:
        self.send(frame(b"\x19" + statement_id.to_bytes(4, "little"), 0))

    def ping(self) -> tuple[int, bytes]:
        self.send(frame(b"\x0e", 0))
        got = self.read_packet()
        assert got is not None
        return got
