"""The trees the planner builds: their shapes, their cache, and text vs prepared twins."""

from __future__ import annotations

import pytest

from config.loader import DEFAULT_CONFIG, load_config
from router.engine.aggregate import Aggregate
from router.engine.base import Primitive
from router.engine.broadcast import Broadcast
from router.engine.distinct import Distinct
from router.engine.insert import InsertSplit
from router.engine.limit import Limit
from router.engine.local import Local, Refuse, SetVariables
from router.engine.mergesort import MergeSort
from router.engine.project import Project
from router.engine.route import Route
from router.engine.scatter import Scatter
from router.explain import explain
from router.fingerprint import fingerprint
from router.params import shape_of
from router.plan import Plan
from router.planner import Router

CONFIG = load_config(DEFAULT_CONFIG)


def plan_of(sql: str, router: Router | None = None, admin: bool = False) -> Plan:
    router = router or Router(CONFIG)
    raw = sql.encode()
    return router.plan(raw, fingerprint(raw), "trade", admin)


def shape(node: Primitive) -> list[str]:
    """The primitives from the root down the first inputs, by class name."""
    out = [type(node).__name__]
    while node.inputs():
        node = node.inputs()[0]
        out.append(type(node).__name__)
    return out


def walk(node: Primitive) -> list[str]:
    return [node.describe(), *(line for child in node.inputs() for line in walk(child))]


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT id, created_at FROM orders ORDER BY created_at LIMIT 20",
     [Limit, MergeSort, Scatter]),
    ("SELECT * FROM orders ORDER BY created_at DESC LIMIT 10, 20",
     [Project, Limit, MergeSort, Scatter]),
    ("SELECT merchant_id, COUNT(*) FROM orders GROUP BY merchant_id", [MergeSort, Aggregate,
                                                                      Scatter]),
    ("SELECT merchant_id, COUNT(*) FROM orders GROUP BY merchant_id HAVING COUNT(*) > 2 "
     "ORDER BY 2 DESC LIMIT 5", [Limit, MergeSort, Aggregate, Scatter]),
    ("SELECT COUNT(*), AVG(amount) FROM orders", [Project, Aggregate, Scatter]),
    ("SELECT DISTINCT status FROM orders", [Distinct, Scatter]),
    ("SELECT * FROM orders", [Scatter]),
    ("SELECT * FROM orders WHERE user_id = 5", [Scatter]),
    ("UPDATE orders SET status = 'x' WHERE user_id IN (1, 2)", [Scatter]),
    ("INSERT INTO orders (user_id, merchant_id, amount) VALUES (1, 2, 3)", [InsertSplit]),
    ("UPDATE regions SET name = 'x' WHERE id = 1", [Broadcast]),
    ("SELECT * FROM merchants WHERE id = 3", [Route]),
    ("SELECT LAST_INSERT_ID()", [Local]),
    ("SET autocommit = 0", [SetVariables]),
    ("DELETE FROM orders", [Refuse]),
])
def test_every_plan_is_a_tree_of_the_expected_shape(sql: str, expected: list[type]) -> None:
    root = plan_of(sql).root
    assert isinstance(root, Primitive)
    assert shape(root) == [cls.__name__ for cls in expected]


def test_the_merges_follow_the_statement() -> None:
    root = plan_of("SELECT merchant_id, COUNT(*) FROM orders GROUP BY merchant_id "
                   "HAVING COUNT(*) > 2 ORDER BY 2 DESC LIMIT 5").root
    assert isinstance(root, Limit)
    sort = root.source
    assert isinstance(sort, MergeSort) and not sort.presorted  # after aggregation: in memory
    aggregate = sort.source
    assert isinstance(aggregate, Aggregate) and aggregate.grouped
    assert aggregate.having is not None
    slots = fingerprint(b"SELECT merchant_id, COUNT(*) FROM orders GROUP BY merchant_id "
                        b"HAVING COUNT(*) > 2 ORDER BY 2 DESC LIMIT 5").slots(
        b"SELECT merchant_id, COUNT(*) FROM orders GROUP BY merchant_id "
        b"HAVING COUNT(*) > 2 ORDER BY 2 DESC LIMIT 5")
    assert root.describe(slots) == "Limit 5 offset 0"
    assert sort.describe(slots).startswith("MergeSort in memory by #2 DESC")
    assert "having (#2 > 2)" in aggregate.describe(slots)
    plain = plan_of("SELECT id, created_at FROM orders ORDER BY created_at LIMIT 20").root
    assert isinstance(plain, Limit) and isinstance(plain.source, MergeSort)
    assert plain.source.presorted  # the shards sort: their streams merge k-way


def test_the_plan_cache_holds_one_tree_per_shape() -> None:
    router = Router(CONFIG)
    first = plan_of("SELECT * FROM orders WHERE user_id = 5 ORDER BY id LIMIT 3", router)
    second = plan_of("SELECT * FROM orders WHERE user_id = 77 ORDER BY id LIMIT 9", router)
    assert first is second and first.root is second.root
    assert router.parses == 1


def test_a_prepared_statement_and_its_text_twin_share_a_tree() -> None:
    router = Router(CONFIG)
    text = b"SELECT id, created_at FROM orders WHERE merchant_id = 7 ORDER BY created_at LIMIT 2"
    prepared = (b"SELECT id, created_at FROM orders WHERE merchant_id = ? "
                b"ORDER BY created_at LIMIT ?")
    by_text = router.plan(text, fingerprint(text), "trade", False)
    by_shape = router.plan(prepared, shape_of(prepared).fp, "trade", False)
    assert by_shape is by_text  # one cache entry: the same object, so the same tree
    other = Router(CONFIG).plan(prepared, shape_of(prepared).fp, "trade", False)
    assert walk(other.root) == walk(by_text.root)  # planned apart: an equal tree
    assert shape(by_text.root) == ["Limit", "MergeSort", "Scatter"]


def test_explain_renders_the_shard_sql_with_the_statement_literals() -> None:
    rows = explain(Router(CONFIG), CONFIG, b"SELECT * FROM orders ORDER BY created_at DESC "
                   b"LIMIT 10, 20", "trade", False)
    plans = [row[0] for row in rows]
    assert plans[:4] == ["Project: drop 1 hidden column", "  Limit 20 offset 10",
                         "    MergeSort k-way by hidden -1 DESC (every shard sends its rows "
                         "sorted)",
                         "      Scatter SELECT on user shards: every shard (no shard key)"]
    assert rows[3][1] == ("120 databases: user_000..user_059 on a, user_060..user_119 on b")
    assert rows[4] == ["        -> user_000 (each of the 120 the same, with its own database)",
                       "user_000 on a", "SELECT *, created_at AS _dal_h0 FROM user_000.orders "
                       "ORDER BY created_at DESC LIMIT 30"]  # LIMIT 10, 20 -> LIMIT 30
    assert len(rows) == 5


def test_explain_lists_a_few_targets_each_with_its_values() -> None:
    rows = explain(Router(CONFIG), CONFIG, b"SELECT * FROM orders WHERE user_id IN (1, 2, 121)",
                   "trade", False)
    assert rows[0][0].startswith("Scatter SELECT on user shards")
    assert rows[0][1] == "2 databases: user_001 on a, user_002 on a"
    assert rows[1:] == [
        ["  -> user_001", "user_001 on a",
         "SELECT * FROM user_001.orders WHERE user_id IN (1, 121)"],
        ["  -> user_002", "user_002 on a", "SELECT * FROM user_002.orders WHERE user_id IN (2)"],
    ]


def test_explain_shows_one_target_relayed_raw_and_refusals() -> None:
    router = Router(CONFIG)
    rows = explain(router, CONFIG, b"SELECT * FROM orders WHERE user_id = 5 ORDER BY id LIMIT 3",
                   "trade", False)
    assert rows[3][1] == "1 database: user_005 on a (one shard: its statement relayed raw, " \
        "nothing merged)"
    assert rows[4][2] == "SELECT * FROM user_005.orders WHERE user_id = 5 ORDER BY id LIMIT 3"
    rows = explain(router, CONFIG, b"SELECT * FROM orders WHERE user_id = 'x'", "trade", False)
    assert rows[-1] == ["  Refuse", None, "ERROR 1105: shard key value 'x' is not an integer"]
    rows = explain(router, CONFIG, b"INSERT INTO orders (user_id, merchant_id, amount) "
                   b"VALUES (1, 2, 3), (121, 5, 6)", "trade", False)
    assert rows[1] == ["  -> user_001", "user_001 on a", "INSERT INTO user_001.orders (user_id, "
                       "merchant_id, amount, id) VALUES (1, 2, 3, <generated id>), "
                       "(121, 5, 6, <generated id>)"]
