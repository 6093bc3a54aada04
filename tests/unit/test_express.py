"""The express lane (router/express.py) routes exactly as the ordinary path does.

For statements that end in an integer, the express route learned from one statement of a head
must give every later statement of that head the same backend, the same shard database and the
same SQL, byte for byte, as fingerprint -> plan -> target -> render; and shapes it cannot serve
must not get one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import DEFAULT_CONFIG, load_config
from router.express import NONE, PASS, SHARD
from router.fingerprint import fingerprint, trailing_literal
from router.plan import ROUTE, SHARDED
from router.planner import Router
from router.targets import Refusal, single_target, targets

CONFIG = load_config(DEFAULT_CONFIG)

# Heads, each followed by the routing integer; some with literals of their own before it.
HEADS = [
    "SELECT * FROM orders WHERE user_id = ",
    "SELECT id, total FROM orders WHERE status = {a} AND user_id=",
    "SELECT `id` FROM `orders` WHERE `user_id`=",
    "select id from trade.orders o where o.user_id = ",
    "SELECT * FROM orders WHERE id = ",
    "SELECT * FROM order_items WHERE order_id = {a} AND id = ",
    "SELECT note FROM orders WHERE merchant_id = ",
    "SELECT o.id, i.sku FROM orders o JOIN order_items i ON i.order_id = o.id "
    "AND i.user_id = o.user_id WHERE o.user_id = ",
    "UPDATE orders SET status = {a} WHERE user_id = ",
    "DELETE FROM order_items WHERE id = ",
    "/* c */ SELECT * FROM orders WHERE total > {a} AND user_id = ",
    "SELECT ';' AS s FROM orders WHERE user_id = ",
    # not served by the express lane: the routing key is another literal, or several shards
    "SELECT * FROM orders WHERE user_id = {a} AND merchant_id = ",
    "SELECT * FROM orders WHERE user_id = {a} AND status = ",
    "SELECT * FROM orders ORDER BY id LIMIT ",
    "SELECT * FROM orders WHERE user_id IN ({a}, ",
    # unsharded and other kinds
    "SELECT name FROM merchants WHERE id = ",
    "SELECT name FROM regions WHERE id = ",
    "SELECT ",
    "SET @x = ",
]


def ordinary(router: Router, sql: bytes) -> tuple[str, object]:
    """What the ordinary path does with ``sql``: ("shard", (instance, database, sql)),
    ("route", plan), ("many", None) or ("other", kind)."""
    fp = fingerprint(sql)
    plan = router.plan(sql, fp, "trade", False)
    if plan.kind == ROUTE:
        return "route", plan
    if plan.kind != SHARDED:
        return "other", plan.kind
    slots = fp.slots(sql)
    sharded = plan.sharded
    if sharded.insert is not None:
        return "other", "insert"
    try:
        target = single_target(CONFIG, sharded, slots)
        reached = [target] if target is not None else targets(CONFIG, sharded, slots)
    except Refusal:
        return "other", "refused"
    if len(reached) != 1:
        return "many", None
    t = reached[0]
    return "shard", (t.instance, t.database, sharded.template.render(slots, t.database, t.only))


def learn(router: Router, sql: bytes) -> None:
    """Learn as the session does: after a single-shard or route run of the ordinary path."""
    fp = fingerprint(sql)
    plan = router.plan(sql, fp, "trade", False)
    kind, _ = ordinary(router, sql)
    if kind in ("shard", "route"):
        router.learn_express(sql, fp, plan, "trade", False)


@given(st.sampled_from(HEADS), st.sampled_from(["1", "'x'", "12.5", "0x1f"]),
       st.lists(st.integers(min_value=0, max_value=10**19 - 1), min_size=2, max_size=6))
@settings(max_examples=300, deadline=None)
def test_express_route_equals_the_ordinary_path(head: str, literal: str,
                                                numbers: list[int]) -> None:
    router = Router(CONFIG)
    head_bytes = head.format(a=literal).encode()
    learn(router, head_bytes + str(numbers[0]).encode())
    entry = router.express.get(head_bytes)
    for number in numbers:
        sql = head_bytes + str(number).encode()
        kind, what = ordinary(router, sql)
        if entry is None or entry.lane == NONE:
            continue
        if entry.lane == PASS:
            assert kind == "route" and what.passthrough, sql
            assert entry.plan is what
            continue
        assert entry.lane == SHARD
        assert kind == "shard", sql
        target, prefix = entry.target(entry.shard_of(number))
        assert (target.instance, target.database, prefix[1:] + str(number).encode()) == what
        assert prefix[:1] == b"\x03"


def test_single_shard_reads_and_writes_get_an_express_route_and_others_do_not() -> None:
    router = Router(CONFIG)
    lanes = {}
    for head in HEADS:
        head_bytes = head.format(a="7").encode()
        learn(router, head_bytes + b"4242")
        entry = router.express.get(head_bytes)
        lanes[head] = None if entry is None else entry.lane
    assert lanes["SELECT * FROM orders WHERE user_id = "] == SHARD
    assert lanes["SELECT * FROM orders WHERE id = "] == SHARD  # by the gene
    assert lanes["SELECT note FROM orders WHERE merchant_id = "] == SHARD  # the merchant copy
    assert lanes["UPDATE orders SET status = {a} WHERE user_id = "] == SHARD
    # the routing key is not the trailing integer: learned as having no express route
    assert lanes["SELECT * FROM orders WHERE user_id = {a} AND status = "] == NONE
    assert lanes["SELECT * FROM orders WHERE user_id = {a} AND merchant_id = "] == NONE
    # a scatter is not single-shard: nothing is learned from it
    assert lanes["SELECT * FROM orders ORDER BY id LIMIT "] is None
    assert lanes["SELECT * FROM orders WHERE user_id IN ({a}, "] is None


def test_express_routes_are_per_schema_and_role_and_dropped_with_the_rules() -> None:
    router = Router(CONFIG)
    sql = b"SELECT * FROM orders WHERE user_id = 5"
    learn(router, sql)
    head = sql[:trailing_literal(sql, fingerprint(sql))]
    entry = router.express[head]
    assert (entry.schema, entry.admin) == ("trade", False)
    # another schema relearns the head (the session compares schema and role before use)
    fp = fingerprint(sql)
    router.learn_express(sql, fp, router.plan(sql, fp, None, True), None, True)
    assert (router.express[head].schema, router.express[head].admin) == (None, True)
    router.set_rules(CONFIG.rules)
    assert router.express == {}


def test_gene_routes_by_both_dimensions() -> None:
    router = Router(CONFIG)
    learn(router, b"SELECT * FROM orders WHERE id = 1")
    entry = router.express[b"SELECT * FROM orders WHERE id = "]
    for order_id in (120 * 120 * 977 + 120 * 5 + 17, 2**62 + 11, 119):
        target, prefix = entry.target(entry.shard_of(order_id))
        assert target.shard == order_id % 120
        assert prefix.endswith(b"WHERE id = ")
