"""Plan-time statement rules: refusals live in the cached plan, admins are exempt, and
changing the rules drops the cached plans."""

from __future__ import annotations

from config.loader import DEFAULT_CONFIG, load_config
from config.protection import RulesConfig
from router.fingerprint import fingerprint
from router.planner import Router

CONFIG = load_config(DEFAULT_CONFIG)


def plan(router: Router, sql: str, admin: bool = False):
    raw = sql.encode()
    return router.plan(raw, fingerprint(raw), "trade", admin)


def test_a_rule_refusal_is_cached_and_a_hit_skips_sqlglot() -> None:
    router = Router(CONFIG)
    first = plan(router, "UPDATE merchants SET rating = 4.5")
    parses = router.parses
    again = plan(router, "UPDATE merchants SET rating = 1.25")
    assert first.error[0] == 1175 and again.rule == "unbounded_write"
    assert router.parses == parses  # served from the plan cache
    assert plan(router, "UPDATE merchants SET rating = 1 WHERE id = 3").kind == "route"


def test_admins_are_exempt_and_app_ddl_is_tagged() -> None:
    router = Router(CONFIG)
    assert plan(router, "DELETE FROM merchants", admin=True).kind == "route"
    assert plan(router, "CREATE TABLE t (id INT)").rule == "ddl"
    assert plan(router, "UPDATE orders SET note = 'x' WHERE status = 1").rule == "scatter_write"


def test_changing_rules_clears_the_cache() -> None:
    router = Router(CONFIG)
    scatter = "SELECT COUNT(*) FROM orders WHERE status = 1"
    assert plan(router, scatter).kind == "sharded"
    router.set_rules(RulesConfig(deny_scatter_reads=True))
    refused = plan(router, scatter)
    assert refused.error[0] == 1235 and refused.rule == "scatter_read"
    assert plan(router, "SELECT COUNT(*) FROM orders WHERE user_id = 7").kind == "sharded"
    router.set_rules(RulesConfig(deny_unbounded_writes=False))
    assert plan(router, "DELETE FROM merchants").kind == "route"
