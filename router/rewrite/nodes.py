"""The sqlglot node tests and matching keys the scatter checks and rewrites share."""

from __future__ import annotations

from sqlglot import exp

from router.primitives import aggregate as agg
from router.primitives.errors import ScatterUnsupported

AGGREGATES: dict[type, str] = {exp.Count: agg.COUNT, exp.Sum: agg.SUM, exp.Min: agg.MIN,
                                exp.Max: agg.MAX, exp.Avg: agg.AVG}
# MySQL/MariaDB aggregates sqlglot may leave as anonymous functions.
OTHER_AGGREGATES = frozenset({
    "BIT_AND", "BIT_OR", "BIT_XOR", "GROUP_CONCAT", "JSON_ARRAYAGG", "JSON_OBJECTAGG", "STD",
    "STDDEV", "STDDEV_POP", "STDDEV_SAMP", "VARIANCE", "VAR_POP", "VAR_SAMP", "ANY_VALUE",
    "PERCENTILE_CONT", "PERCENTILE_DISC", "MEDIAN", "GROUPING",
})

def norm(node: exp.Expression, qualified: bool = False) -> str:
    """A matching key: MySQL column names and aliases are case-insensitive, and a single
    table's qualifier adds nothing. With ``qualified`` (a join) qualifiers are kept, and
    table aliases stay case-sensitive as MariaDB's are."""
    node = unparen(node)
    copy = node.copy()
    for column in list(copy.find_all(exp.Column)):
        if not qualified:
            column.set("table", None)
            column.set("db", None)
    for ident in copy.find_all(exp.Identifier):
        qualifier = (qualified and isinstance(ident.parent, exp.Column)
                     and ident.arg_key in ("table", "db", "catalog"))
        ident.set("this", ident.name if qualifier else ident.name.lower())
        ident.set("quoted", False)
    return copy.sql(dialect="mysql")


def unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def is_bare_column(node: exp.Expression) -> bool:
    """An unqualified column name (not ``*``)."""
    node = unparen(node)
    return isinstance(node, exp.Column) and not node.table and not isinstance(
        node.this, exp.Star)


def is_star(item: exp.Expression) -> bool:
    return isinstance(item, exp.Star) or (isinstance(item, exp.Column)
                                          and isinstance(item.this, exp.Star))


def named_by_value(item: exp.Expression) -> bool:
    """Items whose column name MariaDB derives from the value, not the text: columns (also
    parenthesised), literals and stars."""
    node = item
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        return True
    return isinstance(item, exp.Literal | exp.Placeholder | exp.Star)


def is_position(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit()


def slot_number(node: exp.Placeholder) -> int:
    name = node.name
    if not name.startswith("_") or not name[1:].isdigit():
        raise ScatterUnsupported(f"the placeholder {node.sql(dialect='mysql')}")
    return int(name[1:])


def clauses(tree: exp.Select) -> list[tuple[str, list[exp.Expression]]]:
    having = tree.args.get("having")
    order = tree.args.get("order")
    group = tree.args.get("group")
    return [("the select list", list(tree.expressions)),
            ("GROUP BY", list(group.expressions) if group is not None else []),
            ("HAVING", [having.this] if having is not None else []),
            ("ORDER BY", [o.this for o in order.expressions] if order is not None else [])]


def is_aggregated(tree: exp.Select) -> bool:
    return tree.args.get("group") is not None or any(
        has_aggregate(node) for clause, nodes in clauses(tree) if clause != "GROUP BY"
        for node in nodes)


def has_aggregate(node: exp.Expression) -> bool:
    return any(type(n) in AGGREGATES or isinstance(n, exp.AggFunc) or (
        isinstance(n, exp.Anonymous) and n.name.upper() in OTHER_AGGREGATES)
        for n in node.walk())
