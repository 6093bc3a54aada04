"""HAVING of an aggregate query: a predicate over the merged columns, run after the merge."""

from __future__ import annotations

from sqlglot import exp

from router.primitives.errors import ScatterUnsupported
from router.primitives.values import literal_value
from router.rewrite.builder import BRef, Builder
from router.rewrite.nodes import AGGREGATES, has_aggregate, slot_number

_COMPARISONS: dict[type, str] = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=",
                                 exp.GT: ">", exp.GTE: ">=", exp.NullSafeEQ: "<=>"}
_ARITHMETIC: dict[type, str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/",
                                exp.IntDiv: "div", exp.Mod: "mod"}
_LOGIC: dict[type, str] = {exp.And: "and", exp.Or: "or", exp.Xor: "xor"}


def rewrite_having(b: Builder) -> None:
    """An aggregate query's HAVING runs after the merge; a plain query's stays on the shards."""
    having = b.tree.args.get("having")
    if having is None or not b.aggregated:
        return
    b.having = _predicate(b, having.this)
    b.tree.set("having", None)


def _predicate(b: Builder, node: exp.Expression) -> tuple:
    """A HAVING expression as a predicate tree over merged columns."""
    if isinstance(node, exp.Paren):
        return _predicate(b, node.this)
    if type(node) in _LOGIC:
        return (_LOGIC[type(node)], _predicate(b, node.this), _predicate(b, node.expression))
    if isinstance(node, exp.Not):
        return ("not", _predicate(b, node.this))
    if type(node) in _COMPARISONS:
        return ("cmp", _COMPARISONS[type(node)], _predicate(b, node.this),
                _predicate(b, node.expression))
    if type(node) in _ARITHMETIC:
        return ("arith", _ARITHMETIC[type(node)], _predicate(b, node.this),
                _predicate(b, node.expression))
    if isinstance(node, exp.Neg):
        return ("neg", _predicate(b, node.this))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return ("isnull", _predicate(b, node.this))
    if isinstance(node, exp.In) and not node.args.get("query"):
        items = tuple(("slots", slot_number(e)) if isinstance(e, exp.Placeholder)
                      else _predicate(b, e) for e in node.expressions)
        b.slotted = b.slotted or any(i[0] == "slots" for i in items)
        return ("in", _predicate(b, node.this), items)
    if isinstance(node, exp.Between):
        return ("between", _predicate(b, node.this), _predicate(b, node.args["low"]),
                _predicate(b, node.args["high"]))
    return _operand(b, node)


def _operand(b: Builder, node: exp.Expression) -> tuple:
    """A HAVING leaf: a literal, a slot, an aggregate, or a per-group column."""
    if isinstance(node, exp.Placeholder):
        b.slotted = True
        return ("slot", slot_number(node))
    if isinstance(node, exp.Null):
        return ("lit", None)
    if isinstance(node, exp.Boolean):
        return ("lit", int(node.this))
    if isinstance(node, exp.Literal):
        return ("lit", node.this if node.is_string else literal_value(node.this.encode()))
    if type(node) in AGGREGATES:
        return ("col", b.add_aggregate(node))
    if has_aggregate(node):
        raise ScatterUnsupported(f"HAVING on {node.sql(dialect='mysql')} (only comparisons, "
                                 "AND/OR/NOT, IS NULL, IN, BETWEEN and + - * / over aggregates "
                                 "are merged)")
    return ("col", _having_column(b, node))


def _having_column(b: Builder, node: exp.Expression) -> BRef:
    """A non-aggregate HAVING operand: a GROUP BY column of that name first (as MariaDB
    prefers), then a select alias, then a select item, else a hidden per-group column."""
    group = b.tree.args.get("group")
    keys = [g for g in group.expressions] if group is not None else []
    if isinstance(node, exp.Column) and not node.table:
        group_names = {g.name.lower() for g in keys if isinstance(g, exp.Column)}
        # A GROUP BY name that no select item, WHERE or ON uses as a column is the alias it
        # names (GROUP BY s HAVING s > 0, with s an alias): its visible column, not a hidden
        # `s AS _dal_h0` that the shards cannot resolve.
        index = (b.alias_not_column(node.name) if node.name.lower() in group_names
                 else b.item_by_alias(node.name))
        if index is not None:
            return b.visible(index)
    index = b.item_by_expr(node)
    if index is not None:
        return b.visible(index)
    names = frozenset(g.name.lower() for g in keys if isinstance(g, exp.Column))
    return b.hide_expanded(node, "HAVING", names)
