"""Differential test: a seeded random workload on the sharded `orders` and `order_items`
tables runs through DAL and against `trade_ref`, an unsharded copy of the same tables on
instance a. Every statement must answer the same on both (rows, order where the statement
fixes it, column names and types, affected rows, errors). Afterwards a direct scan of the 120
user shards must find each row exactly in the shard its user_id names, and their union must
equal the reference row for row.

The workload (tests/differential/workload.py) only writes user ids of its own range, and its
scatters keep to that range, so other tests' rows never enter a comparison. A failure names the
statement, its index and the seed. To replay a seed (for example one Hypothesis found):
DAL_DIFF_SEED=<seed> DAL_DIFF_COUNT=<n> pytest tests/integration/test_differential.py -k default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pymysql
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.dal_process import ROOT, dba_login
from tests.differential.runner import Differential, Stats, purge
from tests.differential.workload import Workload

REFERENCE = "trade_ref"
SCHEMA = ROOT / "config" / "schema" / "trade.sql"
DEFAULT_SEED = int(os.environ.get("DAL_DIFF_SEED", "20240611"))
DEFAULT_COUNT = int(os.environ.get("DAL_DIFF_COUNT", "5000"))
HYPOTHESIS_COUNT = 500


def reference_ddl() -> list[str]:
    """The CREATE TABLE statements of `orders` and `order_items` from the shipped schema."""
    text = re.sub(r"--[^\n]*", "", SCHEMA.read_text())
    statements = [s.strip() for s in text.split(";") if s.strip()]
    wanted = [s for s in statements
              if re.match(r"CREATE TABLE (IF NOT EXISTS )?`?(orders|order_items)`?\s*\(", s)]
    assert len(wanted) == 2, f"orders and order_items not found in {SCHEMA}"
    return wanted


@pytest.fixture(scope="session")
def reference(backends: dict[str, dict]) -> Iterator[str]:
    """`trade_ref` on instance a: the two tables, unsharded; dropped at the end."""
    cfg = backends["a"]
    user, password = dba_login()  # a scratch database: DAL's backend account may not create it
    conn = pymysql.connect(host=cfg["host"], port=cfg["port"], user=user,
                           password=password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {REFERENCE}")
            cur.execute(f"CREATE DATABASE {REFERENCE} DEFAULT CHARACTER SET utf8mb4")
            for ddl in reference_ddl():
                cur.execute(f"USE {REFERENCE}")
                cur.execute(ddl)
        yield REFERENCE
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {REFERENCE}")
        conn.close()


@pytest.fixture
def differential(connect: Callable[..., pymysql.connections.Connection],
                 direct: Callable[..., pymysql.connections.Connection],
                 reference: str) -> Iterator[Callable[[int, int], Stats]]:
    """``run(seed, count)``: one workload, compared, checked shard by shard, cleaned up.
    A failed run's rows are purged directly at the end of the test."""
    dal = connect()
    ref = direct("a", reference, account="dba")
    instances = {"a": direct("a"), "b": direct("b")}

    def run(seed: int, count: int) -> Stats:
        purge(instances, ref)
        workload = Workload(seed, count)
        diff = Differential(dal, ref, instances, seed)
        stats = diff.run(workload)
        counts = diff.verify_shards()
        assert counts["orders"] > 0 and counts["order_items"] > 0, counts
        diff.cleanup(workload)
        purge(instances, ref)
        return stats

    yield run
    purge(instances, ref)


def test_differential_default_seed(differential: Callable[[int, int], Stats]) -> None:
    stats = differential(DEFAULT_SEED, DEFAULT_COUNT)
    assert sum(stats.kinds.values()) == DEFAULT_COUNT
    assert stats.scatters >= DEFAULT_COUNT // 10, stats.summary()
    assert stats.rows_compared >= DEFAULT_COUNT, stats.summary()
    assert stats.modes["refuse"] and stats.modes["route"] and stats.errors_compared, \
        stats.summary()
    print(stats.summary())


@settings(max_examples=3, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_differential_hypothesis_seeds(differential: Callable[[int, int], Stats],
                                       seed: int) -> None:
    stats = differential(seed, HYPOTHESIS_COUNT)
    assert sum(stats.kinds.values()) == HYPOTHESIS_COUNT
