"""`Route`: a plan of kind route: one backend instance, the result relayed raw.

It covers the default database too (DESIGN.md's `Unsharded`): an unsharded table, a system
schema, DDL on an unsharded table and a statement that touches no table all go to one
instance and relay alike; only the instance, the schema and whether the client's bytes are
sent unchanged differ, and those are the plan's. A metadata statement on a sharded table
(DESCRIBE orders) is a Route to the first shard.
"""

from __future__ import annotations

from router.engine.base import Bindings, Cursor, Primitive, Slots
from router.plan import Plan


class Route(Primitive):
    """Send to ``plan.instance`` (in ``plan.schema``) and relay the answer raw."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def describe(self, slots: Slots | None = None) -> str:
        plan = self.plan
        where = f"database {plan.schema}" if plan.schema else "no default database"
        how = "the client's bytes unchanged" if plan.passthrough else "the statement rewritten"
        extra = [f"pins the session ({plan.pin})"] if plan.pin else []
        if plan.anywhere:
            extra.append("inside a transaction: the transaction's connection")
        if plan.diagnostics:
            extra.append("on the connection that ran the previous statement")
        return (f"Route {plan.statement.upper()} to instance {plan.instance}, {where}: {how}"
                + "".join(f"; {e}" for e in extra))

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.route(self.plan, bindings)
