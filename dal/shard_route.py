"""A sharded statement sent to one shard: its one-backend plan and its results' renamer.

Both are cached, so that the hot paths (text and prepared) build neither per statement.
"""

from __future__ import annotations

from pool.rename import HeaderRenamer
from router.plan import ROUTE, Plan

_route_plans: dict[tuple[str, str], Plan] = {}


def shard_renamer(sharded: object, database: bytes) -> HeaderRenamer | None:
    """The header renamer of a sharded read's results from shard ``database`` (cached on the
    plan), which puts the logical database into its column definitions; None for writes."""
    if sharded.write:  # type: ignore[attr-defined]
        return None
    renamers = sharded.renamers  # type: ignore[attr-defined]
    rename = renamers.get(database)
    if rename is None:
        rename = renamers[database] = HeaderRenamer(sharded.logical)  # type: ignore[attr-defined]
    return rename


def route_plan(instance: str, statement: str) -> Plan:
    """A cached one-backend plan for a sharded statement's single target (its metrics kind
    is ``shard:<statement>``)."""
    plan = _route_plans.get((instance, statement))
    if plan is None:
        plan = _route_plans[(instance, statement)] = Plan(ROUTE, instance=instance,
                                                          statement=f"shard:{statement}")
    return plan
