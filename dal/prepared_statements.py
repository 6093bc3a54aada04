"""The prepared statements of one session: what DAL keeps of each, and the registry.

Data only, below every module that works with prepared statements (dal/prepared*.py, bulk).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dal.wire.binary import LAST_PREPARED, ParamType
from router.params import Shape
from router.plan import Plan


@dataclass(slots=True)
class Cursor:
    """A result kept by DAL for COM_STMT_FETCH: binary row payloads, served in order."""

    rows: list[bytes]
    status: int
    position: int = 0


@dataclass(slots=True, frozen=True)
class FastRoute:
    """How to route one prepared statement without decoding it (valid for one config and
    default schema)."""

    config: object
    schema: str | None
    plan: Plan
    params: int
    bitmap_end: int  # offset of the new-params-bound byte
    types: bytes  # the types block, 2 bytes per parameter
    key_at: int  # the key's offset from the first value; -1: one fixed backend (`fixed_route`)
    key_size: int
    key_signed: bool
    # The session's lexer modes when the route was planned: the statement text was checked as
    # read under them, and is prepared on backends under the session's sql_mode of the moment.
    modes: int = 0
    # shard database -> (the statement for it, its one-backend plan, its header renamer),
    # rendered on the route's first execution there; at most one entry per shard.
    shards: dict[bytes, tuple] = field(default_factory=dict, compare=False)


@dataclass(slots=True)
class Statement:
    """One prepared statement of a client session."""

    id: int
    sql: bytes
    shape: Shape
    columns: int
    text_mode: bool  # BEGIN, COMMIT, SET, USE: answered as the text statement (OK or ERR)
    types: list[ParamType] | None = None
    long_data: dict[int, bytearray] = field(default_factory=dict)
    cursor: Cursor | None = None  # a result kept for COM_STMT_FETCH
    fast: FastRoute | None = None  # how repeated executions skip decoding (dal.prepared_fast)


class Registry:
    """The prepared statements of one session, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.statements: dict[int, Statement] = {}
        self.next_id = 1
        self.last: int = 0
        # (statement id, shard database) -> (its sharded plan, the statement for that shard,
        # which parameter each ``?`` takes); at most MAX_RENDERED for the whole session.
        self.rendered: dict[tuple[int, bytes], tuple[object, bytes, list[int]]] = {}

    def get(self, statement_id: int) -> Statement | None:
        if statement_id == LAST_PREPARED:
            statement_id = self.last
        return self.statements.get(statement_id)
