"""Words for EXPLAIN DAL: column references, slot references and HAVING predicates as text."""

from __future__ import annotations

from router.engine.base import Slots
from router.engine.spec import Ref, SlotRef, position, slot_int


def column(index: int) -> str:
    """A shard column: ``#n`` (1-based, as ORDER BY n), or a hidden one counted from the end."""
    return f"#{index + 1}" if index >= 0 else f"hidden {index}"


def ref(value: Ref, slots: Slots | None) -> str:
    """A column reference that may come from a literal slot (``ORDER BY 2``)."""
    if not isinstance(value, SlotRef):
        return column(value)
    if slots is None:
        return f"position in literal {value.slot}"
    found = position(value, slots)
    return "a constant (orders nothing)" if found is None else column(found)


def count(value: Ref | None, slots: Slots | None) -> str:
    """A LIMIT/OFFSET count, read from its literal when ``slots`` are given."""
    if not isinstance(value, SlotRef):
        return "none" if value is None else str(value)
    if slots is None:
        return f"literal {value.slot}"
    try:
        return str(slot_int(value, slots))
    except ValueError:
        return f"{slots[value.slot][0].decode('utf-8', 'replace')} (not a count)"


def predicate(node: tuple, slots: Slots | None) -> str:
    """A HAVING predicate (router.primitives.having's tuples) as infix text."""
    op = node[0]
    if op == "col":
        return column(node[1])
    if op == "lit":
        return repr(node[1])
    if op == "slot":
        return (f"literal {node[1]}" if slots is None
                else slots[node[1]][0].decode("utf-8", "replace"))
    if op == "slots":
        return (f"literals {node[1]}" if slots is None
                else b", ".join(slots[node[1]]).decode("utf-8", "replace"))
    if op == "in":
        items = ", ".join(predicate(item, slots) for item in node[2])
        return f"{predicate(node[1], slots)} IN ({items})"
    if op in ("cmp", "arith"):  # (op, symbol, left, right)
        return f"({predicate(node[2], slots)} {node[1]} {predicate(node[3], slots)})"
    parts = [predicate(x, slots) if isinstance(x, tuple) else str(x) for x in node[1:]]
    if op in ("and", "or", "xor"):
        return f"({parts[0]} {op.upper()} {parts[1]})"
    return f"{op.upper()}({', '.join(parts)})"
