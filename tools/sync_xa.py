"""XA transactions in the binlog, for `dal sync`: their XIDs, the prepared-but-undecided ones the
follower holds, and the JSON form in which those survive a follower restart.

MariaDB (10.5+) writes an XA transaction at XA PREPARE as one event group: a GTID event flagged
"prepared XA", the row events, a Query ``XA END X'..',X'..',1`` and an XA_PREPARE_LOG_EVENT
carrying the XID. The decision comes later, possibly from another connection or another DAL,
as a Query ``XA COMMIT X'..',X'..',1`` or ``XA ROLLBACK ...`` in a group of its own. A one-phase
commit (``XA COMMIT ... ONE PHASE``) is written like an ordinary transaction ending in an XID
event. The rows of a prepared XA are therefore held per XID until its COMMIT (applied there,
in binlog order: the prepared branch keeps its row locks until then) or ROLLBACK (dropped).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

XA_STATEMENT = re.compile(r"(?is)^\s*XA\s+(START|BEGIN|END|PREPARE|COMMIT|ROLLBACK|RECOVER)\b"
                          r"(.*)$")
_XID_PART = re.compile(r"\s*(?:[xX]'([0-9a-fA-F]*)'|'((?:[^'\\]|\\.|'')*)'|(\d+))\s*(,)?")


def xa_id(format_id: int, gtrid: bytes, bqual: bytes) -> str:
    """One spelling of an XID whatever the SQL that named it: ``format:gtrid_hex:bqual_hex``."""
    return f"{format_id}:{gtrid.hex()}:{bqual.hex()}"


def parse_xa(query: str) -> tuple[str, str | None] | None:
    """An XA statement's action (start, end, prepare, commit, rollback, recover) and XID;
    None for any other statement. ``XA COMMIT ... ONE PHASE`` is a commit like any other."""
    match = XA_STATEMENT.match(query)
    if match is None:
        return None
    action = match.group(1).lower()
    action = "start" if action == "begin" else action
    parts: list[bytes | int] = []
    rest = match.group(2)
    pos = 0
    while len(parts) < 3:
        part = _XID_PART.match(rest, pos)
        if part is None:
            break
        hex_, text, number = part.group(1), part.group(2), part.group(3)
        if hex_ is not None:
            parts.append(bytes.fromhex(hex_))
        elif text is not None:
            parts.append(_unquote(text).encode())
        else:
            parts.append(int(number))
        pos = part.end()
        if part.group(4) is None:
            break
    if not parts or not isinstance(parts[0], bytes):
        return action, None
    gtrid = parts[0]
    bqual = parts[1] if len(parts) > 1 and isinstance(parts[1], bytes) else b""
    format_id = parts[-1] if len(parts) > 1 and isinstance(parts[-1], int) else 1
    return action, xa_id(format_id, gtrid, bqual)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)|''", lambda m: m.group(1) or "'", text)


# -- the JSON form of a held row change -----------------------------------------------------

def _encode(value: Any) -> Any:
    """A row value as JSON; every type but None, bool, int, float and str is tagged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return {"n": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"t": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, set | frozenset):
        return {"s": sorted(_encode(v) for v in value)}
    if isinstance(value, dict | list):
        return {"j": value}  # a JSON column, already JSON
    raise TypeError(f"cannot hold a binlog value of type {type(value).__name__} for a "
                    "prepared XA transaction")


_DECODERS = {
    "n": Decimal,
    "b": base64.b64decode,
    "dt": dt.datetime.fromisoformat,
    "d": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "td": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "s": lambda v: {_decode(x) for x in v},
    "j": lambda v: v,
}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        (tag, payload), = value.items()
        return _DECODERS[tag](payload)
    return value


def _row(row: dict | None, codec) -> dict | None:
    return None if row is None else {k: codec(v) for k, v in row.items()}


def encode_change(change: Any) -> str:
    """A row change (tools.sync_follow.Change) as one JSON text."""
    return json.dumps([change.schema, change.table, list(change.key_columns),
                       _row(change.before, _encode), _row(change.after, _encode)],
                      separators=(",", ":"))


def decode_change(text: str) -> tuple:
    """The fields of a Change, in order, from ``encode_change``'s text."""
    schema, table, keys, before, after = json.loads(text)
    return schema, table, tuple(keys), _row(before, _decode), _row(after, _decode)


# -- the held transactions -----------------------------------------------------------------

@dataclass
class Prepared:
    """A prepared XA transaction's row changes, held until its decision; ``end`` is the
    binlog position just after its XA_PREPARE event."""

    end: tuple[str, int]
    changes: list
    _rows: list[str] | None = field(default=None, repr=False)

    def rows(self) -> list[str]:
        """The changes as JSON texts (encoded once, when first persisted)."""
        if self._rows is None:
            self._rows = [encode_change(c) for c in self.changes]
        return self._rows


class PreparedSet:
    """The prepared XA transactions of one source that are not decided yet, by XID."""

    def __init__(self) -> None:
        self.held: dict[str, Prepared] = {}

    def add(self, xid: str, prepared: Prepared) -> Prepared | None:
        """Hold ``prepared``; returns what it replaces (the same XA read again after a
        restart, or an older XA of a reused XID)."""
        old = self.held.get(xid)
        self.held[xid] = prepared
        return old

    def resolve(self, xid: str) -> Prepared | None:
        """The held transaction of a COMMIT or ROLLBACK, no longer held; None when unknown
        (prepared before the follower's first start, or with no copied rows)."""
        return self.held.pop(xid, None)

    def load(self, saved: dict[str, tuple[tuple[str, int], list[str]]], change) -> int:
        """Hold what the targets saved (XID -> (prepare position, JSON rows)), each row made
        a Change by ``change(*fields)``; returns the rows loaded."""
        for xid, (end, rows) in saved.items():
            self.held[xid] = Prepared(end, [change(*decode_change(r)) for r in rows], rows)
        return sum(len(rows) for _, rows in saved.values())
