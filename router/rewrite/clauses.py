"""The select list's aggregates, GROUP BY, ORDER BY, DISTINCT and LIMIT of a scatter read: what
the shards run and what the merge does after them."""

from __future__ import annotations

from sqlglot import exp

from router.engine.spec import SlotRef
from router.primitives.errors import ScatterUnsupported
from router.rewrite.builder import HIDDEN, BRef, Builder, Hidden
from router.rewrite.nodes import AGGREGATES, has_aggregate, is_position, slot_number


def rewrite_select_aggregates(b: Builder) -> None:
    """Each aggregate of the select list is merged; expressions over them are refused."""
    if not b.aggregated:
        return
    for item in b.items:
        node = item.unalias()
        if type(node) in AGGREGATES:
            b.add_aggregate(node)
        elif has_aggregate(node):
            raise ScatterUnsupported(f"an expression over an aggregate in the select list "
                                     f"({node.sql(dialect='mysql')}); select the aggregate "
                                     "itself")


def rewrite_group_by(b: Builder) -> None:
    """GROUP BY keys as shard columns (a select item, or hidden)."""
    group = b.tree.args.get("group")
    if group is None:
        return
    b.grouped = True
    for node in group.expressions:
        ref = _group_ref(b, node)
        if ref is not None:
            b.group_by.append(ref)


def _group_ref(b: Builder, node: exp.Expression) -> BRef | None:
    if isinstance(node, exp.Placeholder):
        return b.slot(node)
    if is_position(node):
        return b.visible(_position(b, node))
    if isinstance(node, exp.Literal | exp.Null):
        return None
    index = b.item_by_expr(node)
    if index is None and isinstance(node, exp.Column) and not node.table:
        # MariaDB prefers a table column of that name. Without the schema, a name is taken
        # for a column only when the select list or WHERE uses it as one.
        index = b.alias_not_column(node.name)
    return b.visible(index) if index is not None else b.hide(node)


def rewrite_order_by(b: Builder) -> None:
    """The final order: pushed to the shards of a plain query (so their streams merge), run
    after the merge of an aggregate query (GROUP BY alone orders by its keys in MariaDB)."""
    order = b.tree.args.get("order")
    ordered = list(order.expressions) if order is not None else []
    if ordered and all(isinstance(o.this, exp.Null) for o in ordered):
        return  # ORDER BY NULL: no order at all, not even GROUP BY's
    for o in ordered:
        ref = _order_ref(b, o.this)
        if ref is None:
            continue
        b.order.append((ref, bool(o.args.get("desc"))))
        if not b.aggregated and isinstance(ref, Hidden) and not isinstance(o.this, exp.Column):
            o.set("this", exp.column(f"{HIDDEN}{ref.index}"))
    if b.aggregated:
        keyed = {ref for ref, _ in b.order}
        b.order.extend((ref, False) for ref in b.group_by if ref not in keyed)
        b.tree.set("order", None)


def _order_ref(b: Builder, node: exp.Expression) -> BRef | None:
    if isinstance(node, exp.Placeholder):
        return b.slot(node)
    if is_position(node):
        return _position(b, node)  # a result column position, also after a *
    if isinstance(node, exp.Literal | exp.Null | exp.Boolean):
        return None
    if isinstance(node, exp.Column) and not node.table:
        index = b.item_by_alias(node.name)
        if index is not None:
            return b.visible(index)
    if type(node) in AGGREGATES:
        return b.add_aggregate(node)
    if has_aggregate(node):
        raise ScatterUnsupported(f"ORDER BY {node.sql(dialect='mysql')} (an expression over "
                                 "an aggregate); select it with an alias and order by that")
    index = b.item_by_expr(node)
    if index is not None:
        return b.visible(index)
    return b.hide_expanded(node, "ORDER BY")


def rewrite_distinct(b: Builder) -> None:
    """SELECT DISTINCT: pushed to the shards of a plain query, and always re-applied."""
    distinct = b.tree.args.get("distinct")
    if distinct is None:
        return
    if distinct.args.get("on"):
        raise ScatterUnsupported("DISTINCT ON across shards")
    b.distinct = True
    if b.aggregated:
        b.tree.set("distinct", None)


def rewrite_limit(b: Builder) -> None:
    """LIMIT m, n: the shards of a plain query return their first m+n rows."""
    limit = b.tree.args.get("limit")
    offset = b.tree.args.get("offset")
    if limit is None and offset is None:
        return
    b.limit = _count(b, limit.expression) if limit is not None else None
    b.offset = _count(b, offset.expression) if offset is not None else 0
    if b.aggregated:
        b.tree.set("limit", None)
        b.tree.set("offset", None)
        return
    if offset is None or limit is None:
        return
    if isinstance(b.limit, int) and isinstance(b.offset, int):
        pushed: exp.Expression = exp.Literal.number(b.limit + b.offset)
    else:
        b.limit_slot = 1 + max((slot_number(p) for p in b.tree.find_all(exp.Placeholder)),
                               default=-1)
        pushed = exp.Placeholder(this=f"_{b.limit_slot}")
    b.tree.set("offset", None)
    b.tree.set("limit", exp.Limit(expression=pushed))


def _count(b: Builder, node: exp.Expression) -> int | SlotRef:
    if isinstance(node, exp.Placeholder):
        return b.slot(node)
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    raise ScatterUnsupported(f"LIMIT {node.sql(dialect='mysql')} (only integer counts)")


def _position(b: Builder, node: exp.Literal) -> int:
    index = int(node.this) - 1
    if index < 0 or (b.star is None and index >= len(b.items)):
        raise ScatterUnsupported(f"position {node.this} is not a column of the select list")
    return index
