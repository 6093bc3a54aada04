"""Plans made on the planner thread (dal/session/planning.py): kept only when the router
dropped no plans meanwhile, and long OR chains of shard keys route instead of failing."""

from __future__ import annotations

import asyncio

from config.loader import DEFAULT_CONFIG, load_config
from dal.session.planning import plan_away
from router.fingerprint import fingerprint
from router.plan import REFUSE, SHARDED
from router.planner import Router

CONFIG = load_config(DEFAULT_CONFIG)
SQL = b"SELECT * FROM orders WHERE user_id = 17"


def _counting(router: Router, drop_during_first: bool) -> list[int]:
    """Count `analysed` calls; the first one sees the router drop its plans meanwhile, as a
    live migration's phase switch or CREATE DATABASE on the loop would."""
    calls: list[int] = []
    real = router.analysed

    def analysed(*args: object) -> object:
        calls.append(router.generation)
        plan = real(*args)  # type: ignore[arg-type]
        if drop_during_first and len(calls) == 1:
            router.databases_changed()
        return plan

    router.analysed = analysed  # type: ignore[method-assign]
    return calls


def _plan_away(router: Router, sql: bytes = SQL):
    return asyncio.run(plan_away(router, sql, fingerprint(sql), "trade", False, 0, None, None))


def test_a_plan_made_across_a_drop_is_made_again() -> None:
    router = Router(CONFIG)
    calls = _counting(router, drop_during_first=True)
    plan = _plan_away(router)
    assert calls == [0, 1]  # made again under the new generation
    assert plan.kind == SHARDED
    assert router.cached(fingerprint(SQL), "trade", False) is plan


def test_a_plan_made_in_one_generation_is_kept_once() -> None:
    router = Router(CONFIG)
    calls = _counting(router, drop_during_first=False)
    plan = _plan_away(router)
    assert calls == [0]
    assert router.cached(fingerprint(SQL), "trade", False) is plan  # kept for the next one


def test_a_long_or_chain_of_shard_keys_routes_to_their_shards() -> None:
    keys = list(range(1, 5001))
    sql = ("SELECT id FROM orders WHERE " + " OR ".join(f"user_id = {k}" for k in keys)).encode()
    plan = Router(CONFIG).plan(sql, fingerprint(sql), "trade", False)
    assert plan.kind == SHARDED
    assert len(plan.sharded.routing.slots) == len(keys)  # type: ignore[union-attr]


def test_deep_parentheses_are_refused_with_a_reason() -> None:
    sql = ("SELECT id FROM orders WHERE user_id = " + "(" * 3000 + "1" + ")" * 3000).encode()
    plan = Router(CONFIG).plan(sql, fingerprint(sql), "trade", False)
    assert plan.kind == REFUSE
    assert "nests deeper" in plan.error[2]  # type: ignore[index]
