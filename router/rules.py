"""Statement rules decided at plan time (`rules:` in the config).

They are checked once per statement shape, when the plan is built, and the refusal is cached
in the plan, so a cache hit costs nothing. Changing the rules clears the plan cache. Admin
users are exempt: they run the maintenance the rules would refuse.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from config.protection import RulesConfig
from router.plan import REFUSE, SHARDED, Plan, refuse

UNBOUNDED_WRITE = (1175, "HY000")  # ER_UPDATE_WITHOUT_KEY_IN_SAFE_MODE
SCATTER_READ = (1235, "42000")     # ER_NOT_SUPPORTED_YET, as for scatter writes


def check_rules(rules: RulesConfig, tree: exp.Expression, plan: Plan, admin: bool) -> Plan:
    """The plan, or a refusal naming the rule it breaks."""
    if admin:
        return plan
    if (rules.deny_unbounded_writes and isinstance(tree, exp.Update | exp.Delete)
            and tree.args.get("where") is None):
        verb = "UPDATE" if isinstance(tree, exp.Update) else "DELETE"
        return tagged(refuse(*UNBOUNDED_WRITE, f"DAL rule deny_unbounded_writes: {verb} "
                             "without WHERE would change every row of the table; add a WHERE "
                             "clause (rules.deny_unbounded_writes)"), "unbounded_write")
    if rules.deny_scatter_reads and plan.kind == SHARDED:
        sharded = plan.sharded
        routing = sharded.routing  # type: ignore[union-attr]
        if not sharded.write and not routing.slots and not routing.broadcast:  # type: ignore[union-attr]
            return tagged(refuse(*SCATTER_READ, "DAL rule deny_scatter_reads: this read names "
                                 "no shard key and would reach every shard; add user_id, "
                                 "merchant_id or the order id to WHERE "
                                 "(rules.deny_scatter_reads)"), "scatter_read")
    return plan


def tagged(plan: Plan, rule: str | None) -> Plan:
    """A refusal plan labelled with the rule it enforces (for dal_rule_refusals_total)."""
    return replace(plan, rule=rule) if rule and plan.kind == REFUSE else plan
