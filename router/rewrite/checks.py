"""The statement shapes a scatter read refuses: those the merge cannot reproduce exactly."""

from __future__ import annotations

from collections.abc import Collection

from sqlglot import exp

from router.primitives.errors import ScatterUnsupported
from router.rewrite.nodes import AGGREGATES, OTHER_AGGREGATES, clauses, has_aggregate


def check_statement(tree: exp.Expression, broadcast: Collection[str] | None = None) -> None:
    """Refuse statement shapes the merge cannot reproduce exactly."""
    if not isinstance(tree, exp.Select):
        raise ScatterUnsupported(f"{_kind(tree)} across shards")
    if tree.args.get("with_") or tree.args.get("with"):
        raise ScatterUnsupported("WITH (common table expressions) across shards")
    if tree.args.get("laterals"):
        raise ScatterUnsupported("LATERAL across shards")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not _is_base_table(source.this):
        raise ScatterUnsupported("a derived table (subquery or parenthesised join in FROM) "
                                 "or no table")
    _check_joins(tree, source.this, broadcast)
    if tree.args.get("into"):
        raise ScatterUnsupported("SELECT ... INTO across shards")
    modifiers = {m.name.upper() for m in tree.args.get("operation_modifiers") or []}
    if "SQL_CALC_FOUND_ROWS" in modifiers:
        raise ScatterUnsupported("SQL_CALC_FOUND_ROWS across shards")
    group = tree.args.get("group")
    if group is not None and any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets",
                                                              "totals")):
        raise ScatterUnsupported("GROUP BY ... WITH ROLLUP across shards")
    for clause, nodes in clauses(tree):
        for node in nodes:
            _check_clause(clause, node)
    for node in group.expressions if group is not None else ():
        if has_aggregate(node):
            raise ScatterUnsupported("an aggregate in GROUP BY")


_JOIN_KINDS = frozenset({"", "INNER", "CROSS", "OUTER", "STRAIGHT_JOIN"})


def _check_joins(tree: exp.Select, first: exp.Table,
                 broadcast: Collection[str] | None) -> None:
    """Joins of base tables, inner or outer (not FULL), with conditions free of subqueries;
    with ``broadcast`` known, every result row must hold a row of a sharded table (one that
    every row keeps: the FROM table or an inner-joined one, or the preserved side of a RIGHT
    JOIN)."""
    kept = {first.alias_or_name}
    for join in tree.args.get("joins") or []:
        target = join.this
        if not _is_base_table(target):
            raise ScatterUnsupported("a derived table (subquery or parenthesised join) in "
                                     "JOIN across shards")
        kind = (join.args.get("kind") or "").upper()
        side = (join.args.get("side") or "").upper()
        if kind not in _JOIN_KINDS or side not in ("", "LEFT", "RIGHT"):
            raise ScatterUnsupported(f"{' '.join(filter(None, (side, kind)))} JOIN across "
                                     "shards")
        if side == "RIGHT":
            kept = {target.alias_or_name}
        elif side != "LEFT":
            kept.add(target.alias_or_name)
        on = join.args.get("on")
        if on is not None:
            if on.find(exp.Subquery, exp.Select, exp.Exists):
                raise ScatterUnsupported("a subquery in a JOIN condition across shards")
            if has_aggregate(on) or on.find(exp.Window):
                raise ScatterUnsupported("an aggregate or window function in a JOIN condition")
    if broadcast is not None and kept <= set(broadcast):
        raise ScatterUnsupported("an outer join that keeps rows of broadcast tables alone "
                                 "(every shard would return them); join a sharded table "
                                 "with an inner join, or put it on the preserved side")


def _is_base_table(node: exp.Expression) -> bool:
    return (isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)
            and not node.args.get("joins"))


def _check_clause(clause: str, node: exp.Expression) -> None:
    if node.find(exp.Window):
        raise ScatterUnsupported(f"a window function in {clause}")
    if node.find(exp.Subquery, exp.Select, exp.Exists):
        raise ScatterUnsupported(f"a subquery in {clause}")
    for found in node.find_all(exp.AggFunc, exp.Anonymous):
        if isinstance(found, exp.Anonymous) and found.name.upper() not in OTHER_AGGREGATES:
            continue
        if type(found) not in AGGREGATES:
            raise ScatterUnsupported(f"{_function_name(found)}() in {clause}")
        if found.find_ancestor(exp.AggFunc) is not None:
            raise ScatterUnsupported(f"a nested aggregate in {clause}")


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    return node.sql(dialect="mysql").split("(", 1)[0].upper()


def _kind(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        return tree.key.upper()
    return f"a {tree.key.upper()} statement"
