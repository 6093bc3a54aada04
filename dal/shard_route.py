"""A sharded statement sent to one shard: its one-backend plan and its results' renamer.

Both are cached, so that the hot paths (text and prepared) build neither per statement.
"""

from __future__ import annotations

from pool.rename import HeaderRenamer
from router.express import Express
from router.plan import ROUTE, Plan
from router.sharded import ShardedPlan

_route_plans: dict[tuple[str, str], Plan] = {}
# (id of a sharded plan, shard database) -> (that plan, its renamer). Kept here, not on the
# router's plan: a plan is the router's, the renamer the executor's. The plan is held so that
# its id is not reused while the entry lives.
_renamers: dict[tuple[int, bytes], tuple[ShardedPlan, HeaderRenamer]] = {}
MAX_RENAMERS = 50_000


def shard_renamer(sharded: ShardedPlan, database: bytes) -> HeaderRenamer | None:
    """The header renamer of a sharded read's results from shard ``database`` (one per
    statement shape and shard), which puts the logical database into its column definitions;
    None for writes."""
    if sharded.write:
        return None
    key = (id(sharded), database)
    found = _renamers.get(key)
    if found is None or found[0] is not sharded:
        if len(_renamers) >= MAX_RENAMERS:
            _renamers.clear()
        found = _renamers[key] = (sharded, HeaderRenamer(sharded.logical))
    return found[1]


# The express lane's routes, per head (router/express.py's entry) and shard: its one-backend
# plan, its statement up to the routing integer, its renamer. Keyed by the entry itself (an
# identity hash), one lookup per statement; bounded like the router's own cache of heads.
_lanes: dict[Express, list[tuple[Plan, bytes, HeaderRenamer | None] | None]] = {}
MAX_LANES = 10_000


def express_route(entry: Express, shard: int) -> tuple[Plan, bytes, HeaderRenamer | None]:
    """Shard ``shard``'s route for the express lane's ``entry``."""
    routes = _lanes.get(entry)
    if routes is None:
        if len(_lanes) >= MAX_LANES:
            _lanes.clear()
        routes = _lanes[entry] = [None] * entry.shards
    found = routes[shard]
    if found is None:
        target, head = entry.target(shard)
        found = routes[shard] = (route_plan(target.instance, entry.plan.statement), head,
                                 shard_renamer(entry.plan.sharded, target.database))
    return found


def route_plan(instance: str, statement: str) -> Plan:
    """A cached one-backend plan for a sharded statement's single target (its metrics kind
    is ``shard:<statement>``)."""
    plan = _route_plans.get((instance, statement))
    if plan is None:
        plan = _route_plans[(instance, statement)] = Plan(ROUTE, instance=instance,
                                                          statement=f"shard:{statement}")
    return plan
