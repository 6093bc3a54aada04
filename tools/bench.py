"""Benchmark DAL against a direct connection to its default backend, side by side in one run.

What it measures: point selects `SELECT c FROM sbtest1 WHERE id=?` (random ids, 1..--table-size,
text protocol). The baseline database is the config's first logical database other than
`sbtest` (`trade` in the shipped configs). The same query runs on two targets:

  direct  the baseline's default instance itself, its default database (trade.sbtest1: all rows
          in one table, the single-database baseline)
  dal     DAL's listen address (config `server.listen`, or --port), user app/app, and
            unsharded (default)  database trade: sbtest1 is a table the config does not name,
                                 so DAL relays every query to trade.sbtest1 on the default instance
            --sharded            database sbtest: sbtest1 sharded by `id`, so DAL routes each
                                 query to shard id % 120 (sbtest_NNN, on the instance its
                                 placement names)

--sharded needs a config with the logical database `sbtest` (sbtest1 of kind sharded, every
dimension keyed by `id`): config/bench.yaml defines it, on the `make run` instances. The config is
the --config you pass, as always; without `sbtest` the bench exits with status 2. Example:

  dal localdb up --config config/bench.yaml
  dal bench --config config/bench.yaml --sysbench --sharded

Rounds alternate direct, dal, direct, dal ... (--rounds per target), so that drift of the
machine (caches, other load) hits both targets alike. Before them, each target gets one warm-up
round of --warmup seconds that is not counted (buffer pools, DAL's pooled connections and the
statements they have prepared, plan caches: a DAL started for the run begins cold).
trade.sbtest1 is created through the direct connection if missing and refilled to --table-size
rows when its row count differs. With --sharded, `dal schema apply` is run for the logical
database `sbtest` first (its schema file, config/schema/sbtest.sql: creates the sbtest_NNN
databases and their sbtest1 where missing), then every shard whose rows differ from ids
1..--table-size with id % shards == shard is refilled directly on its instance, with the same
k/c/pad values as trade.sbtest1. If nothing listens on DAL's address, `dal serve --no-metrics
--config <the same config>` is started for the run and stopped after it.

Load generators:
  (default)   a built-in generator: --clients pymysql connections over --procs processes.
              The client is Python too, so on a small machine it takes CPU from both servers and
              the ratio comes out closer to 1 than the real cost of the hop.
  --sysbench  sysbench oltp_point_select with --threads threads (the DESIGN.md budget figures).

Reading the report: per target, the queries, qps (all rounds together: total queries / total
seconds), avg/p50/p99 latency in ms and errors. `ratio qps` = dal qps / direct qps: 1.00 means
DAL costs nothing, 0.50 means DAL serves half the direct throughput; --hop measures the floor
a proxy reaches on the machine in the same run (below). `ratio p99` = dal p99 / direct p99
(above 1: slower).
In sysbench mode the p99 of a target is the median of its rounds' p99s. With --ps-mode both,
every round runs direct and dal in ps-mode disable, then in auto, and the report has a table per
mode and the ratio of the two ratios (auto / disable), all from the same run.

`cpu per query` (Linux): the CPU time (user + system) each round cost, per query, of DAL (the
processes listening on its port; idle in direct rounds), the database servers (those listening
on the config's instance ports) and the load generator. On a machine where all three share the
cores, it shows where the time went: the ratio falls as DAL's share of the CPU grows.

The whole picture in one run (docs/performance.md has the figures and how to reproduce them):
  --hop                  one more target: HAProxy (mode tcp) in front of direct, started on a
                         free port and stopped after (tools/bench_hop.py; skipped, with the
                         reason, when haproxy is not installed): the floor any proxy reaches
  --spread               one more target: sysbench straight to MariaDB with the rows spread over
                         as many tables as DAL has shards (what the layout alone costs the
                         server), and with --hop the hop in front of that (tools/bench_spread.py)
  --compare-port P[:L]   one more target per option: another DAL already listening on P (an
                         older build, say), with its own CPU per query: an A/B in one run
  --clients-set 32,1000  the alternated rounds once per client count: sysbench threads, or the
                         asyncio generator (tools/bench_async.py) above --sysbench-max-threads
                         or without --sysbench; a summary table of the ratios per count
  --scatter              a 120-shard ORDER BY ... LIMIT 20 through DAL against the same query
                         on one unsharded table (tools/bench_scatter.py), p50/p99
  --ids                  order ids generated per second in this process (tools/bench_ids.py)
  --no-point-selects     only the --scatter and --ids parts
Every target gets its rounds in turn, all alternated; each ratio is to direct. Direct opens
every round and the other targets take turns right after it (that place measured 6-8 % less CPU
per query for the same build), so an A/B is not decided by the order. The report ends
with the machine's load and CPU steal during the run (from /proc/stat).

Progress goes to stderr, one line per round; the report to stdout (a table on a terminal, plain
aligned text otherwise); --json FILE writes the figures. Exit status: 0 done, 1 a target is
unreachable or a round failed, 2 bad config or arguments (--sharded without `sbtest`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from config.loader import load_config
from config.model import Config
from tools import (
    bench_cpu,
    bench_hop,
    bench_idle,
    bench_ids,
    bench_report,
    bench_scatter,
    bench_spread,
)
from tools.bench_common import (
    CONNECT_TIMEOUT,
    MAX_ERROR_SAMPLES,
    QUERY,
    BenchConfigError,
    BenchError,
    Target,
)
from tools.bench_common import describe_error as _describe
from tools.bench_common import ms as _ms
from tools.bench_common import percentile as _percentile
from tools.bench_common import ratio as _ratio
from tools.bench_layout import (
    SHARD_KEY,
    SHARDED_DB,
    TABLE,
    ShardTable,
    apply_schema,
    sharded_layout,
)

FILL_WORKERS = 4  # connections filling the shards
DAL_START_TIMEOUT = 20.0
QUERY_TIMEOUT = 10  # seconds a single query may take before it counts as an error
READY_TIMEOUT = 30.0  # seconds for the worker processes to open their connections
SAMPLES_PER_PROC = 500_000  # latency samples kept per worker process and round
INSERT_BATCH = 1000


@dataclass
class Round:
    """The figures of one round against one target."""

    number: int
    target: str
    queries: int = 0
    seconds: float = 0.0
    qps: float = 0.0
    avg_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per group (tools/bench_cpu.py)


@dataclass
class Summary:
    """All rounds of one target together."""

    target: str
    address: str
    rounds: int
    queries: int
    seconds: float
    qps: float
    qps_median: float
    avg_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    error_samples: list[str]
    cpu_us: dict[str, float]  # CPU microseconds per query per group, all rounds together


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="DAL's port (default: the config's listen port)")
    parser.add_argument("--user", default="app", help="DAL user (default: %(default)s)")
    parser.add_argument("--password", default="app", help="DAL password (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per target, alternating direct and dal (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of one uncounted warm-up round per target before the "
                        "measured rounds; 0 for none (default: %(default)s)")
    parser.add_argument("--table-size", type=int, default=10000,
                        help="rows in trade.sbtest1 (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=16,
                        help="built-in generator: connections (default: %(default)s)")
    parser.add_argument("--procs", type=int, default=2,
                        help="built-in generator: worker processes (default: %(default)s)")
    parser.add_argument("--max-queries", type=int, default=10_000_000,
                        help="built-in generator: at most this many queries per round "
                        "(default: %(default)s)")
    parser.add_argument("--sysbench", action="store_true",
                        help="run sysbench oltp_point_select instead of the built-in generator")
    parser.add_argument("--sharded", action="store_true",
                        help="DAL target: database sbtest, sbtest1 sharded by id (the config "
                        "must define the logical database sbtest, as config/bench.yaml does); "
                        "direct stays trade.sbtest1")
    parser.add_argument("--threads", type=int, default=32,
                        help="sysbench threads (default: %(default)s)")
    parser.add_argument("--ps-mode", choices=["disable", "auto", "both"], default="disable",
                        help="sysbench --db-ps-mode (default: %(default)s); auto = server-side "
                        "prepared statements; both = each round runs both targets in disable, "
                        "then in auto, and the report compares the two ratios")
    parser.add_argument("--rate", type=int, metavar="QPS",
                        help="sysbench --rate: a fixed offered load of QPS statements per second "
                        "for every target, instead of as many as each serves. The targets then "
                        "do the same work, so CPU per query compares the cost of one statement "
                        "rather than how well each batches at saturation (with --ps-mode both: "
                        "COM_STMT_EXECUTE against COM_QUERY at equal load); the qps ratio is "
                        "1.00 while every target keeps up, so read the latency and CPU figures")
    parser.add_argument("--workload", choices=sorted(SYSBENCH_WORKLOADS),
                        default="oltp_point_select",
                        help="sysbench test (default: %(default)s); oltp_read_write runs with "
                        "--skip_trx=on --delete_inserts=0 unless --transactions is given")
    parser.add_argument("--transactions", action="store_true",
                        help="oltp_read_write with its BEGIN/COMMIT (and DELETE+INSERT): its "
                        "transactions span shards, so DAL must run transaction mode xa "
                        "(config/bench.yaml does). Only DAL's errors fail the run: the "
                        "unsharded direct target may report deadlocks, which sysbench retries")
    parser.add_argument("--many", type=int, metavar="N",
                        help="many-clients mode: N asyncio clients in one process doing point "
                        "reads and single-shard transactions on trade.orders (tools/loadgen.py), "
                        "against DAL and directly against each user's shard database")
    parser.add_argument("--txn-modes", action="store_true",
                        help="single-shard transactions (BEGIN, SELECT FOR UPDATE, UPDATE, "
                             "COMMIT) through two DALs started here, one in transaction mode "
                             "single and one in xa, alternated: what mode xa costs "
                             "(--clients, --rounds, --duration)")
    parser.add_argument("--idle-clients", type=int, metavar="N",
                        help="idle-clients mode: log N clients in and leave them idle; report "
                        "DAL's memory per client (VmRSS) and the time they took to connect "
                        "(tools/bench_idle.py)")
    parser.add_argument("--idle-hold", type=float, default=0.0, metavar="SECONDS",
                        help="--idle-clients: keep them connected and idle this long, then "
                        "read DAL's memory again and COM_PING each (failures are errors)")
    parser.add_argument("--tls", action="store_true",
                        help="--idle-clients over TLS (needs server.tls in the config)")
    parser.add_argument("--hop", action="store_true",
                        help="also measure a plain TCP hop: HAProxy (mode tcp) started on a free "
                        "port in front of the direct target (tools/bench_hop.py); without "
                        "haproxy installed the bench says so and goes on without it")
    parser.add_argument("--spread", action="store_true",
                        help="with --sysbench --sharded: one more target, `spread`: sysbench "
                        "straight to the direct instance with the rows spread over as many "
                        "tables as DAL has shards (database sbtest_spread): what the layout "
                        "alone costs MariaDB, the ratio a proxy that cost nothing would reach; "
                        "with --hop also `sp-hop`, the hop in front of it (tools/bench_spread.py)")
    parser.add_argument("--compare-port", action="append", default=[], metavar="PORT[:LABEL]",
                        type=_compare_port,
                        help="also measure another DAL already listening on PORT (e.g. an older "
                        "build from another checkout) as target LABEL (default dal@PORT), with "
                        "its own CPU per query; repeatable")
    parser.add_argument("--clients-set", type=_counts, metavar="N,N,...",
                        help="run the rounds once per client count, e.g. 32,1000,5000: sysbench "
                        "threads with --sysbench up to --sysbench-max-threads, the asyncio "
                        "generator (tools/bench_async.py, --procs processes) otherwise")
    parser.add_argument("--sysbench-max-threads", type=int, default=10_000,
                        help="--clients-set: above this count the asyncio generator runs "
                        "instead of sysbench (default: %(default)s)")
    parser.add_argument("--ids", action="store_true",
                        help="also measure order ids generated per second in this process "
                        "(router/genes.py; no database needed; tools/bench_ids.py)")
    parser.add_argument("--ids-count", type=int, default=bench_ids.DEFAULT_COUNT,
                        help="--ids: ids per run (default: %(default)s)")
    parser.add_argument("--point-selects", action=argparse.BooleanOptionalAction, default=True,
                        help="the point-select rounds (default: on); --no-point-selects with "
                        "--scatter and/or --ids runs only those")
    bench_scatter.add_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE as JSON")


def _compare_port(text: str) -> tuple[int, str]:
    port, _, label = text.partition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {port!r}")
    return int(port), label or f"dal@{port}"


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not counts or min(counts) <= 0:
        raise argparse.ArgumentTypeError(f"counts must be positive: {text!r}")
    return counts


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    problem = _check_args(args)
    if not problem and getattr(args, "transactions", False) and args.sharded and (
            config.transactions.mode != "xa"):
        problem = (f"--transactions --sharded needs transactions: {{mode: xa}} in {args.config}"
                   ": sysbench's transactions span shards, which mode 'single' refuses")
    if problem:
        print(f"dal bench: {problem}", file=sys.stderr)
        return 2
    if args.sysbench and shutil.which("sysbench") is None:
        print("dal bench: --sysbench needs the `sysbench` program, which is not on PATH "
              "(apt-get install sysbench), or leave out --sysbench for the built-in generator",
              file=sys.stderr)
        return 1
    try:
        shards = sharded_layout(config) if args.sharded else []
        direct, dal = targets(config, args)
    except BenchConfigError as exc:
        print(f"dal bench: {exc}", file=sys.stderr)
        return 2
    if args.many:
        return run_many(args, config, dal)
    if getattr(args, "txn_modes", False):
        from tools.bench_txn import run_txn_modes

        return run_txn_modes(args, config)
    if args.idle_clients:
        return run_idle(args, config, dal)
    return run_picture(args, config, direct, dal, shards)


def run_picture(args: argparse.Namespace, config: Config, direct: Target, dal: Target,
                shards: list[tuple[str, list[ShardTable]]]) -> int:
    """The point-select rounds over every target (per client count with --clients-set), then
    the scatter and the id generator when asked; one report and one JSON."""
    layout = describe_layout(args, direct, dal, shards)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    machine = bench_cpu.machine_sample()
    try:
        with _sigterm_as_exit():
            if args.point_selects or args.scatter:
                if max(args.clients_set or [0]) > 500:
                    bench_idle.raise_fd_limit(2 * max(args.clients_set) + 500)  # DAL inherits it
                measure_servers(args, config, direct, dal, shards, layout, result)
            if args.ids:
                figures = bench_ids.measure(args.ids_count)
                print(f"dal bench: {figures.describe()}", file=sys.stderr)
                result["ids"] = figures.as_json()
    except BenchConfigError as exc:
        print(f"dal bench: {exc}", file=sys.stderr)
        return 2
    except (BenchError, ValueError) as exc:
        print(f"dal bench: {exc}", file=sys.stderr)
        return 1
    result["machine"] = bench_cpu.machine_summary(machine, bench_cpu.machine_sample())
    return emit(args, result, layout)


def measure_servers(args: argparse.Namespace, config: Config, direct: Target, dal: Target,
                    shards: list[tuple[str, list[ShardTable]]], layout: str,
                    result: dict[str, Any]) -> None:
    """Set up the tables, start what the run needs (DAL, the hop) and measure into ``result``."""
    if args.point_selects:
        print(f"dal bench: {layout}", file=sys.stderr)
        setup_table(direct, args.table_size)
        if args.sharded:
            setup_sharded(config, shards, args.table_size)
        probe(direct)
    scatter_shards = (bench_scatter.setup(config, direct, args.scatter_rows) if args.scatter
                      else None)
    with contextlib.ExitStack() as stack:
        started = stack.enter_context(dal_running(args.config, dal))
        compared = [Target(label, dal.host, port, dal.user, dal.password, dal.database)
                    for port, label in args.compare_port]
        targets = [direct, dal]
        if args.point_selects:
            for target in (dal, *compared):
                probe(target, hint="" if started or not args.sharded else (
                    f" (the DAL listening there may run a config without the logical "
                    f"database {SHARDED_DB!r}; stop it, or give --port for a DAL of its own)"))
            hop_port = stack.enter_context(bench_hop.hop_running(direct.host, direct.port)) \
                if args.hop else None
            result["hop"] = {"measured": hop_port is not None,
                             "reason": bench_hop.unavailable() if args.hop else "not asked"}
            if hop_port is not None:
                targets.append(Target("hop", direct.host, hop_port, direct.user,
                                      direct.password, direct.database))
            if args.spread:
                targets += bench_spread.targets(args, direct, len(shards[0][1]), hop_port,
                                                result)
            targets += compared
            # Each proxy's CPU group; `spread` is the servers themselves.
            ports = {t.name: {t.port} for t in targets[1:] if t.name != bench_spread.NAME}
            ports["servers"] = {instance.port for instance in config.instances.values()}
            meter = bench_cpu.CpuMeter.find(ports)
            if args.clients_set:
                result["by_clients"] = clients_set(args, targets, meter)
            else:
                result.update(benchmark(args, targets, meter))
            result.update(dal_started=started, layout="sharded" if args.sharded else "unsharded",
                          layout_text=layout, shards=len(shards[0][1]) if shards else None)
        if scatter_shards is not None:
            sbtest = [Target(t.name, t.host, t.port, t.user, t.password, SHARDED_DB)
                      for t in (dal, *compared)]
            scatter = bench_scatter.measure([direct, *sbtest], args.rounds, args.duration,
                                            args.warmup, config)
            result["scatter"] = {"rows": args.scatter_rows, "shards": scatter_shards, **scatter}


def clients_set(args: argparse.Namespace, targets: list[Target],
                meter: bench_cpu.CpuMeter) -> dict[str, dict[str, Any]]:
    """The alternated rounds once per --clients-set count; a count whose round failed is kept
    with the reason (`failed`) and the run goes on to the next."""
    out: dict[str, dict[str, Any]] = {}
    for count in args.clients_set:
        generator = ("sysbench" if args.sysbench and count <= args.sysbench_max_threads
                     else "asyncio")
        per = argparse.Namespace(**{
            **vars(args), "threads": count, "clients": count, "procs": min(args.procs, count),
            "sysbench": generator == "sysbench", "generator": generator,
            "max_queries": max(args.max_queries, count)})
        print(f"dal bench: {count} clients ({generator})", file=sys.stderr, flush=True)
        try:
            figures = benchmark(per, targets, meter)
        except BenchError as exc:
            print(f"dal bench: {count} clients: {exc}", file=sys.stderr)
            figures = {"failed": str(exc)}
        out[str(count)] = {"clients": count, "generator": generator, **figures}
    return out


def emit(args: argparse.Namespace, result: dict[str, Any], layout: str) -> int:
    """Print the report, write the JSON; the exit status (1 when a query failed)."""
    if "by_clients" in result:
        per_mode = [f for f in result["by_clients"].values() if "targets" in f]
    else:
        per_mode = list(result.get("by_ps_mode", {"": result}).values()) \
            if "targets" in result or "by_ps_mode" in result else []
    for figures in per_mode:
        bench_report.report({**figures, "layout_text": layout})
    if "by_clients" in result:
        bench_report.clients_summary(result["by_clients"])
    if "ratio_auto_over_disable" in result:
        print(f"ratio in auto / ratio in disable: {result['ratio_auto_over_disable']:.2f} "
              "(1.00 or more: prepared statements cost DAL no more than they save the backend)")
    if result.get("dal_cpu_execute_over_query") is not None:
        print(f"DAL's own cpu per COM_STMT_EXECUTE / per COM_QUERY of the same statement: "
              f"{result['dal_cpu_execute_over_query']:.2f} (issue 23: at most 1.00)")
    if result.get("hop", {}).get("measured") is False and args.hop:
        print(f"hop: not measured: {result['hop']['reason']}")
    if result.get("spread", {}).get("measured") is False:
        print(f"spread: not measured: {result['spread']['reason']}")
    if "scatter" in result:
        bench_scatter.report(result["scatter"])
    if "ids" in result:
        print(bench_ids.IdFigures(**result["ids"]).describe())
    print(f"{result['date']}: {bench_cpu.describe_machine(result['machine'])} during the run")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    # With --transactions the unsharded targets (direct, the hop) may deadlock; only the DALs'
    # errors count then.
    transactions = getattr(args, "transactions", False)
    errors = sum(t["errors"] for figures in per_mode for name, t in figures["targets"].items()
                 if not (transactions and name in ("direct", "hop")))
    errors += sum(result.get("scatter", {}).get("errors", {}).values())
    failed = [c for c, f in result.get("by_clients", {}).items() if "failed" in f]
    if errors or failed:
        print(f"dal bench: {errors} queries failed" + (
            f"; the rounds of {', '.join(failed)} clients failed" if failed else "")
            + " (see the error samples in the report)", file=sys.stderr)
        return 1
    return 0


def _check_args(args: argparse.Namespace) -> str | None:
    for name in ("duration", "rounds", "table_size", "clients", "procs", "threads", "max_queries"):
        if getattr(args, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive"
    if args.ps_mode == "both" and not args.sysbench:
        return "--ps-mode both goes with --sysbench (the built-in generator has no ps-mode)"
    if args.rate is not None and (args.rate <= 0 or not args.sysbench or args.clients_set):
        return "--rate needs a positive rate, --sysbench and no --clients-set"
    if args.warmup < 0:
        return "--warmup must not be negative (0: no warm-up round)"
    if args.procs > args.clients:
        return "--procs must not exceed --clients"
    if args.many is not None and (args.many <= 0 or args.sysbench or args.sharded):
        return "--many needs a positive client count and goes without --sysbench and --sharded"
    if args.idle_clients is not None and (args.idle_clients <= 0 or args.sysbench or args.many
                                          or args.sharded):
        return ("--idle-clients needs a positive client count and goes without --sysbench, "
                "--many and --sharded")
    if args.tls and not args.idle_clients:
        return "--tls goes with --idle-clients"
    if getattr(args, "spread", False) and not (args.sysbench and args.sharded
                                               and getattr(args, "workload", "")
                                               == "oltp_point_select"):
        return "--spread goes with --sysbench --sharded (oltp_point_select)"
    if getattr(args, "spread", False) and (
            not args.point_selects or getattr(args, "txn_modes", False)
            or max(args.clients_set or [0]) > args.sysbench_max_threads):
        return ("--spread measures the point-select rounds with sysbench: it goes without "
                "--no-point-selects and --txn-modes, and with --clients-set counts up to "
                "--sysbench-max-threads")
    if getattr(args, "transactions", False) and not (
            args.sysbench and getattr(args, "workload", "") == "oltp_read_write"):
        return "--transactions goes with --sysbench --workload oltp_read_write"
    return _check_picture_args(args)


RESERVED_NAMES = {"direct", "dal", "hop", "servers", "client", bench_spread.NAME,
                  bench_spread.HOP_NAME}  # targets and CPU groups


def _check_picture_args(args: argparse.Namespace) -> str | None:
    """The options of the whole-picture run (--hop, --compare-port, --clients-set, --scatter,
    --ids)."""
    labels = [label for _, label in args.compare_port]
    if set(labels) & RESERVED_NAMES or len(set(labels)) != len(labels):
        return (f"--compare-port labels must be distinct and none of "
                f"{', '.join(sorted(RESERVED_NAMES))} (got {', '.join(labels)})")
    if args.clients_set and args.ps_mode == "both":
        return "--clients-set goes without --ps-mode both (run each ps-mode on its own)"
    special = args.many or args.idle_clients or getattr(args, "txn_modes", False)
    picture = (args.hop or args.compare_port or args.clients_set or args.scatter or args.ids
               or not args.point_selects)
    if special and picture:
        return ("--many, --idle-clients and --txn-modes go without --hop, --compare-port, "
                "--clients-set, --scatter, --ids and --no-point-selects")
    if not (args.point_selects or args.scatter or args.ids):
        return "--no-point-selects leaves nothing to measure: add --scatter and/or --ids"
    if args.scatter_rows <= 0 or args.ids_count <= 0 or args.sysbench_max_threads <= 0:
        return "--scatter-rows, --ids-count and --sysbench-max-threads must be positive"
    return None


def targets(config: Config, args: argparse.Namespace) -> tuple[Target, Target]:
    """The direct target (the baseline logical database's default instance and database) and
    the DAL target (the baseline logical database, or with --sharded `sbtest`)."""
    names = [name for name in config.databases if name != SHARDED_DB] or list(config.databases)
    db_name = names[0]
    db = config.databases[db_name]
    inst = config.instances[db.default_instance]
    direct = Target("direct", inst.host, inst.port, inst.user, inst.password, db.default_database)
    listen = config.server.listen
    dal = Target("dal", listen.host, args.port or listen.port, args.user, args.password,
                 SHARDED_DB if args.sharded else db_name)
    return direct, dal


def describe_layout(args: argparse.Namespace, direct: Target, dal: Target,
                    shards: list[tuple[str, list[ShardTable]]]) -> str:
    """One line saying what each target serves the query from."""
    base = f"direct {direct.database}.{TABLE} on {direct.address()}"
    if not args.sharded:
        return f"unsharded: dal {dal.database}.{TABLE} (relayed to the default instance), {base}"
    dims = ", ".join(f"{dim}: {len(tables)} shards {tables[0].database}..{tables[-1].database}"
                     for dim, tables in shards)
    return f"sharded: dal {dal.database}.{TABLE} by {SHARD_KEY} ({dims}), {base}"


# --- DAL process -------------------------------------------------------------------------------


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def dal_running(config_path: str, dal: Target) -> Iterator[bool]:
    """Make sure DAL listens on dal's address; start (and finally stop) it if nothing does.

    Yields whether it was started here.
    """
    if listening(dal.host, dal.port):
        print(f"dal bench: using the DAL already listening on {dal.address()}", file=sys.stderr)
        yield False
        return
    cmd = [sys.executable, "-m", "dal.cli", "serve", "--config", str(Path(config_path).resolve()),
           "--no-metrics", "--port", str(dal.port)]
    fd, log = tempfile.mkstemp(prefix="dal-bench-serve-", suffix=".log")
    print(f"dal bench: starting DAL on {dal.address()} (log {log})", file=sys.stderr)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(proc, dal, log)
        yield True
    finally:
        _stop(proc)
        if proc.returncode not in (0, -signal.SIGTERM):
            print(f"dal bench: DAL exited with status {proc.returncode}; its log: {log}",
                  file=sys.stderr)
        else:
            with contextlib.suppress(OSError):
                os.unlink(log)


def _wait_listening(proc: subprocess.Popen[bytes], dal: Target, log: str) -> None:
    deadline = time.monotonic() + DAL_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"DAL exited with status {proc.returncode} before listening on "
                             f"{dal.address()}:\n{_tail(log)}")
        if listening(dal.host, dal.port, timeout=0.5):
            return
        time.sleep(0.1)
    raise BenchError(f"DAL did not listen on {dal.address()} within {DAL_START_TIMEOUT:.0f} s:\n"
                     f"{_tail(log)}")


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that `finally` blocks (stopping DAL, workers) run."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- set-up ------------------------------------------------------------------------------------


def probe(target: Target, hint: str = "") -> None:
    """Log in and run the benchmark query once; BenchError if the target cannot."""
    try:
        conn = target.connect(read_timeout=QUERY_TIMEOUT)
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot reach {target.name} at {target.address()} as {target.user!r}, "
                         f"database {target.database!r}: {_describe(exc)}{hint}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(QUERY % 1)
            rows = cur.fetchall()
    except pymysql.err.Error as exc:
        raise BenchError(f"{target.name} at {target.address()} refuses the benchmark query "
                         f"{QUERY % 1!r}: {_describe(exc)}{hint}") from None
    finally:
        conn.close()
    if len(rows) != 1:
        raise BenchError(f"{target.name} at {target.address()} returns {len(rows)} rows for "
                         f"{QUERY % 1!r}, expected 1{hint}")


def _open(host: str, port: int, user: str, password: str,
          what: str) -> pymysql.connections.Connection:
    """An autocommit connection for set-up; a `BenchError` naming ``what`` if it fails."""
    try:
        return pymysql.connect(host=host, port=port, user=user, password=password,
                               autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               ssl_disabled=True)
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot reach {what}: {_describe(exc)}") from None


def setup_table(direct: Target, size: int) -> None:
    """Create trade.sbtest1 in sysbench's shape if missing; refill it when its row count differs."""
    conn = _open(direct.host, direct.port, direct.user, direct.password,
                 f"direct at {direct.address()} as {direct.user!r}")
    db = f"`{direct.database}`"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {db}.{TABLE} ("
                " id INT NOT NULL AUTO_INCREMENT,"
                " k INT NOT NULL DEFAULT '0',"
                " c CHAR(120) NOT NULL DEFAULT '',"
                " pad CHAR(60) NOT NULL DEFAULT '',"
                " PRIMARY KEY (id), KEY k_1 (k)) ENGINE=InnoDB"
            )
            cur.execute("SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema=%s AND table_name=%s", (direct.database, TABLE))
            columns = {row[0].lower() for row in cur.fetchall()}
            if not {"id", "k", "c", "pad"} <= columns:
                raise BenchError(f"{direct.database}.{TABLE} on {direct.address()} exists but "
                                 f"lacks sysbench's columns id, k, c, pad (has {sorted(columns)}); "
                                 "drop it and run again")
            cur.execute(f"SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) "
                        f"FROM {db}.{TABLE}")
            count, low, high = cur.fetchone()
            if (count, low, high) == (size, 1, size):
                return
            print(f"dal bench: filling {direct.database}.{TABLE} with {size} rows "
                  f"(it has {count})", file=sys.stderr)
            cur.execute(f"TRUNCATE TABLE {db}.{TABLE}")
            batch: list[tuple[int, int, str, str]] = []
            for row in table_rows(size):
                batch.append(row)
                if len(batch) == INSERT_BATCH:
                    _insert(cur, f"{db}.{TABLE}", batch)
                    batch = []
            if batch:
                _insert(cur, f"{db}.{TABLE}", batch)
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot set up {direct.database}.{TABLE} on {direct.address()}: "
                         f"{_describe(exc)}") from None
    finally:
        conn.close()


def table_rows(size: int) -> Iterator[tuple[int, int, str, str]]:
    """The rows (id, k, c, pad) of sbtest1 for ids 1..size; the same values on every call."""
    rnd = random.Random(1)
    for i in range(1, size + 1):
        yield i, rnd.randint(1, size), _digits(rnd, 10), _digits(rnd, 5)


def _insert(cur: pymysql.cursors.Cursor, table: str, rows: list[tuple[int, int, str, str]]) -> None:
    cur.execute(f"INSERT INTO {table} (id, k, c, pad) VALUES "
                + ",".join(["(%s,%s,%s,%s)"] * len(rows)),
                [value for row in rows for value in row])


# --- the sharded table (--sharded) --------------------------------------------------------------


def setup_sharded(config: Config, layout: list[tuple[str, list[ShardTable]]], size: int) -> None:
    """Create the shard databases and tables (`dal schema apply` for `sbtest`), then refill the
    shards whose rows differ from ids 1..size, directly on their instances."""
    apply_schema(config)
    tables = [t for _, shard_tables in layout for t in shard_tables]
    with _Connections(config) as conns:
        stale: list[ShardTable] = []
        held = 0
        for t in tables:
            cur = conns.cursor(t.instance)
            try:
                cur.execute(f"SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) "
                            f"FROM `{t.database}`.{TABLE}")
                got = tuple(cur.fetchone())
            except pymysql.err.Error as exc:
                raise BenchError(f"cannot count {t.database}.{TABLE} on instance {t.instance}: "
                                 f"{_describe(exc)}") from None
            held += got[0]
            if got != t.expected(size):
                stale.append(t)
        if not stale:
            return
        print(f"dal bench: filling {SHARDED_DB}.{TABLE} with {size} rows over {len(tables)} "
              f"shard tables ({len(stale)} differ; all together they hold {held} rows)",
              file=sys.stderr, flush=True)
        for t in stale:
            try:
                conns.cursor(t.instance).execute(f"TRUNCATE TABLE `{t.database}`.{TABLE}")
            except pymysql.err.Error as exc:
                raise BenchError(f"cannot empty {t.database}.{TABLE} on instance {t.instance}: "
                                 f"{_describe(exc)}") from None
    started = time.monotonic()
    fill_shards(config, layout, {(t.database, t.instance) for t in stale}, size)
    print(f"dal bench: filled {len(stale)} shard tables in {time.monotonic() - started:.1f} s",
          file=sys.stderr)


class _Connections:
    """One autocommit connection per instance, opened on first use, closed on exit."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.conns: dict[str, pymysql.connections.Connection] = {}

    def cursor(self, instance: str) -> pymysql.cursors.Cursor:
        conn = self.conns.get(instance)
        if conn is None:
            inst = self.config.instances[instance]
            conn = _open(inst.host, inst.port, inst.user, inst.password,
                         f"instance {instance} at {inst.host}:{inst.port}")
            self.conns[instance] = conn
        return conn.cursor()

    def __enter__(self) -> _Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns.values():
            with contextlib.suppress(Exception):
                conn.close()


def fill_shards(config: Config, layout: list[tuple[str, list[ShardTable]]],
                stale: set[tuple[str, str]], size: int) -> None:
    """Insert rows 1..size into the (database, instance) shard tables in `stale`: multi-row
    INSERTs of up to INSERT_BATCH rows, over FILL_WORKERS connections per instance."""
    work: queue.Queue[tuple[ShardTable, list[tuple[int, int, str, str]]] | None] = queue.Queue(
        maxsize=FILL_WORKERS * 4)
    failed: list[str] = []
    threads = [threading.Thread(target=_fill_worker, args=(config, work, failed), daemon=True)
               for _ in range(FILL_WORKERS)]
    for thread in threads:
        thread.start()
    try:
        _queue_rows(layout, stale, size, work, failed)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if failed:
        raise BenchError(failed[0])


def _fill_worker(config: Config, work: queue.Queue, failed: list[str]) -> None:
    """Insert the batches ``work`` holds until a None; the first failure goes to ``failed``."""
    with _Connections(config) as conns:
        while (item := work.get()) is not None:
            if failed:
                continue  # drain, so that the producer never blocks
            t, rows = item
            try:
                _insert(conns.cursor(t.instance), f"`{t.database}`.{TABLE}", rows)
            except pymysql.err.Error as exc:
                failed.append(f"cannot fill {t.database}.{TABLE} on instance {t.instance}: "
                              f"{_describe(exc)}")
            except BenchError as exc:
                failed.append(str(exc))


def _queue_rows(layout: list[tuple[str, list[ShardTable]]], stale: set[tuple[str, str]],
                size: int, work: queue.Queue, failed: list[str]) -> None:
    """Batch rows 1..size by the stale shard table each belongs to (id % shards, per
    dimension) and queue the batches."""
    fills = [[t if (t.database, t.instance) in stale else None for t in tables]
             for _, tables in layout]
    buffers: dict[ShardTable, list[tuple[int, int, str, str]]] = {}
    for row in table_rows(size):
        if failed:
            return
        for by_shard in fills:
            t = by_shard[row[0] % len(by_shard)]
            if t is None:
                continue
            buf = buffers.setdefault(t, [])
            buf.append(row)
            if len(buf) == INSERT_BATCH:
                work.put((t, buf))
                buffers[t] = []
    for t, buf in buffers.items():
        if buf and not failed:
            work.put((t, buf))


def _digits(rnd: random.Random, groups: int) -> str:
    """sysbench's c/pad values: groups of 11 random digits joined by '-'."""
    return "-".join(f"{rnd.randrange(10**11):011d}" for _ in range(groups))


# --- the benchmark -----------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, targets: list[Target],
              meter: bench_cpu.CpuMeter | None = None) -> dict[str, Any]:
    """Run the alternated rounds against every target (the first is direct, the baseline of the
    ratios); the figures as a JSON-ready dict. ``meter``: whose CPU time each round records
    (DAL, the hop, compared DALs, the servers, the load generator).

    Direct opens every round; the other targets take turns right after it (`round_order`).
    With --ps-mode both, each round runs every target in ps-mode disable and in auto (the
    order of the two swapped every other round), and the figures of each mode are under
    ``by_ps_mode``."""
    modes = PS_MODES if args.ps_mode == "both" else (args.ps_mode,)
    per_mode = {m: argparse.Namespace(**{**vars(args), "ps_mode": m}) for m in modes}
    rounds: dict[str, dict[str, list[Round]]] = {m: {t.name: [] for t in targets} for m in modes}
    latencies: dict[str, list[array[float]]] = {t.name: [] for t in targets}
    if args.warmup > 0:
        for mode in modes:
            warm(per_mode[mode], targets)
    total = len(targets) * args.rounds * len(modes)
    number = 0
    for turn in range(args.rounds):
        for mode in modes if turn % 2 == 0 else modes[::-1]:
            for target in round_order(targets, turn):
                number += 1
                before = meter.sample() if meter is not None and meter.usable else None
                result, samples = one_round(per_mode[mode], target, number)
                if before is not None:
                    result.cpu_seconds = bench_cpu.spent(before, meter.sample())  # type: ignore[union-attr]
                if samples is not None:
                    latencies[target.name].append(samples)
                rounds[mode][target.name].append(result)
                p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "-"
                label = f" ({mode})" if len(modes) > 1 else ""
                print(f"round {number}/{total}: {target.name:<6}{label} {result.queries:>9} "
                      f"queries {result.qps:>9.0f} qps  p99 {p99} ms  errors {result.errors}",
                      file=sys.stderr, flush=True)
    figures = {m: _figures(per_mode[m], targets, rounds[m],
                           latencies if not args.sysbench else None) for m in modes}
    if len(modes) == 1:
        return figures[modes[0]]
    # What both modes share; targets, rounds and ratios are per mode only.
    shared = {key: figures["disable"][key] for key in SHARED_FIGURES}
    own = {m: (figures[m].get("cpu_own_us") or {}).get("dal") for m in modes}
    return {**shared, "params": {**shared["params"], "ps_mode": "both"}, "by_ps_mode": figures,
            "ratio_auto_over_disable": _ratio(figures["auto"]["ratio"],
                                              figures["disable"]["ratio"]),
            # DAL's own CPU per COM_STMT_EXECUTE over per COM_QUERY of the same statement
            "dal_cpu_execute_over_query": _ratio(own["auto"], own["disable"])}


def round_order(targets: list[Target], turn: int) -> list[Target]:
    """The targets of round ``turn``: direct first, the others rotated by one each round.

    The position right after direct is not neutral: a target measured there used 6-8 % less
    CPU per query than the same build measured later in the round (the issue-20 A/B,
    docs/design-notes.md), so with a fixed order the first DAL would be favoured every round.
    """
    rest = targets[1:]
    if not rest:
        return targets
    shift = turn % len(rest)
    return [targets[0], *rest[shift:], *rest[:shift]]


PS_MODES = ("disable", "auto")
SHARED_FIGURES = ("mode", "dal_database", "direct_database", "query", "params")


def one_round(args: argparse.Namespace, target: Target,
              number: int) -> tuple[Round, array[float] | None]:
    """One round against one target with the load generator ``args`` names (sysbench, the
    asyncio generator of --clients-set, or the built-in one); the last two also return their
    latency samples."""
    if args.sysbench:
        return sysbench_round(args, target, number), None
    if getattr(args, "generator", None) == "asyncio":
        from tools import bench_async

        return builtin_round(args, target, number, worker=bench_async.worker,
                             ready_timeout=bench_async.ready_timeout(args.clients))
    return builtin_round(args, target, number)


def _figures(args: argparse.Namespace, targets: list[Target], rounds: dict[str, list[Round]],
             latencies: dict[str, list[array[float]]] | None) -> dict[str, Any]:
    """The figures of one ps-mode's rounds as a JSON-ready dict: per target, and per target
    other than direct (the first) its ratios to direct."""
    summaries = {t.name: summarize(t, rounds[t.name], latencies[t.name] if latencies else None)
                 for t in targets}
    d = summaries[targets[0].name]
    ratios = {t.name: {"qps": _ratio(summaries[t.name].qps, d.qps),
                       "qps_median": _ratio(summaries[t.name].qps_median, d.qps_median),
                       "p99": _ratio(summaries[t.name].p99_ms, d.p99_ms)} for t in targets[1:]}
    # Each proxy's own CPU per query in its own rounds (its group is named after the target).
    own = {name: s.cpu_us[name] for name, s in summaries.items() if name in s.cpu_us}
    generator = getattr(args, "generator", None) or ("sysbench" if args.sysbench else "builtin")
    dal = next(t for t in targets if t.name == "dal")
    return {
        "mode": generator,
        "dal_database": dal.database,
        "direct_database": targets[0].database,
        "query": QUERY.replace("%d", "?"),
        "params": {
            "duration": args.duration, "rounds": args.rounds, "warmup": args.warmup,
            "table_size": args.table_size,
            **({"threads": args.threads, "ps_mode": args.ps_mode,
                "rate": getattr(args, "rate", None),
                "workload": getattr(args, "workload", "oltp_point_select"),
                "transactions": getattr(args, "transactions", False)} if args.sysbench
               else {"clients": args.clients, "procs": args.procs}),
        },
        "targets": {name: asdict(s) for name, s in summaries.items()},
        "rounds": [asdict(r) for r in sorted((r for rs in rounds.values() for r in rs),
                                             key=lambda r: r.number)],
        "ratios": ratios,
        "ratio": ratios["dal"]["qps"],
        "ratio_median": ratios["dal"]["qps_median"],
        "ratio_p99": ratios["dal"]["p99"],
        "cpu_own_us": own,
        "cpu_ratio_to_hop": ({name: _ratio(us, own["hop"]) for name, us in own.items()}
                             if own.get("hop") else {}),
    }


def warm(args: argparse.Namespace, targets: list[Target]) -> None:
    """One uncounted round of --warmup seconds per target, so that no measured round pays for
    cold caches."""
    short = argparse.Namespace(**{**vars(args), "duration": args.warmup})
    for target in targets:
        result, _ = one_round(short, target, 0)
        print(f"warm-up: {target.name:<6} {result.queries:>9} queries {result.qps:>9.0f} qps "
              "(not counted)", file=sys.stderr, flush=True)


def summarize(target: Target, rounds: list[Round], latencies: list[array[float]] | None) -> Summary:
    """Combine a target's rounds: qps over the total time; latencies merged (or round medians)."""
    queries = sum(r.queries for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    errors = sum(r.errors for r in rounds)
    samples = [s for r in rounds for s in r.error_samples]
    cpu = {name: sum(r.cpu_seconds[name] for r in rounds)
           for name in rounds[0].cpu_seconds} if rounds and all(r.cpu_seconds for r in rounds) \
        else {}
    if latencies is not None:
        merged = sorted(v for part in latencies for v in part)
        avg = statistics.fmean(merged) * 1000 if merged else None
        p50 = _percentile(merged, 50)
        p99 = _percentile(merged, 99)
    else:
        timed = [(r.avg_ms, r.queries) for r in rounds if r.avg_ms is not None]
        weight = sum(n for _, n in timed)
        avg = sum(ms * n for ms, n in timed) / weight if weight else None
        p50 = None
        p99s = [r.p99_ms for r in rounds if r.p99_ms is not None]
        p99 = statistics.median(p99s) if p99s else None
    return Summary(
        target=target.name, address=target.address(), rounds=len(rounds), queries=queries,
        seconds=round(seconds, 3), qps=round(queries / seconds, 1) if seconds else 0.0,
        qps_median=round(statistics.median(r.qps for r in rounds), 1) if rounds else 0.0,
        avg_ms=_ms(avg), p50_ms=_ms(p50), p99_ms=_ms(p99), errors=errors,
        error_samples=list(dict.fromkeys(samples))[:MAX_ERROR_SAMPLES],
        cpu_us=bench_cpu.per_query(cpu, queries),
    )


# --- built-in generator ------------------------------------------------------------------------


def builtin_round(args: argparse.Namespace, target: Target, number: int,
                  worker: Callable[..., None] | None = None,
                  ready_timeout: float = READY_TIMEOUT) -> tuple[Round, array[float]]:
    """One bounded round of the built-in generator: --clients connections over --procs processes.
    ``worker``: the function each process runs (`_worker`, or tools/bench_async.py's, which
    speaks the same messages)."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    results: mp.Queue[dict[str, Any]] = ctx.Queue()
    start = ctx.Event()
    per_proc = [args.clients // args.procs + (i < args.clients % args.procs)
                for i in range(args.procs)]
    cap = max(1, args.max_queries // args.clients)
    procs = [ctx.Process(target=worker or _worker, daemon=True,
                         args=(target, n, args.table_size, args.duration, cap, start, results))
             for n in per_proc]
    out = Round(number=number, target=target.name)
    samples: array[float] = array("d")
    try:
        for proc in procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + ready_timeout
        while ready < len(procs):
            msg = _get(results, deadline)
            if msg is None:
                raise BenchError(f"round {number}: the {target.name} clients did not connect to "
                                 f"{target.address()} within {ready_timeout:.0f} s")
            if msg["kind"] == "failed":
                raise BenchError(f"round {number}: cannot connect to {target.name} at "
                                 f"{target.address()}: {msg['error']}")
            ready += 1
        start.set()
        # Every query has a timeout of QUERY_TIMEOUT, so a worker ends by then at the latest.
        deadline = time.monotonic() + args.duration + QUERY_TIMEOUT + CONNECT_TIMEOUT + 10
        elapsed = []
        for _ in procs:
            msg = _get(results, deadline)
            if msg is None:
                raise BenchError(f"round {number}: the {target.name} clients did not finish "
                                 f"(a query hung for longer than {QUERY_TIMEOUT} s?)")
            out.queries += msg["queries"]
            out.errors += msg["errors"]
            out.error_samples.extend(msg["error_samples"])
            elapsed.append(msg["seconds"])
            samples.extend(msg["latencies"])
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    out.seconds = round(max(elapsed), 3)
    out.qps = round(out.queries / out.seconds, 1) if out.seconds else 0.0
    ordered = sorted(samples)
    out.avg_ms = _ms(statistics.fmean(ordered) * 1000) if ordered else None
    out.p50_ms = _ms(_percentile(ordered, 50))
    out.p99_ms = _ms(_percentile(ordered, 99))
    out.error_samples = list(dict.fromkeys(out.error_samples))[:MAX_ERROR_SAMPLES]
    return out, samples


def _get(results: mp.Queue[dict[str, Any]], deadline: float) -> dict[str, Any] | None:
    try:
        return results.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        return None


def _worker(target: Target, clients: int, table_size: int, duration: float, cap: int,
            start: Any, results: Any) -> None:
    """A worker process: open `clients` connections, wait for `start`, query for `duration` s."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        conns = [target.connect(read_timeout=QUERY_TIMEOUT, write_timeout=QUERY_TIMEOUT)
                 for _ in range(clients)]
    except pymysql.err.Error as exc:
        results.put({"kind": "failed", "error": _describe(exc)})
        return
    results.put({"kind": "ready"})
    start.wait()
    t0 = time.perf_counter()
    deadline = t0 + duration
    stats = [_ClientStats() for _ in conns]
    threads = [threading.Thread(target=_client, args=(target, conn, table_size, deadline, cap, s),
                                daemon=True) for conn, s in zip(conns, stats, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    latencies: array[float] = array("d")
    for s in stats:
        latencies.extend(s.latencies)
    if len(latencies) > SAMPLES_PER_PROC:
        latencies = latencies[:: len(latencies) // SAMPLES_PER_PROC + 1]
    results.put({
        "kind": "done", "queries": sum(s.queries for s in stats),
        "errors": sum(s.errors for s in stats), "seconds": seconds, "latencies": latencies,
        "error_samples": [m for s in stats for m in s.error_samples],
    })


@dataclass
class _ClientStats:
    queries: int = 0
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    error_samples: list[str] = field(default_factory=list)


def _client(target: Target, conn: pymysql.connections.Connection | None, table_size: int,
            deadline: float, cap: int, stats: _ClientStats) -> None:
    """One connection's loop: random point selects until the deadline or `cap` queries."""
    rnd = random.Random()
    clock = time.perf_counter
    append = stats.latencies.append
    while stats.queries + stats.errors < cap:
        if conn is None:
            try:
                conn = target.connect(read_timeout=QUERY_TIMEOUT, write_timeout=QUERY_TIMEOUT)
            except pymysql.err.Error as exc:
                stats.errors += 1
                _note(stats, f"connect: {_describe(exc)}")
                time.sleep(0.1)
                if clock() >= deadline:
                    break
                continue
        sql = QUERY % (int(rnd.random() * table_size) + 1)
        t = clock()
        if t >= deadline:
            break
        try:
            conn.query(sql)
        except (pymysql.err.Error, OSError) as exc:
            stats.errors += 1
            _note(stats, f"{sql}: {_describe(exc)}")
            if not conn.open or isinstance(exc, pymysql.err.OperationalError):
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
            continue
        append(clock() - t)
        stats.queries += 1
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _note(stats: _ClientStats, message: str) -> None:
    if len(stats.error_samples) < MAX_ERROR_SAMPLES and message not in stats.error_samples:
        stats.error_samples.append(message)


# --- sysbench ----------------------------------------------------------------------------------


# sysbench tests and their extra options. oltp_read_write: its transactions span shards, which
# transaction mode 'single' refuses, so by default it runs without them (--transactions keeps
# them, for mode xa); without them its DELETE+INSERT of one id races with another thread doing
# the same (1062, on the direct target too), so those are left out.
SYSBENCH_WORKLOADS = {"oltp_point_select": [],
                      "oltp_read_write": ["--skip_trx=on", "--delete_inserts=0"]}


def sysbench_command(args: argparse.Namespace, target: Target) -> list[str]:
    """The sysbench command line (--workload, oltp_point_select by default) for one target."""
    workload = getattr(args, "workload", "oltp_point_select")
    options = SYSBENCH_WORKLOADS[workload]
    if getattr(args, "transactions", False):
        options = []  # the workload as sysbench means it, BEGIN ... COMMIT included
    return [
        "sysbench", workload, *options, "--db-driver=mysql",
        f"--mysql-host={target.host}", f"--mysql-port={target.port}",
        f"--mysql-user={target.user}", f"--mysql-password={target.password}",
        f"--mysql-db={target.database}", f"--tables={target.tables}",
        f"--table-size={target.table_size or args.table_size}",
        f"--threads={args.threads}", f"--time={_whole(args.duration)}", "--report-interval=0",
        "--percentile=99", f"--db-ps-mode={args.ps_mode}", "--mysql-ssl=off",
        *([f"--rate={args.rate}"] if getattr(args, "rate", None) else []), "run",
    ]


def _whole(seconds: float) -> int:
    return max(1, round(seconds))


def sysbench_round(args: argparse.Namespace, target: Target, number: int) -> Round:
    """One sysbench run against one target, parsed into a Round."""
    cmd = sysbench_command(args, target)
    timeout = _whole(args.duration) + 60
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BenchError(f"round {number}: sysbench against {target.name} at {target.address()} "
                         f"did not finish within {timeout} s") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise BenchError(f"round {number}: sysbench against {target.name} at {target.address()} "
                         f"failed (status {proc.returncode}):\n{tail}")
    try:
        return parse_sysbench(output, number, target.name)
    except ValueError as exc:
        raise BenchError(f"round {number}: cannot read sysbench's output ({exc}):\n"
                         f"{output[-2000:]}") from None


def parse_sysbench(output: str, number: int, target: str) -> Round:
    """Read queries, qps, errors and latency (avg, percentile) from sysbench's final report."""
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no match for {pattern!r}")
        return match

    queries = find(r"^\s*queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)")
    errors = find(r"^\s*ignored errors:\s+(\d+)")
    total = find(r"^\s*total time:\s+([\d.]+)s")
    avg = find(r"^\s*avg:\s+([\d.]+)")
    pct = find(r"^\s*\d+th percentile:\s+([\d.]+)")
    return Round(
        number=number, target=target, queries=int(queries[1]), seconds=float(total[1]),
        qps=float(queries[2]), avg_ms=float(avg[1]), p99_ms=float(pct[1]), errors=int(errors[1]),
    )


# --- many clients (tools/loadgen.py) -----------------------------------------------------------

MANY_USER_BASE = 800_000  # the user ids --many writes (their orders are reset before each round)


def run_many(args: argparse.Namespace, config: Config, dal: Target) -> int:
    """--many: the same client count against direct shards and DAL, rounds alternated."""
    import resource

    from tools import loadgen

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.many * 2 + 200:
        print(f"dal bench: --many {args.many} needs about {args.many * 2 + 200} file "
              f"descriptors; the limit is {hard}", file=sys.stderr)
        return 2
    database = next(name for name in config.databases if name != SHARDED_DB)
    users = [MANY_USER_BASE + i for i in range(args.many)]
    routes = {"direct": loadgen.direct_route(config, database),
              "dal": loadgen.dal_route(dal.host, dal.port, dal.user, dal.password, database)}
    figures: dict[str, dict[str, float]] = {
        name: {"statements": 0, "transactions": 0, "seconds": 0.0, "errors": 0, "wrong": 0}
        for name in routes}
    samples: list[str] = []
    with _sigterm_as_exit(), dal_running(args.config, dal):
        for number in range(1, 2 * args.rounds + 1):
            name = "direct" if number % 2 else "dal"
            loadgen.prepare(config, users, database)
            result = loadgen.run_blocking(users, routes[name], args.duration)
            problems = loadgen.verify(config, result.expected, database)
            f = figures[name]
            for key in ("statements", "transactions", "errors", "wrong"):
                f[key] += getattr(result, key)
            f["wrong"] += len(problems)
            f["seconds"] += result.seconds
            samples += [f"{name}: {m}" for m in result.samples + problems][:MAX_ERROR_SAMPLES]
            print(f"round {number}/{2 * args.rounds}: {name:<6} {result.connected} clients "
                  f"connected in {result.connect_seconds:.1f} s, "
                  f"{result.statements_per_second:>8.0f} statements/s, "
                  f"{result.transactions / result.seconds:>7.0f} transactions/s, "
                  f"errors {result.errors}, wrong {result.wrong + len(problems)}",
                  file=sys.stderr, flush=True)
    for f in figures.values():
        f["statements_per_second"] = round(f["statements"] / f["seconds"], 1)
        f["transactions_per_second"] = round(f["transactions"] / f["seconds"], 1)
    ratio = _ratio(figures["dal"]["statements_per_second"],
                   figures["direct"]["statements_per_second"])
    print(f"many clients: {args.many} clients, {args.rounds} x {args.duration:g} s per target, "
          f"point reads + single-shard transactions on {database}.orders")
    for name, f in figures.items():
        print(f"{name:<7} {f['statements_per_second']:>9.0f} statements/s "
              f"{f['transactions_per_second']:>8.0f} transactions/s  errors {f['errors']:.0f}  "
              f"wrong answers {f['wrong']:.0f}")
    print(f"ratio dal/direct: statements/s {ratio:.2f}")
    for line in samples[:MAX_ERROR_SAMPLES]:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"mode": "many", "clients": args.many, "targets": figures, "ratio": ratio,
             "samples": samples}, indent=2) + "\n")
    return 1 if any(f["errors"] or f["wrong"] for f in figures.values()) else 0


# --- idle clients (tools/bench_idle.py) --------------------------------------------------------


def run_idle(args: argparse.Namespace, config: Config, dal: Target) -> int:
    """--idle-clients: DAL's memory per idle client and the time to connect them."""
    from tools import bench_idle

    if args.tls and config.server.tls is None:
        print(f"dal bench: --tls needs server.tls in {args.config} (`dal certs` makes a pair)",
              file=sys.stderr)
        return 2
    try:
        bench_idle.raise_fd_limit(args.idle_clients + bench_idle.WARMUP + 200)
    except ValueError as exc:
        print(f"dal bench: --idle-clients {args.idle_clients}: {exc}", file=sys.stderr)
        return 2
    with _sigterm_as_exit(), dal_running(args.config, dal):
        pids = bench_cpu.listening_pids({dal.port})
        if len(pids) != 1:
            print(f"dal bench: --idle-clients needs the one DAL process listening on "
                  f"{dal.address()}; found {len(pids)} (server.workers must be 1)",
                  file=sys.stderr)
            return 1
        try:
            figures = bench_idle.run_idle(pids.pop(), dal.host, dal.port, dal.user,
                                          dal.password, args.idle_clients, args.tls,
                                          args.idle_hold)
        except (bench_idle.BackendError, OSError) as exc:
            print(f"dal bench: idle clients: {exc}", file=sys.stderr)
            return 1
    print(figures.describe())
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"mode": "idle", "clients": figures.clients, "tls": figures.tls,
             "connect_seconds": round(figures.connect_seconds, 3),
             "rss_before_kib": figures.rss_before_kib, "rss_after_kib": figures.rss_after_kib,
             "kib_per_client": round(figures.kib_per_client, 2),
             "dal_cpu_seconds": round(figures.dal_cpu_seconds, 3),
             "held_seconds": figures.held_seconds, "rss_held_kib": figures.rss_held_kib,
             "errors": figures.errors}, indent=2) + "\n")
    return 1 if figures.errors else 0
