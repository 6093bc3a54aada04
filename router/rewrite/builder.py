"""The scatter rewrite's builder: the shard statement being transformed, the select items,
hidden columns and aggregates it references, and the merge spec being gathered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from router.engine.spec import Aggregate, MergeSpec, SlotRef, SortKey
from router.primitives import aggregate as agg
from router.primitives.errors import ScatterUnsupported
from router.rewrite.nodes import (
    AGGREGATES,
    has_aggregate,
    is_aggregated,
    is_bare_column,
    is_star,
    norm,
    slot_number,
    unparen,
)

HIDDEN = "_dal_h"


@dataclass(frozen=True, slots=True)
class Hidden:
    """The ``index``-th hidden column (resolved to a negative index at the end)."""

    index: int


BRef = int | Hidden | SlotRef


@dataclass
class Builder:
    """The shard statement being transformed (``tree``) and the merge plan being gathered."""

    tree: exp.Select
    text: str | None
    items: list[exp.Expression] = field(default_factory=list)
    exprs: list[str] = field(default_factory=list)        # normalised unaliased select items
    aliases: list[str | None] = field(default_factory=list)
    star: int | None = None                               # index of the first * item
    aggregated: bool = False
    hidden: list[exp.Expression] = field(default_factory=list)
    hidden_keys: dict[str, int] = field(default_factory=dict)
    aggregates: list[tuple[str, BRef, tuple[BRef, ...]]] = field(default_factory=list)
    aggregate_keys: dict[str, BRef] = field(default_factory=dict)
    extra_group: list[exp.Expression] = field(default_factory=list)
    extra_group_keys: set[str] = field(default_factory=set)
    group_by: list[BRef] = field(default_factory=list)
    grouped: bool = False
    having: tuple | None = None
    distinct: bool = False
    order: list[tuple[BRef, bool]] = field(default_factory=list)
    limit: int | SlotRef | None = None
    offset: int | SlotRef = 0
    limit_slot: int | None = None
    names: list[tuple[int, tuple[str | int, ...]]] = field(default_factory=list)
    slotted: bool = False
    columns: frozenset[str] = frozenset()  # names known to be table columns
    joined: bool = False                   # a join: column qualifiers tell columns apart

    def __post_init__(self) -> None:
        self.items = list(self.tree.expressions)
        joins = self.tree.args.get("joins") or []
        self.joined = bool(joins)
        self.exprs = [self.key(item.unalias()) for item in self.items]
        self.aliases = [item.alias.lower() if isinstance(item, exp.Alias) else None
                        for item in self.items]
        where = self.tree.args.get("where")
        ons = [j.args.get("on") for j in joins]
        self.columns = frozenset(  # select items, WHERE and ON cannot name aliases
            c.name.lower() for node in (*self.items, where, *ons) if node is not None
            for c in node.find_all(exp.Column) if not isinstance(c.this, exp.Star))
        stars = [i for i, item in enumerate(self.items) if is_star(item)]
        self.star = stars[0] if stars else None
        self.aggregated = is_aggregated(self.tree)
        if self.aggregated and self.star is not None:
            raise ScatterUnsupported("SELECT * with aggregates or GROUP BY")

    # references ---------------------------------------------------------------------------

    def key(self, node: exp.Expression) -> str:
        return norm(node, qualified=self.joined)

    def visible(self, index: int) -> BRef:
        """Select item ``index``, hidden again when a ``*`` before it hides its position."""
        if self.star is not None and self.star < index:
            return self.hide(self.items[index].unalias())
        return index

    def item_by_expr(self, node: exp.Expression) -> int | None:
        key = self.key(node)
        index = next((i for i, e in enumerate(self.exprs) if e == key), None)
        if index is None and self.joined and is_bare_column(node):
            # An unqualified name matches the select list's one column of that name (o.id),
            # as MariaDB resolves ORDER BY/GROUP BY names; several: left to the shards.
            name = unparen(node).name.lower()
            found = [i for i, item in enumerate(self.items) if not isinstance(item, exp.Alias)
                     and isinstance(unparen(item), exp.Column)
                     and not isinstance(unparen(item).this, exp.Star)
                     and unparen(item).name.lower() == name]
            index = found[0] if len(found) == 1 else None
        return index

    def item_by_alias(self, name: str) -> int | None:
        return next((i for i, a in enumerate(self.aliases) if a == name.lower()), None)

    def alias_not_column(self, name: str) -> int | None:
        """The select item aliased ``name``, unless ``name`` is known to be a table column
        too (MySQL resolves names inside expressions, and GROUP BY names, to the column)."""
        return None if name.lower() in self.columns else self.item_by_alias(name)

    def hide(self, node: exp.Expression) -> Hidden:
        """A hidden trailing column computing ``node`` on the shards."""
        key = self.key(node)
        if key not in self.hidden_keys:
            self.hidden_keys[key] = len(self.hidden)
            self.hidden.append(node.copy())
        return Hidden(self.hidden_keys[key])

    def slot(self, node: exp.Placeholder) -> SlotRef:
        self.slotted = True
        return SlotRef(slot_number(node))

    def expand_aliases(self, node: exp.Expression, keep: frozenset[str] = frozenset()
                       ) -> exp.Expression:
        """``node`` with references to select aliases replaced by the aliased expressions
        (select-list expressions cannot see aliases; ORDER BY and HAVING can)."""
        def swap(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and not n.table and n.name.lower() not in keep:
                i = self.alias_not_column(n.name)
                if i is not None:
                    return exp.paren(self.items[i].unalias().copy())
            return n
        return node.copy().transform(swap)

    def hide_expanded(self, node: exp.Expression, clause: str,
                      keep: frozenset[str] = frozenset()) -> Hidden:
        """Hide ``node`` of ORDER BY or HAVING, its alias references expanded; refused when
        that reveals an aggregate (the shards would compute it on partial groups)."""
        expanded = self.expand_aliases(node, keep)
        if self.aggregated and has_aggregate(expanded):
            raise ScatterUnsupported(f"{clause} {node.sql(dialect='mysql')} (an expression "
                                     "over an aggregate's alias)")
        return self.hide(expanded)

    # aggregates ---------------------------------------------------------------------------

    def add_aggregate(self, node: exp.Expression) -> BRef:
        """The column that will hold the merged value of aggregate ``node``."""
        key = self.key(node)
        if key in self.aggregate_keys:
            return self.aggregate_keys[key]
        kind = AGGREGATES[type(node)]
        index = self.item_by_expr(node)
        target: BRef = index if index is not None else self.hide(node)
        arg = node.this
        args: tuple[BRef, ...] = (target,)
        if isinstance(arg, exp.Distinct) and kind in (agg.COUNT, agg.SUM, agg.AVG):
            kind = f"{kind}_distinct"
            args = tuple(self.group_arg(e) for e in arg.expressions)
        elif kind == agg.AVG:
            args = (self.partial(exp.Sum(this=arg.copy())),
                    self.partial(exp.Count(this=arg.copy())))
        self.aggregates.append((kind, target, args))
        self.aggregate_keys[key] = target
        return target

    def partial(self, node: exp.Expression) -> BRef:
        """A column holding the shards' partial ``node``: the select item when the client
        selects it too, else hidden."""
        index = self.item_by_expr(node)
        return index if index is not None else self.hide(node)

    def group_arg(self, node: exp.Expression) -> BRef:
        """A hidden column the shards also GROUP BY (the argument of a DISTINCT aggregate)."""
        ref = self.hide(node)
        key = self.key(node)
        if key not in self.extra_group_keys:
            self.extra_group_keys.add(key)
            by = node.copy() if isinstance(node, exp.Column) else exp.column(
                f"{HIDDEN}{ref.index}")
            self.extra_group.append(by)
        return ref

    # result -------------------------------------------------------------------------------

    def merge_spec(self) -> MergeSpec:
        """The merge spec gathered; the hidden columns and extra GROUP BY keys are added to
        ``tree``, which is then the shard statement."""
        count = len(self.hidden)
        if self.distinct and not self.aggregated and count:
            raise ScatterUnsupported("SELECT DISTINCT with ORDER BY on an expression that is "
                                     "not in the select list")
        for i, node in enumerate(self.hidden):
            self.tree.append("expressions", exp.alias_(node, f"{HIDDEN}{i}"))
        if self.extra_group:
            group = self.tree.args.get("group") or exp.Group(expressions=[])
            for node in self.extra_group:
                group.append("expressions", node)
            self.tree.set("group", group)

        def ref(r: BRef) -> int | SlotRef:
            return r.index - count if isinstance(r, Hidden) else r

        def column(r: BRef) -> int:
            resolved = ref(r)
            assert isinstance(resolved, int)
            return resolved

        return MergeSpec(
            hidden=count, aggregated=self.aggregated, grouped=self.grouped,
            group_by=tuple(ref(r) for r in self.group_by),
            aggregates=tuple(Aggregate(kind, column(t), tuple(column(a) for a in args))
                             for kind, t, args in self.aggregates),
            having=None if self.having is None else _resolve_predicate(self.having, column),
            distinct=self.distinct, order=tuple(SortKey(ref(r), d) for r, d in self.order),
            presorted=not self.aggregated and bool(self.order),
            limit=self.limit, offset=self.offset, names=tuple(self.names),
            slotted=self.slotted)


def _resolve_predicate(node: tuple, column: Callable[[BRef], int]) -> tuple:
    if node[0] == "col":
        return ("col", column(node[1]))
    if node[0] in ("lit", "slot", "slots"):
        return node
    if node[0] == "in":
        return ("in", _resolve_predicate(node[1], column),
                tuple(_resolve_predicate(i, column) for i in node[2]))
    return tuple(_resolve_predicate(x, column) if isinstance(x, tuple) else x for x in node)
