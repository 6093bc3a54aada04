"""The merge primitives' common shape: one input, and a step that turns its rows into others.

A merge primitive (`Aggregate`, `Distinct`, `MergeSort`, `Limit`, `Project`) sits above a
`Scatter`. ``step(slots)`` binds the node's slot references for one execution and returns a
function of (rows, max_rows); nothing reads a row until the root materialises the result, so
a k-way merge under a LIMIT stops reading early and a DISTINCT holds only what it passed.
Steps are bound top-down before any row flows (a bad ``LIMIT ?`` is refused before the shards
are asked) and applied bottom-up.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from itertools import chain

from router.engine.base import Bindings, Cursor, Primitive, Row, RowPrimitive, Rows, Slots

Step = Callable[[Rows, int], Rows]


class Merge(RowPrimitive):
    """A primitive that merges the rows of its one input."""

    def __init__(self, source: RowPrimitive) -> None:
        self.source = source

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.source,)

    @abstractmethod
    def step(self, slots: Slots) -> Step:
        """This node's work with the execution's literals bound."""

    async def fetch(self, cursor: Cursor, bindings: Bindings) -> Rows:
        """The merged rows of this subtree (lazy until the caller reads them)."""
        step = self.step(bindings.slots)
        rows = await self.source.fetch(cursor, bindings)
        return step(rows, cursor.max_merge_rows)

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        """The leaf runs the tree: it resolves its targets first (one relays raw)."""
        _, leaf = chain_of(self)
        leaf.execute_tree(self, cursor, bindings)  # type: ignore[attr-defined]


def chain_of(root: Primitive) -> tuple[list[Merge], Primitive]:
    """The merge nodes from ``root`` down (root first), and the leaf below them."""
    nodes: list[Merge] = []
    node = root
    while isinstance(node, Merge):
        nodes.append(node)
        node = node.source
    return nodes, node


def bind(nodes: list[Merge], slots: Slots) -> list[Step]:
    """Every node's step, bound root first; the list is in application order (leaf first)."""
    return [node.step(slots) for node in nodes][::-1]


def apply(steps: list[Step], rows: Rows, max_rows: int) -> Rows:
    """Run bound steps over the leaf's rows."""
    for step in steps:
        rows = step(rows, max_rows)
    return rows


def one_stream(rows: Rows) -> Iterable[Row]:
    """The input's streams one after another."""
    parts = rows.parts
    return parts[0] if len(parts) == 1 else chain.from_iterable(parts)
