"""Differential tests: the scatter merge of eight shards against one MariaDB holding every row.

Each query runs on ``dal_merge_ref``; its ``plan_scatter`` shard SQL runs on each of
``dal_merge_s0..7``, and `merge` must reproduce the reference result: the same column names,
types, lengths, decimals and charsets, the same rows, in the same order when the ORDER BY is
total (as a multiset otherwise). Columns where MariaDB's choice between strings that are equal
under utf8mb4_general_ci is arbitrary (a group's representative, MIN/MAX of 'abc' and 'ABC')
are compared folded. Column flags are not compared: MariaDB's depend on the execution plan
(e.g. COUNT(*) is NOT_NULL|BINARY without GROUP BY, NOT_NULL with a temporary table).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.engine.build import merge_results as merge
from router.fingerprint import fingerprint
from router.primitives.values import general_fold
from router.rewrite import plan_scatter
from router.template import analysis_text, build_template
from tests.router import refdb

pytestmark = pytest.mark.skipif(not refdb.available(),
                                reason="test MariaDB (config/test.yaml instance a) is not up")

EXACT, SET = "exact", "set"

# (query, comparison, columns compared case/accent-folded). A comparison is EXACT (same rows,
# same order), SET (same multiset) or a tuple of column indexes: the sequence of those
# columns must match (the ORDER BY keys, when ties or MySQL's indeterminate non-grouped
# columns leave the rest of the row to chance).
CASES: list[tuple[str, object, tuple[int, ...]]] = [
    # ORDER BY, LIMIT, OFFSET
    ("SELECT id, k, g FROM t ORDER BY k DESC, id LIMIT 20, 15", EXACT, ()),
    ("SELECT id, price FROM t ORDER BY price, id DESC LIMIT 10", EXACT, ()),
    ("SELECT id, ts FROM t WHERE ts IS NOT NULL ORDER BY ts DESC, id LIMIT 7 OFFSET 3", EXACT, ()),
    ("SELECT * FROM t ORDER BY f DESC, id LIMIT 12", EXACT, ()),
    ("SELECT id FROM t ORDER BY k, price DESC, id", EXACT, ()),
    ("SELECT id, k*2 AS kk FROM t ORDER BY kk DESC, 1 LIMIT 9", EXACT, ()),
    ("SELECT g, id FROM t ORDER BY g, id", EXACT, ()),
    ("SELECT g, id FROM t ORDER BY g DESC, id DESC LIMIT 40", EXACT, ()),
    ("SELECT id, k FROM t WHERE k > 100 ORDER BY id LIMIT 5", EXACT, ()),
    ("SELECT id, g FROM t WHERE g = 'abc' ORDER BY id", EXACT, ()),
    ("SELECT id, k FROM t WHERE k IN (1, 2) ORDER BY id DESC LIMIT 3", EXACT, ()),
    ("SELECT k, id FROM t ORDER BY k", (0,), ()),
    ("SELECT k, id FROM t ORDER BY k", SET, ()),
    ("SELECT id, k+1, price * 2 FROM t ORDER BY k + 1 DESC, price * 2, id LIMIT 25", EXACT, ()),
    ("SELECT id, f FROM t ORDER BY f LIMIT 0", EXACT, ()),
    ("SELECT id, k FROM t WHERE k = 3", SET, ()),
    ("SELECT id, k AS kk FROM t HAVING kk > 5 ORDER BY id", EXACT, ()),
    ("SELECT g, id FROM t ORDER BY g COLLATE utf8mb4_bin, id", EXACT, ()),
    ("SELECT id, g FROM t ORDER BY LOWER(g) DESC, id LIMIT 30", EXACT, ()),
    ("SELECT 'x', id, NULL, 1.50 FROM t ORDER BY id LIMIT 3", EXACT, ()),
    ("SELECT id, g FROM t ORDER BY g LIMIT 5", (1,), (1,)),
    ("SELECT DISTINCT * FROM t WHERE k = 2 ORDER BY 1", EXACT, ()),
    # aggregates without GROUP BY
    ("SELECT COUNT(*), COUNT(k), SUM(k), MIN(k), MAX(k), AVG(k) FROM t", EXACT, ()),
    ("SELECT SUM(price), AVG(price), MIN(price), MAX(price) FROM t", EXACT, ()),
    ("SELECT SUM(f), AVG(f), MIN(f), MAX(f), COUNT(f) FROM t", EXACT, ()),
    ("SELECT MIN(ts), MAX(ts), MIN(g), MAX(g) FROM t", EXACT, (2, 3)),
    ("SELECT COUNT(*), SUM(k), AVG(price), MIN(g), AVG(f) FROM t WHERE id < 0", EXACT, ()),
    ("SELECT COUNT(DISTINCT g), COUNT(DISTINCT k), COUNT(DISTINCT k, g) FROM t", EXACT, ()),
    ("SELECT SUM(DISTINCT k), AVG(DISTINCT k), AVG(DISTINCT price) FROM t", EXACT, ()),
    ("SELECT count( * ) AS n, Sum(k), avg( price ) FROM t WHERE g IS NULL", EXACT, ()),
    ("SELECT COUNT(*) FROM t HAVING COUNT(*) > 1000000", EXACT, ()),
    ("SELECT AVG(k), AVG(id) FROM t WHERE k IS NULL", EXACT, ()),
    # GROUP BY (MariaDB orders it by the group keys), HAVING, ORDER BY
    ("SELECT k, COUNT(*), SUM(price), AVG(f) FROM t GROUP BY k", EXACT, ()),
    ("SELECT g, COUNT(*), MIN(id), MAX(id) FROM t GROUP BY g", EXACT, (0,)),
    ("SELECT k, g, COUNT(*) FROM t GROUP BY k, g", EXACT, (1,)),
    ("SELECT k, COUNT(*) AS c FROM t GROUP BY k HAVING c > 20 ORDER BY c DESC, k", EXACT, ()),
    ("SELECT k, AVG(price) FROM t GROUP BY k HAVING AVG(price) > 100 AND COUNT(*) >= 3 "
     "ORDER BY 2 DESC", EXACT, ()),
    ("SELECT g, SUM(k) FROM t GROUP BY g HAVING SUM(k) IS NULL OR MIN(k) < 0", EXACT, (0,)),
    ("SELECT k % 3 AS m, COUNT(*), SUM(f) FROM t GROUP BY k % 3", EXACT, ()),
    ("SELECT COUNT(*), MAX(price) FROM t GROUP BY k ORDER BY COUNT(*) DESC, MAX(price) LIMIT 4",
     EXACT, ()),
    ("SELECT k, COUNT(DISTINCT g), SUM(price) FROM t GROUP BY k", EXACT, ()),
    ("SELECT g, COUNT(DISTINCT k) FROM t WHERE k IS NOT NULL GROUP BY g ORDER BY 2 DESC, g "
     "LIMIT 3", EXACT, (0,)),
    ("SELECT k, SUM(price), AVG(price), MIN(g) FROM t WHERE price IS NULL GROUP BY k", EXACT,
     (3,)),
    ("SELECT g, SUM(price), AVG(f) FROM t WHERE k IS NULL AND price IS NULL GROUP BY g", EXACT,
     (0,)),
    ("SELECT k FROM t GROUP BY k ORDER BY NULL", SET, ()),
    ("SELECT DATE(ts) AS d, COUNT(*) FROM t GROUP BY d", EXACT, ()),
    ("SELECT k, MIN(g), MAX(g) FROM t GROUP BY k HAVING MAX(g) > 'b'", EXACT, (1, 2)),
    ("SELECT k, COUNT(*) FROM t GROUP BY k HAVING k BETWEEN 2 AND 5 OR k IN (9, 10)", EXACT, ()),
    ("SELECT k, COUNT(*) FROM t GROUP BY k HAVING SUM(price) / COUNT(*) > 50", EXACT, ()),
    ("SELECT k, MAX(ts) FROM t GROUP BY k HAVING MAX(ts) >= '2024-01-03'", EXACT, ()),
    ("SELECT k, COUNT(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1 DESC LIMIT 2, 3", EXACT, ()),
    ("SELECT g, AVG(DISTINCT k), SUM(DISTINCT price) FROM t GROUP BY g", EXACT, (0,)),
    ("SELECT k, id FROM t GROUP BY k ORDER BY MIN(id)", (0,), ()),
    ("SELECT COUNT(DISTINCT LOWER(g)), COUNT(DISTINCT k % 3) FROM t", EXACT, ()),
    ("SELECT k, COUNT(DISTINCT g) FROM t GROUP BY 1 ORDER BY NULL", SET, ()),
    ("SELECT ts, COUNT(*) FROM t GROUP BY ts ORDER BY ts DESC LIMIT 5", EXACT, ()),
    ("SELECT f, COUNT(*), SUM(k) FROM t GROUP BY f", EXACT, ()),
    ("SELECT price, COUNT(*) FROM t GROUP BY price ORDER BY price DESC LIMIT 10", EXACT, ()),
    ("SELECT k AS key1, COUNT(*) AS cnt FROM t GROUP BY key1 ORDER BY cnt DESC, key1", EXACT, ()),
    ("SELECT id AS k, COUNT(*) FROM t WHERE k IS NOT NULL GROUP BY k", (1,), ()),
    ("SELECT k + 1 AS k, id FROM t ORDER BY k * -1, id LIMIT 20", EXACT, ()),
    ("SELECT g, COUNT(*) FROM t GROUP BY g ORDER BY LOWER(g) DESC", (1,), ()),
    ("SELECT id, COUNT(*) FROM t WHERE k = 1", (1,), ()),
    ("SELECT COUNT(*), k FROM t WHERE id < 0", EXACT, ()),
    # DISTINCT
    ("SELECT DISTINCT k FROM t", SET, ()),
    ("SELECT DISTINCT g FROM t ORDER BY g", EXACT, (0,)),
    ("SELECT DISTINCT k, g FROM t ORDER BY k DESC, g LIMIT 10", EXACT, (1,)),
    ("SELECT DISTINCT COUNT(*) FROM t GROUP BY k", SET, ()),
    ("SELECT DISTINCT g FROM t WHERE g LIKE 'a%'", SET, (0,)),
    # joins of co-located tables (items bound to t) and of a broadcast table (cat)
    ("SELECT t.k, i.qty FROM t JOIN items i ON i.t_id = t.id ORDER BY t.id, i.id LIMIT 5 OFFSET 2",
     EXACT, ()),
    ("SELECT t.g, COUNT(*), SUM(i.qty), AVG(i.price) FROM t JOIN items i ON i.t_id = t.id "
     "GROUP BY t.g HAVING COUNT(*) > 1 ORDER BY t.g", EXACT, (0,)),
    ("SELECT t.k, t.id, i.id, i.sku, i.qty FROM t JOIN items i ON i.t_id = t.id "
     "WHERE t.id IN (17, 42, 99, 130) ORDER BY t.k, t.id, i.id", EXACT, ()),
    ("SELECT t.g, COUNT(*), SUM(i.qty) FROM t JOIN items i ON i.t_id = t.id "
     "WHERE t.id BETWEEN 10 AND 200 GROUP BY t.g ORDER BY t.g", EXACT, (0,)),
    ("SELECT t.id, i.id, i.sku FROM t LEFT JOIN items i ON i.t_id = t.id WHERE t.id < 60 "
     "ORDER BY t.id, i.id", EXACT, ()),
    ("SELECT t.id, COUNT(i.id), SUM(i.qty), AVG(i.price) FROM t LEFT OUTER JOIN items i "
     "ON i.t_id = t.id GROUP BY t.id HAVING COUNT(i.id) = 0 OR SUM(i.qty) IS NULL "
     "ORDER BY t.id DESC LIMIT 12", EXACT, ()),
    ("SELECT i.id, t.id, t.k FROM t RIGHT JOIN items i ON i.t_id = t.id ORDER BY t.id IS NULL "
     "DESC, i.id LIMIT 50", EXACT, ()),
    ("SELECT DISTINCT t.g, i.sku FROM t JOIN items i ON i.t_id = t.id ORDER BY t.g, i.sku",
     EXACT, (0, 1)),
    ("SELECT DISTINCT i.qty FROM t JOIN items i ON i.t_id = t.id WHERE t.k > 3", SET, ()),
    ("SELECT DISTINCT t.k FROM t LEFT JOIN items i ON i.t_id = t.id WHERE i.id IS NULL "
     "ORDER BY k DESC", EXACT, ()),
    ("SELECT COUNT(DISTINCT t.k), COUNT(DISTINCT i.sku), COUNT(*), COUNT(i.qty) FROM t "
     "JOIN items i ON i.t_id = t.id", EXACT, ()),
    ("SELECT i.sku, COUNT(DISTINCT t.k), SUM(DISTINCT i.qty) FROM t JOIN items i "
     "ON i.t_id = t.id GROUP BY i.sku", EXACT, (0,)),
    ("SELECT COUNT(DISTINCT t.k) FROM t LEFT JOIN items i ON i.t_id = t.id WHERE i.qty > 4",
     EXACT, ()),
    ("SELECT t.*, i.sku FROM t JOIN items i ON i.t_id = t.id ORDER BY i.id LIMIT 30", EXACT, ()),
    ("SELECT i.*, t.g FROM items i JOIN t ON t.id = i.t_id ORDER BY i.id LIMIT 10 OFFSET 5",
     EXACT, ()),
    ("SELECT t.id, i.id, i.price FROM t, items i WHERE i.t_id = t.id AND i.qty > 5 "
     "ORDER BY i.price DESC, i.id LIMIT 15", EXACT, ()),
    ("SELECT i.sku FROM t JOIN items i ON i.t_id = t.id ORDER BY t.k DESC, i.id LIMIT 20",
     EXACT, ()),
    ("SELECT t.id AS tid, i.qty AS q FROM t JOIN items AS i ON i.t_id = t.id "
     "ORDER BY q DESC, tid, i.id LIMIT 25", EXACT, ()),
    ("SELECT t.k, i.qty FROM t JOIN items i ON i.t_id = t.id ORDER BY k DESC, qty, i.id LIMIT 40",
     EXACT, ()),
    ("SELECT i.qty, COUNT(*) FROM t JOIN items i ON i.t_id = t.id GROUP BY qty "
     "ORDER BY 2 DESC, qty", EXACT, ()),
    ("SELECT MIN(i.price), MAX(t.ts), AVG(i.qty), SUM(t.f) FROM t STRAIGHT_JOIN items i "
     "ON i.t_id = t.id WHERE t.g IS NOT NULL", EXACT, ()),
    ("SELECT t.id, c.name FROM t LEFT JOIN cat c ON c.id = t.k ORDER BY t.id LIMIT 40",
     EXACT, ()),
    ("SELECT c.name, COUNT(*), SUM(i.qty) FROM t JOIN items i ON i.t_id = t.id "
     "JOIN cat c ON c.id = t.k GROUP BY c.name", EXACT, (0,)),
    ("SELECT c.id, c.name, i.id FROM cat c JOIN items i ON i.qty = c.id JOIN t "
     "ON t.id = i.t_id WHERE t.k = 4 ORDER BY c.id, i.id", EXACT, ()),
    # forms sqlglot writes in MySQL 8 syntax, and a HAVING on a GROUP BY alias
    ("SELECT k % 3 AS s, COUNT(*) FROM t GROUP BY s HAVING s > 0 ORDER BY s", EXACT, ()),
    ("SELECT id, g FROM t WHERE g REGEXP '^[ab]' OR g NOT RLIKE 'e' ORDER BY id", EXACT, ()),
    ("SELECT id FROM t WHERE id < 40 ORDER BY id LIMIT 5 LOCK IN SHARE MODE", EXACT, ()),
]


@pytest.fixture(scope="module")
def db() -> Iterator[refdb.RefDB]:
    with refdb.reference() as ref:
        ref.load(refdb.random_rows(seed=20261122), refdb.random_items(seed=20261122, parents=300))
        yield ref


def _describe(cols: Sequence) -> list[tuple]:
    return [(c.name, c.type, c.length, c.decimals, c.charset) for c in cols]


def _folded(rows: list[list[bytes | None]], fold: tuple[int, ...]) -> list[list[object]]:
    return [[general_fold(v.decode()) if i in fold and v is not None else v
             for i, v in enumerate(row)] for row in rows]


def _multiset(rows: list[list[object]]) -> list[list[object]]:
    return sorted(rows, key=lambda row: [(v is None, repr(v)) for v in row])


def check(db: refdb.RefDB, sql: str, compare: object = EXACT, fold: tuple[int, ...] = (),
          slots: bool = False) -> None:
    """Run ``sql`` on the reference and scattered on the shards; the results must agree.

    With ``slots``, plan as the router does on a cache miss: from the fingerprint key with
    literals as ``:_N`` slots, the shard SQL rendered per execution with the literals."""
    ref_columns, ref_rows = refdb.run(db.ref, sql)
    if slots:
        fp = fingerprint(sql.encode())
        prepared = analysis_text(fp.key)
        assert prepared is not None
        text = prepared[0]
        values = fp.slots(sql.encode())
        plan = plan_scatter(sqlglot.parse_one(text, dialect="mysql"), text)
        shard_sql = build_template(plan.shard_sql, []).render(
            plan.shard_slots(values), b"").decode()
    else:
        plan = plan_scatter(sqlglot.parse_one(sql, dialect="mysql"), sql)
        shard_sql, values = plan.shard_sql, None
    outs = [refdb.run(shard, shard_sql) for shard in db.shards]
    columns, rows = merge(plan.spec, outs[0][0], [out[1] for out in outs], max_rows=100_000,
                          slots=values)
    assert _describe(columns) == _describe(ref_columns), plan.shard_sql
    got, want = _folded(rows, fold), _folded(ref_rows, fold)
    if compare == EXACT:
        assert got == want, plan.shard_sql
    elif compare == SET:
        assert _multiset(got) == _multiset(want), plan.shard_sql
    else:
        keys = compare
        assert [[r[i] for i in keys] for r in got] == [[r[i] for i in keys] for r in want]  # type: ignore[union-attr]


@pytest.mark.parametrize(("sql", "compare", "fold"), CASES, ids=[c[0][:60] for c in CASES])
def test_scatter_matches_one_server(db: refdb.RefDB, sql: str, compare: object,
                                    fold: tuple[int, ...]) -> None:
    check(db, sql, compare, fold)


@pytest.mark.parametrize(("sql", "compare", "fold"), CASES, ids=[c[0][:60] for c in CASES])
def test_scatter_planned_from_fingerprint_slots(db: refdb.RefDB, sql: str, compare: object,
                                                fold: tuple[int, ...]) -> None:
    check(db, sql, compare, fold, slots=True)


TEMPLATES = [
    ("SELECT id, k, price FROM t ORDER BY k DESC, price, id LIMIT 3, 7", EXACT, ()),
    ("SELECT COUNT(*), COUNT(k), SUM(k), AVG(k), SUM(price), AVG(price), MIN(f), AVG(f) FROM t",
     EXACT, ()),
    ("SELECT g, COUNT(*), SUM(price), AVG(k) FROM t GROUP BY g HAVING COUNT(*) > 1", EXACT, (0,)),
    ("SELECT k, COUNT(DISTINCT g), MAX(ts) FROM t GROUP BY k ORDER BY 2 DESC, k", EXACT, ()),
    ("SELECT DISTINCT g FROM t ORDER BY g", EXACT, (0,)),
    ("SELECT t.id, i.id, i.qty FROM t JOIN items i ON i.t_id = t.id "
     "ORDER BY i.qty DESC, i.id LIMIT 4, 9", EXACT, ()),
    ("SELECT t.g, COUNT(*), SUM(i.qty), AVG(i.price), COUNT(DISTINCT i.sku) FROM t "
     "LEFT JOIN items i ON i.t_id = t.id GROUP BY t.g", EXACT, (0,)),
]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), count=st.integers(0, 60))
def test_scatter_matches_one_server_on_random_data(db: refdb.RefDB, seed: int,
                                                   count: int) -> None:
    db.load(refdb.random_rows(seed, count), refdb.random_items(seed, count, count * 2))
    try:
        for sql, compare, fold in TEMPLATES:
            check(db, sql, compare, fold)
    finally:
        db.load(refdb.random_rows(seed=20261122), refdb.random_items(seed=20261122, parents=300))
