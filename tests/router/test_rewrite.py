"""Scatter rewrites: the shard SQL, the merge spec, and what is refused."""

from __future__ import annotations

import pytest
import sqlglot

from router.engine.spec import Aggregate, SlotRef, SortKey
from router.mariadb_sql import mariadb_sql
from router.rewrite import ScatterPlan, ScatterUnsupported, plan_scatter
from tests.router.test_differential import CASES


def plan(sql: str, text: bool = True) -> ScatterPlan:
    return plan_scatter(sqlglot.parse_one(sql, dialect="mysql"), sql if text else None)


@pytest.mark.parametrize(("sql", "shard_sql"), [
    ("SELECT id, k FROM t ORDER BY k DESC, id LIMIT 5, 10",
     "SELECT id, k FROM t ORDER BY k DESC, id LIMIT 15"),
    ("SELECT id FROM t AS x WHERE x.k > 1 ORDER BY x.price LIMIT 3",
     "SELECT id, x.price AS _dal_h0 FROM t AS x WHERE x.k > 1 ORDER BY x.price LIMIT 3"),
    ("SELECT id FROM t ORDER BY k + 1 DESC",
     "SELECT id, k + 1 AS _dal_h0 FROM t ORDER BY _dal_h0 DESC"),
    ("SELECT * FROM t ORDER BY k", "SELECT *, k AS _dal_h0 FROM t ORDER BY k"),
    ("SELECT AVG(price) FROM t", "SELECT AVG(price), SUM(price) AS _dal_h0, "
     "COUNT(price) AS _dal_h1 FROM t"),
    ("SELECT SUM(price), AVG(price) FROM t", "SELECT SUM(price), AVG(price), "
     "COUNT(price) AS _dal_h0 FROM t"),
    ("SELECT g, COUNT(*) FROM t GROUP BY g HAVING COUNT(*) > 2 ORDER BY 2 DESC LIMIT 3",
     "SELECT g, COUNT(*) FROM t GROUP BY g"),
    ("SELECT g, COUNT(DISTINCT k) FROM t GROUP BY g",
     "SELECT g, COUNT(DISTINCT k), k AS _dal_h0 FROM t GROUP BY g, k"),
    ("SELECT COUNT(DISTINCT LOWER(g)) FROM t",
     "SELECT COUNT(DISTINCT LOWER(g)), LOWER(g) AS _dal_h0 FROM t GROUP BY _dal_h0"),
    ("SELECT DISTINCT g FROM t ORDER BY g LIMIT 2, 2",
     "SELECT DISTINCT g FROM t ORDER BY g LIMIT 4"),
    ("SELECT DISTINCT COUNT(*) FROM t GROUP BY k",
     "SELECT COUNT(*), k AS _dal_h0 FROM t GROUP BY k"),
    ("SELECT k FROM t GROUP BY k ORDER BY NULL", "SELECT k FROM t GROUP BY k ORDER BY NULL"),
    ("SELECT id FROM t WHERE k IN (1, 2) HAVING id > 3 FOR UPDATE",
     "SELECT id FROM t WHERE k IN (1, 2) HAVING id > 3 FOR UPDATE"),
])
def test_shard_sql(sql: str, shard_sql: str) -> None:
    assert plan(sql, text=False).shard_sql == shard_sql


@pytest.mark.parametrize("sql", [c[0] for c in CASES])
def test_shard_sql_round_trips_through_the_parser(sql: str) -> None:
    shard_sql = plan(sql).shard_sql
    assert mariadb_sql(sqlglot.parse_one(shard_sql, dialect="mysql")) == shard_sql
    assert "REGEXP_LIKE" not in shard_sql and "FOR SHARE" not in shard_sql  # not in MariaDB


def test_spec_of_an_aggregate_query() -> None:
    spec = plan("SELECT k, COUNT(*) AS c, AVG(price) FROM t GROUP BY k HAVING c > 1 "
                "ORDER BY c DESC LIMIT 2, 3").spec
    assert spec.aggregated and spec.grouped and spec.hidden == 2
    assert spec.group_by == (0,)
    assert spec.aggregates == (Aggregate("count", 1, (1,)), Aggregate("avg", 2, (-2, -1)))
    assert spec.having == ("cmp", ">", ("col", 1), ("lit", 1))
    assert spec.order == (SortKey(1, True), SortKey(0, False))
    assert (spec.limit, spec.offset, spec.presorted) == (3, 2, False)


def test_group_by_orders_by_its_keys_unless_order_by_null() -> None:
    assert plan("SELECT g, k, COUNT(*) FROM t GROUP BY k, g").spec.order == (
        SortKey(1), SortKey(0))
    assert plan("SELECT g, COUNT(*) FROM t GROUP BY g ORDER BY NULL").spec.order == ()


def test_group_by_an_alias_or_position_or_hidden_expression() -> None:
    assert plan("SELECT DATE(ts) AS d, COUNT(*) FROM t GROUP BY d").spec.group_by == (0,)
    assert plan("SELECT COUNT(*), k FROM t GROUP BY 2").spec.group_by == (1,)
    hidden = plan("SELECT COUNT(*) FROM t GROUP BY k % 3")
    assert hidden.spec.group_by == (-1,)
    assert hidden.shard_sql == "SELECT COUNT(*), k % 3 AS _dal_h0 FROM t GROUP BY k % 3"


def test_unaliased_expressions_keep_the_client_text_as_name() -> None:
    spec = plan("SELECT  count( * ) , k+1, (k), `k`, 'x', Sum(k) AS s FROM t GROUP BY k").spec
    assert spec.names == ((0, ("count( * )",)), (1, ("k+1",)))
    assert plan("SELECT COUNT(*), k + 1 FROM t GROUP BY k").spec.names == ()
    assert plan("SELECT count(*) FROM t", text=False).spec.names == ()


def test_slots_are_read_at_execution() -> None:
    text = "SELECT k+:_0, COUNT(*) FROM t WHERE g = :_1 GROUP BY :_2 HAVING COUNT(*) IN (:_3) " \
           "ORDER BY :_4 DESC LIMIT :_5, :_6"
    scatter = plan_scatter(sqlglot.parse_one(text, dialect="mysql"), text)
    spec = scatter.spec
    assert spec.slotted and scatter.limit_slot is None
    assert spec.group_by == (SlotRef(2),) and spec.order[0] == SortKey(SlotRef(4), True)
    assert spec.having == ("in", ("col", 1), (("slots", 3),))
    slots = [[b"1"], [b"'a'"], [b"1"], [b"2", b"3"], [b"2"], [b"1"], [b"5"]]
    bound = spec.bind(slots)
    assert bound.group_by == (0,) and bound.order == (SortKey(1, True), SortKey(0))
    assert bound.having == ("in", ("col", 1), (("lit", 2), ("lit", 3)))
    assert (bound.limit, bound.offset, bound.names) == (5, 1, ((0, ("k+1",)),))
    assert scatter.shard_slots(slots) is slots


def test_pushed_limit_of_two_slots_is_a_derived_slot() -> None:
    text = "SELECT id FROM t WHERE k = :_0 ORDER BY id LIMIT :_1, :_2"
    scatter = plan_scatter(sqlglot.parse_one(text, dialect="mysql"), text)
    assert scatter.shard_sql == "SELECT id FROM t WHERE k = :_0 ORDER BY id LIMIT :_3"
    assert scatter.limit_slot == 3
    assert scatter.shard_slots([[b"7"], [b"10"], [b"5"]]) == [[b"7"], [b"10"], [b"5"], [b"15"]]


def test_order_by_a_constant_slot_is_no_order() -> None:
    text = "SELECT id, k FROM t ORDER BY :_0"
    spec = plan_scatter(sqlglot.parse_one(text, dialect="mysql"), text).spec
    assert spec.bind([[b"'x'"]]).order == ()
    assert spec.bind([[b"2"]]).order == (SortKey(1),)


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT id FROM t UNION SELECT id FROM t", "UNION"),
    ("WITH x AS (SELECT id FROM t) SELECT id FROM x", "WITH"),
    ("SELECT t.id FROM t JOIN (SELECT id FROM u) AS d ON d.id = t.id", "derived table"),
    ("SELECT t.id FROM (t JOIN u ON t.id = u.id)", "parenthesised join"),
    ("SELECT t.id FROM t JOIN u ON u.id = (SELECT MAX(id) FROM u)", "subquery in a JOIN"),
    ("SELECT t.id FROM t FULL OUTER JOIN u ON t.id = u.id", "FULL"),
    ("SELECT id FROM (SELECT id FROM t) AS d", "derived table"),
    ("SELECT GROUP_CONCAT(g) FROM t", "GROUP_CONCAT"),
    ("SELECT JSON_ARRAYAGG(g) FROM t", "JSON_ARRAYAGG"),
    ("SELECT STD(k) FROM t", "STDDEV_POP"),
    ("SELECT BIT_XOR(k) FROM t", "BIT_XOR"),
    ("SELECT ROW_NUMBER() OVER (ORDER BY id) FROM t", "window function"),
    ("SELECT SUM(k) OVER () FROM t", "window function"),
    ("SELECT (SELECT 1), id FROM t", "subquery in the select list"),
    ("SELECT id FROM t ORDER BY (SELECT 1)", "subquery in ORDER BY"),
    ("SELECT SUM(k) + 1 FROM t", "expression over an aggregate"),
    ("SELECT IFNULL(SUM(k), 0) FROM t", "expression over an aggregate"),
    ("SELECT k FROM t GROUP BY k HAVING ROUND(AVG(price)) > 1", "HAVING"),
    ("SELECT COUNT(*) AS c FROM t GROUP BY k ORDER BY c + 1", "alias"),
    ("SELECT COUNT(*) AS c FROM t GROUP BY k HAVING ABS(c) > 1", "alias"),
    ("SELECT k FROM t ORDER BY COUNT(*) + 1", "ORDER BY"),
    ("SELECT k FROM t GROUP BY k WITH ROLLUP", "ROLLUP"),
    ("SELECT *, COUNT(*) FROM t", "SELECT *"),
    ("SELECT DISTINCT g FROM t ORDER BY k", "DISTINCT"),
    ("SELECT id FROM t ORDER BY 3", "position 3"),
    ("SELECT SQL_CALC_FOUND_ROWS id FROM t LIMIT 1", "SQL_CALC_FOUND_ROWS"),
])
def test_refusals_name_the_construct(sql: str, message: str) -> None:
    with pytest.raises(ScatterUnsupported, match=message):
        plan(sql)


@pytest.mark.parametrize(("sql", "shard_sql"), [
    ("SELECT t.k, i.qty FROM t JOIN items i ON i.t_id = t.id ORDER BY t.id, i.id LIMIT 5, 2",
     "SELECT t.k, i.qty, t.id AS _dal_h0, i.id AS _dal_h1 FROM t JOIN items AS i "
     "ON i.t_id = t.id ORDER BY t.id, i.id LIMIT 7"),
    ("SELECT o.id, i.id FROM orders o, order_items i WHERE i.order_id = o.id ORDER BY i.id",
     "SELECT o.id, i.id FROM orders AS o, order_items AS i WHERE i.order_id = o.id "
     "ORDER BY i.id"),
    ("SELECT o.*, i.sku FROM orders o LEFT JOIN order_items i ON i.order_id = o.id "
     "ORDER BY o.user_id",
     "SELECT o.*, i.sku, o.user_id AS _dal_h0 FROM orders AS o LEFT JOIN order_items AS i "
     "ON i.order_id = o.id ORDER BY o.user_id"),
    ("SELECT COUNT(DISTINCT o.user_id) FROM orders o JOIN order_items i ON i.order_id = o.id",
     "SELECT COUNT(DISTINCT o.user_id), o.user_id AS _dal_h0 FROM orders AS o "
     "JOIN order_items AS i ON i.order_id = o.id GROUP BY o.user_id"),
])
def test_shard_sql_of_joins(sql: str, shard_sql: str) -> None:
    assert plan(sql, text=False).shard_sql == shard_sql


def test_join_columns_are_told_apart_by_qualifier() -> None:
    spec = plan("SELECT o.id, i.id FROM o JOIN i ON i.oid = o.id ORDER BY i.id, o.id").spec
    assert spec.order == (SortKey(1), SortKey(0)) and spec.hidden == 0
    # an unqualified name is the one select-list column of that name ...
    spec = plan("SELECT o.k, i.id FROM o JOIN i ON i.oid = o.id ORDER BY k, id").spec
    assert spec.order == (SortKey(0), SortKey(1)) and spec.hidden == 0
    assert plan("SELECT o.g, COUNT(*) FROM o JOIN i ON i.oid = o.id GROUP BY g"
                ).spec.group_by == (0,)
    # ... and the shards resolve it (or report it ambiguous) when there are several
    scatter = plan("SELECT o.id, i.id FROM o JOIN i ON i.oid = o.id ORDER BY id")
    assert scatter.spec.hidden == 1 and "id AS _dal_h0" in scatter.shard_sql
    # qualifiers are case-sensitive table aliases; column names are not
    assert plan("SELECT O.ID FROM o AS O JOIN i ON i.oid = O.id ORDER BY O.id").spec.hidden == 0


def test_outer_joins_keeping_broadcast_rows_alone_are_refused() -> None:
    def scatter(sql: str, broadcast: set[str]) -> ScatterPlan:
        return plan_scatter(sqlglot.parse_one(sql, dialect="mysql"), sql, broadcast=broadcast)

    fine = ["SELECT * FROM o LEFT JOIN r ON r.id = o.rid",
            "SELECT * FROM r JOIN o ON r.id = o.rid LEFT JOIN i ON i.oid = o.id",
            "SELECT * FROM o RIGHT JOIN i ON i.oid = o.id",
            "SELECT * FROM r RIGHT JOIN o ON r.id = o.rid",
            "SELECT * FROM r, o WHERE r.id = o.rid"]
    for sql in fine:
        scatter(sql, {"r"})
    for sql in ["SELECT * FROM r LEFT JOIN o ON r.id = o.rid",
                "SELECT * FROM o RIGHT JOIN r ON r.id = o.rid",
                "SELECT * FROM r AS x LEFT JOIN o ON x.id = o.rid LEFT JOIN r ON r.id = 1"]:
        with pytest.raises(ScatterUnsupported, match="broadcast tables alone"):
            scatter(sql, {"r", "x"})
    scatter("SELECT * FROM r LEFT JOIN o ON r.id = o.rid", set())  # r is sharded here
