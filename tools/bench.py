"""Benchmark DAL against a direct connection to its default backend, side by side in one run.

What it measures: point selects `SELECT c FROM sbtest1 WHERE id=?` (random ids, text protocol)
on the unsharded table `trade.sbtest1`, which DAL relays to the default instance of the first
logical database. The same query runs on two targets:

  direct  the default backend instance itself (config `instances`, its default database)
  dal     DAL's listen address (config `server.listen`, or --port), user app/app, database trade

Rounds alternate direct, dal, direct, dal ... (--rounds per target), so that drift of the
machine (caches, other load) hits both targets alike. The table is created through the direct
connection if missing and refilled to --table-size rows when its row count differs. If nothing
listens on DAL's address, `dal serve --no-metrics` is started for the run and stopped after it.

Load generators:
  (default)   a built-in generator: --clients pymysql connections over --procs processes.
              The client is Python too, so on a small machine it takes CPU from both servers and
              the ratio comes out closer to 1 than the real cost of the hop.
  --sysbench  sysbench oltp_point_select with --threads threads (the DESIGN.md budget figures).

Reading the report: per target, the queries, qps (all rounds together: total queries / total
seconds), avg/p50/p99 latency in ms and errors. `ratio qps` = dal qps / direct qps: 1.00 means
DAL costs nothing, 0.50 means DAL serves half the direct throughput. For reference (DESIGN.md,
sysbench, 32 threads): a plain TCP hop (HAProxy) is 0.64-0.70, DAL's target for unsharded
tables is >= 0.45 first, then >= 0.60. `ratio p99` = dal p99 / direct p99 (above 1: slower).
In sysbench mode the p99 of a target is the median of its rounds' p99s.

Progress goes to stderr, one line per round; the report to stdout (a table on a terminal, plain
aligned text otherwise); --json FILE writes the figures. Exit status: 0 done, 1 a target is
unreachable or a round failed, 2 bad config or arguments.
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from config.loader import ConfigError, load_config
from config.model import Config

TABLE = "sbtest1"
QUERY = "SELECT c FROM sbtest1 WHERE id=%d"
DAL_START_TIMEOUT = 20.0
CONNECT_TIMEOUT = 5.0
QUERY_TIMEOUT = 10  # seconds a single query may take before it counts as an error
READY_TIMEOUT = 30.0  # seconds for the worker processes to open their connections
SAMPLES_PER_PROC = 500_000  # latency samples kept per worker process and round
INSERT_BATCH = 1000
MAX_ERROR_SAMPLES = 5


class BenchError(Exception):
    """A target is unreachable, a round failed or the setup did not work. The message says why."""


@dataclass(frozen=True)
class Target:
    """Where one side of the comparison connects."""

    name: str
    host: str
    port: int
    user: str
    password: str
    database: str

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, **extra: Any) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=self.database, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **extra,
        )


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="DAL's port (default: the config's listen port)")
    parser.add_argument("--user", default="app", help="DAL user (default: %(default)s)")
    parser.add_argument("--password", default="app", help="DAL password (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per target, alternating direct and dal (default: %(default)s)")
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
    parser.add_argument("--threads", type=int, default=32,
                        help="sysbench threads (default: %(default)s)")
    parser.add_argument("--ps-mode", choices=["disable", "auto"], default="disable",
                        help="sysbench --db-ps-mode (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dal bench: {exc}", file=sys.stderr)
        return 2
    problem = _check_args(args)
    if problem:
        print(f"dal bench: {problem}", file=sys.stderr)
        return 2
    if args.sysbench and shutil.which("sysbench") is None:
        print("dal bench: --sysbench needs the `sysbench` program, which is not on PATH "
              "(apt-get install sysbench), or leave out --sysbench for the built-in generator",
              file=sys.stderr)
        return 1
    direct, dal = targets(config, args)
    try:
        with _sigterm_as_exit():
            setup_table(direct, args.table_size)
            probe(direct)
            with dal_running(args.config, dal) as started:
                probe(dal)
                result = benchmark(args, direct, dal)
                result["dal_started"] = started
    except BenchError as exc:
        print(f"dal bench: {exc}", file=sys.stderr)
        return 1
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    errors = sum(t["errors"] for t in result["targets"].values())
    if errors:
        print(f"dal bench: {errors} queries failed (see the error samples in the report)",
              file=sys.stderr)
        return 1
    return 0


def _check_args(args: argparse.Namespace) -> str | None:
    for name in ("duration", "rounds", "table_size", "clients", "procs", "threads", "max_queries"):
        if getattr(args, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive"
    if args.procs > args.clients:
        return "--procs must not exceed --clients"
    return None


def targets(config: Config, args: argparse.Namespace) -> tuple[Target, Target]:
    """The direct target (first logical database's default instance) and the DAL target."""
    db_name, db = next(iter(config.databases.items()))
    inst = config.instances[db.default_instance]
    direct = Target("direct", inst.host, inst.port, inst.user, inst.password, db.default_database)
    listen = config.server.listen
    dal = Target("dal", listen.host, args.port or listen.port, args.user, args.password, db_name)
    return direct, dal


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


def probe(target: Target) -> None:
    """Log in and run the benchmark query once; BenchError if the target cannot."""
    try:
        conn = target.connect(read_timeout=QUERY_TIMEOUT)
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot reach {target.name} at {target.address()} as {target.user!r}, "
                         f"database {target.database!r}: {_describe(exc)}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(QUERY % 1)
            cur.fetchall()
    except pymysql.err.Error as exc:
        raise BenchError(f"{target.name} at {target.address()} refuses the benchmark query "
                         f"{QUERY % 1!r}: {_describe(exc)}") from None
    finally:
        conn.close()


def setup_table(direct: Target, size: int) -> None:
    """Create trade.sbtest1 in sysbench's shape if missing; refill it when its row count differs."""
    try:
        conn = pymysql.connect(host=direct.host, port=direct.port, user=direct.user,
                               password=direct.password, autocommit=True,
                               connect_timeout=CONNECT_TIMEOUT)
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot reach direct at {direct.address()} as {direct.user!r}: "
                         f"{_describe(exc)}") from None
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
            rnd = random.Random(1)
            for start in range(1, size + 1, INSERT_BATCH):
                stop = min(start + INSERT_BATCH, size + 1)
                rows = [(i, rnd.randint(1, size), _digits(rnd, 10), _digits(rnd, 5))
                        for i in range(start, stop)]
                cur.execute(f"INSERT INTO {db}.{TABLE} (id, k, c, pad) VALUES "
                            + ",".join(["(%s,%s,%s,%s)"] * len(rows)),
                            [value for row in rows for value in row])
    except pymysql.err.Error as exc:
        raise BenchError(f"cannot set up {direct.database}.{TABLE} on {direct.address()}: "
                         f"{_describe(exc)}") from None
    finally:
        conn.close()


def _digits(rnd: random.Random, groups: int) -> str:
    """sysbench's c/pad values: groups of 11 random digits joined by '-'."""
    return "-".join(f"{rnd.randrange(10**11):011d}" for _ in range(groups))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.Error) and len(exc.args) == 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}"


# --- the benchmark -----------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, direct: Target, dal: Target) -> dict[str, Any]:
    """Run the alternated rounds against both targets; the figures as a JSON-ready dict."""
    order = [direct, dal] * args.rounds
    rounds: dict[str, list[Round]] = {"direct": [], "dal": []}
    latencies: dict[str, list[array[float]]] = {"direct": [], "dal": []}
    for number, target in enumerate(order, 1):
        if args.sysbench:
            result = sysbench_round(args, target, number)
        else:
            result, samples = builtin_round(args, target, number)
            latencies[target.name].append(samples)
        rounds[target.name].append(result)
        p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "-"
        print(f"round {number}/{len(order)}: {target.name:<6} {result.queries:>9} queries "
              f"{result.qps:>9.0f} qps  p99 {p99} ms  errors {result.errors}",
              file=sys.stderr, flush=True)
    summaries = {
        t.name: summarize(t, rounds[t.name], latencies[t.name] if not args.sysbench else None)
        for t in (direct, dal)
    }
    d, x = summaries["direct"], summaries["dal"]
    return {
        "mode": "sysbench" if args.sysbench else "builtin",
        "query": QUERY.replace("%d", "?"),
        "params": {
            "duration": args.duration, "rounds": args.rounds, "table_size": args.table_size,
            **({"threads": args.threads, "ps_mode": args.ps_mode} if args.sysbench
               else {"clients": args.clients, "procs": args.procs}),
        },
        "targets": {name: asdict(s) for name, s in summaries.items()},
        "rounds": [asdict(r) for r in sorted(rounds["direct"] + rounds["dal"],
                                             key=lambda r: r.number)],
        "ratio": _ratio(x.qps, d.qps),
        "ratio_median": _ratio(x.qps_median, d.qps_median),
        "ratio_p99": _ratio(x.p99_ms, d.p99_ms),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def summarize(target: Target, rounds: list[Round], latencies: list[array[float]] | None) -> Summary:
    """Combine a target's rounds: qps over the total time; latencies merged (or round medians)."""
    queries = sum(r.queries for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    errors = sum(r.errors for r in rounds)
    samples = [s for r in rounds for s in r.error_samples]
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
    )


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index] * 1000


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


# --- built-in generator ------------------------------------------------------------------------


def builtin_round(args: argparse.Namespace, target: Target,
                  number: int) -> tuple[Round, array[float]]:
    """One bounded round of the built-in generator: --clients connections over --procs processes."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    results: mp.Queue[dict[str, Any]] = ctx.Queue()
    start = ctx.Event()
    per_proc = [args.clients // args.procs + (i < args.clients % args.procs)
                for i in range(args.procs)]
    cap = max(1, args.max_queries // args.clients)
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(target, n, args.table_size, args.duration, cap, start, results))
             for n in per_proc]
    out = Round(number=number, target=target.name)
    samples: array[float] = array("d")
    try:
        for proc in procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT
        while ready < len(procs):
            msg = _get(results, deadline)
            if msg is None:
                raise BenchError(f"round {number}: the {target.name} clients did not connect to "
                                 f"{target.address()} within {READY_TIMEOUT:.0f} s")
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


def sysbench_command(args: argparse.Namespace, target: Target) -> list[str]:
    """The sysbench oltp_point_select command line against one target."""
    return [
        "sysbench", "oltp_point_select", "--db-driver=mysql",
        f"--mysql-host={target.host}", f"--mysql-port={target.port}",
        f"--mysql-user={target.user}", f"--mysql-password={target.password}",
        f"--mysql-db={target.database}", "--tables=1", f"--table-size={args.table_size}",
        f"--threads={args.threads}", f"--time={_whole(args.duration)}", "--report-interval=0",
        "--percentile=99", f"--db-ps-mode={args.ps_mode}", "--mysql-ssl=off", "run",
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


# --- report ------------------------------------------------------------------------------------

COLUMNS = ("target", "address", "rounds", "queries", "qps", "avg ms", "p50 ms", "p99 ms", "errors")


def _rows(result: dict[str, Any]) -> list[list[str]]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = []
    for s in result["targets"].values():
        rows.append([s["target"], s["address"], str(s["rounds"]), str(s["queries"]),
                     num(s["qps"], ".0f"), num(s["avg_ms"], ".3f"), num(s["p50_ms"], ".3f"),
                     num(s["p99_ms"], ".3f"), str(s["errors"])])
    return rows


def _ratio_line(result: dict[str, Any]) -> str:
    def r(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return (f"ratio dal/direct: qps {r(result['ratio'])} (median of rounds "
            f"{r(result['ratio_median'])}), p99 {r(result['ratio_p99'])}")


def report(result: dict[str, Any]) -> None:
    """Print the figures: a rich table on a terminal, plain aligned text otherwise."""
    params = result["params"]
    load = (f"sysbench oltp_point_select, {params['threads']} threads, ps-mode "
            f"{params['ps_mode']}" if result["mode"] == "sysbench"
            else f"built-in, {params['clients']} clients over {params['procs']} process(es)")
    title = (f"{result['query']}  ({load}; {params['rounds']} x {params['duration']:g} s "
             f"per target, {params['table_size']} rows)")
    rows = _rows(result)
    errors = [f"{s['target']}: {m}" for s in result["targets"].values() for m in s["error_samples"]]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for i, name in enumerate(COLUMNS):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        console = Console()
        console.print(table)
        console.print(_ratio_line(result), style="bold")
        for line in errors:
            console.print(line, style="red", markup=False)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]

    def fmt(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(title)
    print(fmt(COLUMNS))
    for row in rows:
        print(fmt(row))
    print(_ratio_line(result))
    for line in errors:
        print(line)
