"""`dal bench --spread`: what the sharded layout alone costs MariaDB, with no proxy.

DAL's --sharded rounds read sbtest1's rows from as many tables as there are shards, where the
direct target reads them from one table. On one server that spread has a price of its own:
more open tables, more index roots, less cache locality. The `spread` target measures it:
sysbench straight to the direct instance, its rows spread over ``shards`` tables of one
database (`sbtest_spread`: sysbench's sbtest1..sbtestN, N = the shard count, each holding ids
1..ceil(size / N) with the same k, c and pad as trade.sbtest1), one picked at random per query
as DAL's shard is by id. With --hop, `sp-hop` puts the same HAProxy in front of it.

So, in one run: direct / spread is what a proxy that cost nothing would reach on this layout,
and sp-hop what one that only copies bytes would.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import pymysql

from tools.bench_common import BenchError, Target

DATABASE = "sbtest_spread"  # in `sbtest\_%`, which the instance's DAL account may create
NAME = "spread"
HOP_NAME = "sp-hop"


def per_table(size: int, tables: int) -> int:
    """Rows per table: ids 1..per_table(size, tables) in each."""
    return math.ceil(size / tables)


def target(direct: Target, tables: int, size: int, port: int | None = None,
           name: str = NAME) -> Target:
    """The spread target: the direct instance (or the hop on ``port``), `sbtest_spread`."""
    return Target(name, direct.host, port or direct.port, direct.user, direct.password,
                  DATABASE, tables=tables, table_size=per_table(size, tables))


def prepared_limit(direct: Target, threads: int, tables: int) -> str | None:
    """Why `spread` cannot run with prepared statements at ``threads`` sysbench threads (each
    prepares its statement on every table, and the server holds at most
    max_prepared_stmt_count of them in all); None when it can."""
    conn = pymysql.connect(host=direct.host, port=direct.port, user=direct.user,
                           password=direct.password, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@max_prepared_stmt_count")
            (limit,) = cur.fetchone()
    finally:
        conn.close()
    wanted = threads * tables
    if wanted <= int(limit) * 0.9:  # leave room for other clients' statements
        return None
    return (f"{threads} threads would prepare {wanted} statements on {tables} tables, more than "
            f"the server's max_prepared_stmt_count ({limit}) allows")


def targets(args: argparse.Namespace, direct: Target, tables: int, hop_port: int | None,
            result: dict[str, Any]) -> list[Target]:
    """The run's spread targets (`spread`, and `sp-hop` with the hop on ``hop_port``), their
    tables set up; none, with the reason in ``result`` and on stderr, where the run's prepared
    statements would not fit the server (`prepared_limit`)."""
    unfit = (prepared_limit(direct, max(args.clients_set or [args.threads]), tables)
             if args.ps_mode != "disable" else None)
    if unfit is not None:
        print(f"dal bench: --spread: not measured: {unfit} (DAL prepares each shard's "
              "statement once per pooled connection)"
              + ("; left out of the ps-mode disable rounds too, which share the targets"
                 if args.ps_mode == "both" else ""), file=sys.stderr)
        result["spread"] = {"measured": False, "reason": unfit}
        return []
    setup(direct, tables, args.table_size)
    found = [target(direct, tables, args.table_size)]
    if hop_port is not None:
        found.append(target(direct, tables, args.table_size, hop_port, HOP_NAME))
    return found


def setup(direct: Target, tables: int, size: int) -> None:
    """Create `sbtest_spread` and its ``tables`` tables where missing, and refill a table whose
    rows are not trade.sbtest1's ids 1..per_table (copied from it: run after its setup)."""
    per = per_table(size, tables)
    try:
        conn = pymysql.connect(host=direct.host, port=direct.port, user=direct.user,
                               password=direct.password, autocommit=True, connect_timeout=10)
    except pymysql.err.Error as exc:
        raise BenchError(f"--spread: cannot connect to {direct.address()} as "
                         f"{direct.user!r}: {exc}") from exc
    refilled = 0
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")
            for number in range(1, tables + 1):
                table = f"`{DATABASE}`.sbtest{number}"
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ("
                            " id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT '0',"
                            " c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',"
                            f" PRIMARY KEY (id), KEY k_{number} (k)) ENGINE=InnoDB")
                cur.execute(f"SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) "
                            f"FROM {table}")
                if cur.fetchone() == (per, 1, per):
                    continue
                cur.execute(f"TRUNCATE TABLE {table}")
                cur.execute(f"INSERT INTO {table} (id, k, c, pad) SELECT id, k, c, pad "
                            f"FROM `{direct.database}`.sbtest1 WHERE id <= %s", (per,))
                refilled += 1
    except pymysql.err.Error as exc:
        raise BenchError(f"--spread: cannot set up {DATABASE} on {direct.address()}: "
                         f"{exc}") from exc
    finally:
        conn.close()
    if refilled:
        print(f"dal bench: spread: filled {refilled} of {tables} tables of {DATABASE} with ids "
              f"1..{per}", file=sys.stderr)
