"""`dal bench --scatter`: a 120-shard scatter read through DAL against the same query on one
unsharded table holding the same rows.

The rows: ``--scatter-rows`` orders (100,000 by default) in the shape of trade.orders
(config/schema/trade.sql, the same columns and indexes), with gene ids (``id % 120`` is the
user shard, as DAL generates them). They live twice:

  dal     sbtest.orders, sharded by `id` over the 120 sbtest_NNN databases (config/bench.yaml;
          its schema is config/schema/sbtest.sql), filled directly on each shard's instance
  direct  <direct database>.scatter_orders on the direct target: all rows in one table

The queries (one client, one statement at a time, rounds alternated over the targets; one
uncounted warm-up round per target first):

  created_at  SELECT ... ORDER BY created_at DESC, id DESC LIMIT 20: no index on created_at
              (as in trade.orders), so every shard sorts its rows, and the unsharded table all
  id          SELECT ... ORDER BY id DESC LIMIT 20: the primary key; each shard reads 20 rows
              and DAL's fan-out is most of the cost

and the floors (tools/bench_floor.py): the same 120 shard statements straight to MariaDB,
pipelined on 1 and on DAL's `fanout.CONNECTIONS` raw connections per instance, no DAL.

p50/p99 per target and query; ratio = target / direct (above 1: slower). Before measuring,
the bench checks once that DAL's 20 rows are the unsharded table's 20 rows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import pymysql

from config.model import Config
from dal.execute import fanout
from router.genes import GENE_SPACE, SHARDS
from tools.bench_common import (
    CONNECT_TIMEOUT,
    MAX_ERROR_SAMPLES,
    BenchError,
    Target,
    describe_error,
    ms,
    percentile,
    ratio,
)
from tools.bench_floor import Floor
from tools.bench_layout import ShardTable, apply_schema, sharded_layout
from tools.bench_report import num, print_table

TABLE = "orders"  # in the logical database sbtest (sharded)
FLAT_TABLE = "scatter_orders"  # on the direct target (unsharded)
COLUMNS = "id, user_id, total, created_at"
QUERIES = {
    "created_at": f"SELECT {COLUMNS} FROM {{table}} ORDER BY created_at DESC, id DESC LIMIT 20",
    "id": f"SELECT {COLUMNS} FROM {{table}} ORDER BY id DESC LIMIT 20",
}
INSERT_BATCH = 1000
QUERY_TIMEOUT = 60
BASE_TIME = datetime.datetime(2026, 1, 1)
CREATE_FLAT = f"""CREATE TABLE IF NOT EXISTS {{db}}.{FLAT_TABLE} (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  merchant_id BIGINT UNSIGNED NOT NULL,
  status TINYINT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  KEY idx_user_created (user_id, created_at),
  KEY idx_merchant_created (merchant_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

Row = tuple[int, int, int, int, str, str, datetime.datetime, datetime.datetime]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scatter", action="store_true",
                        help="also measure a 120-shard scatter (ORDER BY ... LIMIT 20 over "
                        "--scatter-rows orders in sbtest.orders) through DAL against the same "
                        "query on one unsharded table on the direct target "
                        "(tools/bench_scatter.py)")
    parser.add_argument("--scatter-rows", type=int, default=100_000,
                        help="orders the scatter reads (default: %(default)s)")


def rows(count: int) -> Iterator[Row]:
    """The orders (id, user_id, merchant_id, status, total, note, created_at, updated_at); the
    same values on every call, and each row's values follow from its number alone
    (``created_at``: distinct milliseconds for the first 1,000,003 rows)."""
    for i in range(count):
        user = 1 + (i * 7919) % 50_000
        merchant = 1 + (i * 104_729) % 5_000
        order_id = (i + 1) * GENE_SPACE + (merchant % SHARDS) * SHARDS + user % SHARDS
        at = BASE_TIME + datetime.timedelta(milliseconds=(i * 7919) % 1_000_003)
        yield (order_id, user, merchant, i % 5, f"{1 + i % 10_000 / 100:.2f}", "bench", at, at)


def _connect(host: str, port: int, user: str, password: str) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(host=host, port=port, user=user, password=password,
                               autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               read_timeout=QUERY_TIMEOUT, ssl_disabled=True)
    except pymysql.err.Error as exc:
        raise BenchError(f"--scatter: cannot reach {host}:{port}: {describe_error(exc)}") from None


def _insert(cur: pymysql.cursors.Cursor, table: str, batch: list[Row]) -> None:
    cur.execute(f"INSERT INTO {table} (id, user_id, merchant_id, status, total, note, "
                "created_at, updated_at) VALUES " + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s)"]
                                                             * len(batch)),
                [value for row in batch for value in row])


def _refill(cur: pymysql.cursors.Cursor, table: str, wanted: list[Row]) -> bool:
    """Make ``table`` hold exactly ``wanted`` (compared by count and id sum: a row's values
    follow from its id); True when it had to be refilled."""
    cur.execute(f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM {table}")
    count, ids = cur.fetchone()
    if (int(count), int(ids)) == (len(wanted), sum(r[0] for r in wanted)):
        return False
    cur.execute(f"TRUNCATE TABLE {table}")
    for start in range(0, len(wanted), INSERT_BATCH):
        _insert(cur, table, wanted[start:start + INSERT_BATCH])
    return True


def setup(config: Config, direct: Target, count: int) -> int:
    """Create and fill sbtest.orders on its shards and the unsharded copy on the direct target
    where they differ from `rows(count)`; returns the number of shards."""
    layout = sharded_layout(config, TABLE, "--scatter")
    apply_schema(config)
    shards = [t for _, tables in layout for t in tables]
    by_shard: dict[ShardTable, list[Row]] = {t: [] for t in shards}
    per_dim = [(tables, len(tables)) for _, tables in layout]
    wanted = list(rows(count))
    for row in wanted:
        for tables, n in per_dim:
            by_shard[tables[row[0] % n]].append(row)
    started, refilled = time.monotonic(), 0
    conns: dict[str, pymysql.connections.Connection] = {}
    try:
        for t in shards:
            if t.instance not in conns:
                inst = config.instances[t.instance]
                conns[t.instance] = _connect(inst.host, inst.port, inst.user, inst.password)
            with conns[t.instance].cursor() as cur:
                refilled += _refill(cur, f"`{t.database}`.{TABLE}", by_shard[t])
        flat = _connect(direct.host, direct.port, direct.user, direct.password)
        conns["(direct)"] = flat
        with flat.cursor() as cur:
            db = f"`{direct.database}`"
            cur.execute(CREATE_FLAT.format(db=db))
            refilled += _refill(cur, f"{db}.{FLAT_TABLE}", wanted)
    except pymysql.err.Error as exc:
        raise BenchError(f"--scatter: cannot fill the orders: {describe_error(exc)}") from None
    finally:
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()
    if refilled:
        print(f"dal bench: scatter: filled {refilled} tables with {count} orders in "
              f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return len(layout[0][1])


def _sql(name: str, target: Target) -> str:
    return QUERIES[name].format(table=FLAT_TABLE if target.name == "direct" else TABLE)


def _timed(conn: pymysql.connections.Connection, sql: str, seconds: float,
           latencies: list[float], errors: list[str]) -> None:
    """Run ``sql`` one at a time for ``seconds`` (at least once)."""
    stop = time.perf_counter() + seconds
    while True:
        t = time.perf_counter()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetchall()
        except pymysql.err.Error as exc:
            errors.append(describe_error(exc))
            if len(errors) > 50:
                return
        else:
            latencies.append(time.perf_counter() - t)
        if time.perf_counter() >= stop:
            return


def _check_same(conns: dict[str, pymysql.connections.Connection],
                targets: list[Target]) -> None:
    for name in QUERIES:
        answers = {}
        for t in targets:
            with conns[t.name].cursor() as cur:
                cur.execute(_sql(name, t))
                answers[t.name] = [tuple(str(v) for v in row) for row in cur.fetchall()]
        direct = answers["direct"]
        for other, got in answers.items():
            if got != direct or len(got) != min(20, len(direct)):
                raise BenchError(f"--scatter: {other} answers query {name!r} with other rows "
                                 f"than the unsharded table: {got[:2]} ... against "
                                 f"{direct[:2]} ...")


def measure(targets: list[Target], rounds: int, duration: float,
            warmup: float, config: Config | None = None) -> dict[str, Any]:
    """Alternated rounds of each query on each target (the first is direct), and with
    ``config`` on the floors (tools/bench_floor.py: the shard statements straight to MariaDB,
    on 1 and on DAL's `fanout.CONNECTIONS` connections per instance)."""
    conns: dict[str, pymysql.connections.Connection] = {}
    floors: list[Floor] = []
    try:
        if config is not None:
            shards = [t for _, tables in sharded_layout(config, TABLE, "--scatter")
                      for t in tables]
            for count in sorted({1, fanout.CONNECTIONS}):
                floors.append(Floor(config, shards, count))
                floors[-1].open()
        for t in targets:
            try:
                conns[t.name] = t.connect(read_timeout=QUERY_TIMEOUT)
            except pymysql.err.Error as exc:
                raise BenchError(f"--scatter: cannot reach {t.name} at {t.address()}: "
                                 f"{describe_error(exc)}") from None
        _check_same(conns, targets)
        times: dict[str, dict[str, list[float]]] = {
            q: {name: [] for name in [t.name for t in targets] + [f.name for f in floors]}
            for q in QUERIES}
        errors: dict[str, list[str]] = {t.name: [] for t in targets}
        for name in QUERIES:
            for t in targets:
                _timed(conns[t.name], _sql(name, t), min(warmup, 1.0), [], errors[t.name])
            for f in floors:
                f.timed(f.statements(QUERIES[name]), min(warmup, 1.0), [])
        for number in range(1, rounds + 1):
            for name in QUERIES:
                for t in targets:
                    before = len(times[name][t.name])
                    _timed(conns[t.name], _sql(name, t), duration / len(QUERIES),
                           times[name][t.name], errors[t.name])
                    got = times[name][t.name][before:]
                    print(f"scatter round {number}/{rounds}: {name:<10} {t.name:<6} "
                          f"{len(got):>6} queries  p50 "
                          f"{num(statistics.median(got) * 1000 if got else None, '.2f')} ms",
                          file=sys.stderr, flush=True)
                for f in floors:
                    f.timed(f.statements(QUERIES[name]), duration / len(QUERIES),
                            times[name][f.name])
    finally:
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()
        for f in floors:
            f.close()
    return _figures(targets, floors, times, errors)


def _figures(targets: list[Target], floors: list[Floor],
             times: dict[str, dict[str, list[float]]],
             errors: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, per_target in times.items():
        where = {t.name: (_sql(name, t), t.address()) for t in targets}
        where.update({f.name: (QUERIES[name].format(table="`sbtest_NNN`.orders") + " x "
                               f"{len(f.shards)}, pipelined",
                               f"{f.connections} raw connection(s) per instance")
                      for f in floors})
        figures = {}
        for target, (sql, address) in where.items():
            ordered = sorted(per_target[target])
            figures[target] = {
                "sql": sql, "address": address, "queries": len(ordered),
                "avg_ms": ms(statistics.fmean(ordered) * 1000) if ordered else None,
                "p50_ms": ms(percentile(ordered, 50)), "p99_ms": ms(percentile(ordered, 99)),
            }
        base = figures[targets[0].name]
        out[name] = {"targets": figures, "ratios": {
            target: {"p50": ratio(figures[target]["p50_ms"], base["p50_ms"]),
                     "p99": ratio(figures[target]["p99_ms"], base["p99_ms"])}
            for target in list(where)[1:]}}
    return {"queries": out, "errors": {n: len(e) for n, e in errors.items()},
            "error_samples": {n: list(dict.fromkeys(e))[:MAX_ERROR_SAMPLES]
                              for n, e in errors.items() if e}}


def report(result: dict[str, Any]) -> None:
    """The scatter's table: per query and target, p50/p99 and their ratios to direct."""
    columns = ("query", "target", "queries", "avg ms", "p50 ms", "p99 ms", "p50 x direct",
               "p99 x direct")
    table = []
    for name, q in result["queries"].items():
        for target, f in q["targets"].items():
            r = q["ratios"].get(target, {"p50": 1.0, "p99": 1.0})
            table.append([name, target, str(f["queries"]), num(f["avg_ms"], ".2f"),
                          num(f["p50_ms"], ".2f"), num(f["p99_ms"], ".2f"),
                          num(r["p50"], ".2f"), num(r["p99"], ".2f")])
    errors = [f"scatter {n}: {m}" for n, ms_ in result["error_samples"].items() for m in ms_]
    print_table(f"scatter over {result['shards']} shards, {result['rows']} orders "
                f"(ORDER BY ... LIMIT 20; direct: one unsharded table; floorN: the shard "
                f"statements straight to MariaDB, pipelined on N connections, no DAL)",
                columns, table,
                errors=errors)
