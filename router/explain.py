"""`EXPLAIN DAL <sql>`: the plan of a statement as rows, one per target.

Columns: kind, dimension, shard, instance, sql. ``sql`` is exactly what would be sent.
"""

from __future__ import annotations

from config.model import Config
from router.fingerprint import fingerprint
from router.plan import LOCAL, REFUSE, ROUTE, SET, SHARDED, Plan
from router.planner import Router
from router.targets import Refusal, targets

HEADER = ["kind", "dimension", "shard", "instance", "sql"]


def explain(router: Router, config: Config, sql: bytes, schema: str | None,
            admin: bool) -> list[list[str | None]]:
    """Plan ``sql`` (without running it) and describe each target."""
    fp = fingerprint(sql)
    plan = router.plan(sql, fp, schema, admin)
    text = sql.decode("utf-8", "replace")
    if plan.kind == ROUTE:
        sent = (plan.sql or sql).decode("utf-8", "replace")
        return [["route", None, plan.schema, plan.instance, sent]]
    if plan.kind == LOCAL:
        return [["local", None, None, None, f"answered by DAL ({plan.handler})"]]
    if plan.kind == SET:
        return [["set", None, None, None, "; ".join(v for _, v in plan.assignments)]]
    if plan.kind == REFUSE:
        code, _, message = plan.error  # type: ignore[misc]
        return [["refuse", None, None, None, f"ERROR {code}: {message}"]]
    assert plan.kind == SHARDED
    return _sharded_rows(plan, config, fp.slots(sql), text)


def _sharded_rows(plan: Plan, config: Config, slots: list[list[bytes]],
                  text: str) -> list[list[str | None]]:
    sharded = plan.sharded
    if sharded.insert is not None:  # type: ignore[union-attr]
        return [["insert", sharded.routing.dimension, None, None,  # type: ignore[union-attr]
                 "rows split by user shard; ids generated where omitted: " + text]]
    try:
        found = targets(config, sharded, slots)  # type: ignore[arg-type]
    except Refusal as exc:
        return [["refuse", None, None, None, f"ERROR {exc.code}: {exc}"]]
    template = sharded.template  # type: ignore[union-attr]
    kind = "route"
    if len(found) > 1:
        kind = "scatter-write" if sharded.write else "scatter"  # type: ignore[union-attr]
        if not sharded.write and sharded.scatter_template is not None:  # type: ignore[union-attr]
            template = sharded.scatter_template  # type: ignore[union-attr]
            slots = sharded.scatter.shard_slots(slots)  # type: ignore[union-attr]
    return [[kind, sharded.routing.dimension, str(t.shard), t.instance,  # type: ignore[union-attr]
             template.render(slots, t.database, t.only).decode("utf-8", "replace")]
            for t in sorted(found, key=lambda t: t.shard)]
