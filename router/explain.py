"""`EXPLAIN DAL <sql>`: the plan's tree of primitives, one row per primitive, and its targets.

Columns: ``plan`` (the primitive, indented by its depth in the tree), ``targets`` and ``sql``.
Below a primitive that reaches backends, one ``->`` row per target shows the statement it
would get, rendered with this statement's literals: every target when there are a few; for a
scatter over many shards, the first one (the others differ only in their shard database, or
also in their own share of an IN list, as the row says). Nothing is run.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.model import Config
from router.engine.base import Primitive, Slots
from router.engine.build import build
from router.engine.insert import InsertSplit
from router.engine.local import SetVariables
from router.engine.route import Route
from router.engine.scatter import Scatter
from router.fingerprint import fingerprint
from router.plan import Plan
from router.planner import Router
from router.targets import Refusal, Target

HEADER = ["plan", "targets", "sql"]
LISTED = 8  # up to this many targets, each gets its row
Row = list[str | None]


def explain(router: Router, config: Config, sql: bytes, schema: str | None,
            admin: bool, databases: frozenset[str] | None = None,
            plan: Plan | None = None) -> list[Row]:
    """Plan ``sql`` (without running it) as a user with ``admin`` and ``databases``
    (`Router.plan`) would run it, and describe its tree (``plan``: made already)."""
    fp = fingerprint(sql)
    if plan is None:
        plan = router.plan(sql, fp, schema, admin, databases=databases)
    root = plan.root if isinstance(plan.root, Primitive) else build(plan)
    rows: list[Row] = []
    _walk(root, 0, config, fp.slots(sql), sql, rows)
    return rows


def _walk(node: Primitive, depth: int, config: Config, slots: Slots, sql: bytes,
          rows: list[Row]) -> None:
    indent = "  " * depth
    rows.append([indent + node.describe(slots), None, None])
    try:
        _targets(node, rows, indent + "  ", config, slots, sql)
    except Refusal as exc:
        rows.append([indent + "  Refuse", None, f"ERROR {exc.code}: {exc}"])
    for child in node.inputs():
        _walk(child, depth + 1, config, slots, sql, rows)


def _targets(node: Primitive, rows: list[Row], indent: str, config: Config, slots: Slots,
             sql: bytes) -> None:
    """Fill the primitive's row with its targets, and add a row per target it shows."""
    if isinstance(node, Route):
        plan = node.plan
        rows[-1][1] = f"{plan.schema} on {plan.instance}" if plan.schema else plan.instance
        rows[-1][2] = _text(plan.sql or sql)
    elif isinstance(node, SetVariables):
        rows[-1][2] = "; ".join(v for _, v in node.plan.assignments if v)
    elif isinstance(node, InsertSplit):
        split, _ = node.split(config, slots, None)
        statements = node.statements(config, slots, split)
        rows[-1][1] = _summary([t for t, _ in statements])
        rows += [[f"{indent}-> {t.database.decode()}", f"{t.database.decode()} on {t.instance}",
                  _text(statement)] for t, statement in statements]
    elif isinstance(node, Scatter):
        _scatter(node, rows, indent, config, slots)


def _scatter(node: Scatter, rows: list[Row], indent: str, config: Config, slots: Slots) -> None:
    found = node.targets(config, slots)
    if not node.sharded.routing.broadcast:
        found = sorted(found, key=lambda t: t.shard)
    if len(found) == 1:
        target = found[0]
        rows[-1][1] = (f"1 database: {_where(target)} (one shard: its statement relayed "
                       "raw, nothing merged)")
        sent = node.sharded.template.render(slots, target.database, target.only)  # type: ignore[arg-type]
        rows.append([f"{indent}-> {target.database.decode()}", _where(target), _text(sent)])
        return
    rows[-1][1] = _summary(found)
    if node.unmergeable is not None:  # refused when it reaches several shards
        rows.append([indent + "Refuse", None, f"ERROR 1235: DAL cannot merge this statement "
                     f"across shards: {node.unmergeable}"])
        return
    shown = found if len(found) <= LISTED else found[:1]
    sqls = node.render(slots, shown)
    for target, sent in zip(shown, sqls, strict=True):
        label = f"{indent}-> {target.database.decode()}"
        if len(shown) < len(found):
            own = " and IN-list values" if target.only is not None else ""
            label += f" (each of the {len(found)} the same, with its own database{own})"
        rows.append([label, _where(target), _text(sent)])


def _where(target: Target) -> str:
    return f"{target.database.decode()} on {target.instance}"


def _summary(found: Sequence[Target]) -> str:
    """``N shards: user_000..user_059 on a, user_060..user_119 on b`` (runs of consecutive
    shards of one instance), or each target when there are a few."""
    if len(found) <= LISTED:
        return f"{len(found)} {_noun(len(found))}: " + ", ".join(_where(t) for t in found)
    runs: list[list[Target]] = []
    for target in found:
        last = runs[-1][-1] if runs else None
        if (last is not None and last.instance == target.instance
                and target.shard == last.shard + 1 and last.shard >= 0
                and _prefix(last) == _prefix(target)):
            runs[-1].append(target)
        else:
            runs.append([target])
    parts = [(f"{r[0].database.decode()}..{r[-1].database.decode()}" if len(r) > 1
              else r[0].database.decode()) + f" on {r[0].instance}" for r in runs]
    return f"{len(found)} {_noun(len(found))}: " + ", ".join(parts)


def _noun(n: int) -> str:
    return "database" if n == 1 else "databases"


def _prefix(target: Target) -> bytes:
    return target.database.rstrip(b"0123456789")


def _text(sql: bytes) -> str:
    return sql.decode("utf-8", "replace")
