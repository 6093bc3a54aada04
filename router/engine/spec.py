"""What a scatter read's merge needs, built once per statement shape by `router.rewrite`.

A `MergeSpec` is plain data (ints, strings, tuples; hashable and picklable); `router.engine.build`
turns it into the merge primitives above a `Scatter`. Some fields name literal slots of the
statement (``LIMIT ?``, ``ORDER BY 2``, a HAVING literal): the primitives read those per
execution with the binding functions below, so one tree serves every statement of a shape.

Column references are shard column indexes; negative ones count from the end (hidden
columns, which the rewrite appends after the client's, including after a ``*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from router.primitives.values import literal_value

Slots = Sequence[Sequence[bytes]]


@dataclass(frozen=True, slots=True)
class SlotRef:
    """A value taken from literal slot ``slot`` of the statement at execution (the planner
    parses the fingerprint key, where literals are ``:_N``): a LIMIT/OFFSET count, or an
    ORDER BY/GROUP BY position (``ORDER BY 2``), which is a constant, not a position, when the
    literal is not an integer."""

    slot: int


Ref = int | SlotRef


@dataclass(frozen=True, slots=True)
class SortKey:
    column: Ref
    desc: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate to merge: its final value goes to shard column ``column``, computed from
    the partials in ``args`` (count/sum/min/max: the column itself; avg: the hidden SUM and
    COUNT; *_distinct: the hidden argument columns the shards grouped by)."""

    kind: str
    column: int
    args: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MergeSpec:
    """How to merge one scatter's results. Hashable and picklable.

    - ``hidden``: trailing shard columns dropped from the client's rows;
    - ``aggregated``: shard rows are partial aggregates to re-group by ``group_by``;
      ``grouped`` is False for aggregates without GROUP BY (exactly one row comes out);
    - ``having``: a predicate (see `router.primitives.having`) applied after the merge;
    - ``distinct``: deduplicate the client's columns (collation-aware);
    - ``order``: the final order (for GROUP BY without ORDER BY, MariaDB's implicit order by
      the group keys); ``presorted`` when shard streams arrive in that order (k-way merge);
    - ``limit``/``offset``: applied last;
    - ``names``: (column, parts) renaming client columns to the text the client wrote
      (parts are text or slot numbers);
    - ``slotted``: some field is a `SlotRef` or a ``("slot", n)`` node: `bind` before use.
    """

    hidden: int = 0
    aggregated: bool = False
    grouped: bool = False
    group_by: tuple[Ref, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    having: tuple | None = None
    distinct: bool = False
    order: tuple[SortKey, ...] = ()
    presorted: bool = False
    limit: Ref | None = None
    offset: Ref = 0
    names: tuple[tuple[int, tuple[str | int, ...]], ...] = ()
    slotted: bool = False

    def bind(self, slots: Slots) -> MergeSpec:
        """This spec with every slot reference replaced by the execution's literal."""
        if not self.slotted:
            return self
        return replace(self, group_by=bind_positions(self.group_by, slots),
                       order=bind_order(self.order, slots), names=bind_names(self.names, slots),
                       having=None if self.having is None else bind_predicate(self.having, slots),
                       limit=slot_int(self.limit, slots), offset=slot_int(self.offset, slots),
                       slotted=False)


def slot_int(ref: Ref | None, slots: Slots) -> int | None:
    """A LIMIT/OFFSET count: the int itself, or the integer literal in its slot."""
    if not isinstance(ref, SlotRef):
        return ref
    value = literal_value(slots[ref.slot][0])
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"LIMIT/OFFSET literal {slots[ref.slot][0]!r} is not a count")
    return value


def position(ref: Ref, slots: Slots) -> int | None:
    """A column index; for ``ORDER BY 2`` read from its slot (None: the literal is a constant,
    which orders or groups nothing)."""
    if not isinstance(ref, SlotRef):
        return ref
    value = literal_value(slots[ref.slot][0])
    return value - 1 if isinstance(value, int) and value >= 1 else None


def bind_positions(refs: tuple[Ref, ...], slots: Slots) -> tuple[int, ...]:
    """GROUP BY columns with their positions read (constants dropped)."""
    return tuple(c for c in (position(r, slots) for r in refs) if c is not None)


def bind_order(order: tuple[SortKey, ...], slots: Slots) -> tuple[SortKey, ...]:
    """ORDER BY keys with their positions read (constants dropped)."""
    return tuple(SortKey(c, k.desc) for k in order if (c := position(k.column, slots)) is not None)


def bind_names(names: tuple[tuple[int, tuple[str | int, ...]], ...],
               slots: Slots) -> tuple[tuple[int, tuple[str | int, ...]], ...]:
    """Column names with their literal parts written as this statement wrote them."""
    return tuple((i, ("".join(p if isinstance(p, str) else b", ".join(slots[p]).decode(
        "utf-8", "surrogateescape") for p in parts),)) for i, parts in names)


def bind_predicate(node: tuple, slots: Slots) -> tuple:
    """A HAVING predicate with its ``("slot", n)`` nodes replaced by the literals."""
    op = node[0]
    if op == "slot":
        return ("lit", literal_value(slots[node[1]][0]))
    if op in ("col", "lit"):
        return node
    if op == "in":
        items: list[tuple] = []
        for item in node[2]:
            if item[0] == "slots":
                items.extend(("lit", literal_value(v)) for v in slots[item[1]])
            else:
                items.append(bind_predicate(item, slots))
        return ("in", bind_predicate(node[1], slots), tuple(items))
    return tuple(bind_predicate(x, slots) if isinstance(x, tuple) else x for x in node)
