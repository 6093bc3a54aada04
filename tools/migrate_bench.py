"""The figures of a live migration (`dal migrate bench`), against a running DAL.

  make run CONFIG=config/migrate-demo.yaml            (another terminal)
  dal migrate bench --config config/migrate-demo.yaml [--rows 200000] [--seconds 10]

Refills the demo (`dal migrate demo --reset --force`), then walks the phases one step at a
time with `dal migrate phase`, and measures:

- the latency a client sees for a write (an UPDATE of an old order by id, an INSERT of a new
  one, alternately) in each phase: --clients connections through DAL for --seconds each,
  p50/p99/max and writes per second, and p50/p99 against phase legacy;
- with --transactions, the same again with each write inside a client transaction (BEGIN,
  the write, COMMIT, timed together), against phase legacy's transactions;
- the backfill's rows per second on the demo set into empty shards, once without other load
  and once while the same clients write through DAL.

Ends in phase sharded. Prints a Markdown table (and --json FILE writes the numbers). Load:
--clients connections (default 4) on the machine that runs DAL and the backends.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pymysql

from config.loader import load_config
from config.model import Config
from dal.migration.switch import SwitchError, switch
from tools.migrate import SUBCOMMANDS, Subcommand
from tools.migrate_backfill import Backfill
from tools.migrate_demo import demo, empty_copies
from tools.migrate_layout import Layout, migrated_database

TXN = ", in transactions"  # the name suffix of a phase's figures with --transactions


class Writers:
    """--clients threads writing through DAL until stopped; latencies in seconds."""

    def __init__(self, config: Config, args: argparse.Namespace, db: str, max_id: int) -> None:
        listen = config.server.listen
        self.connect = dict(host=args.host or listen.host, port=args.port or listen.port,
                            user=args.user, password=args.password, database=db,
                            autocommit=True)
        self.clients, self.max_id = args.clients, max_id
        self.transactions = False  # each write as BEGIN; write; COMMIT
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.failure: Exception | None = None
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Writers:
        self.stop.clear()
        self.latencies, self.errors = [], 0
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(self.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        if self.failure is not None:
            raise ValueError(f"cannot write through DAL: {self.failure}")

    def _run(self, number: int) -> None:
        rng = random.Random(number)
        try:
            conn = pymysql.connect(**self.connect)
        except pymysql.err.MySQLError as exc:
            self.failure = exc
            return
        mine: list[float] = []
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    start = time.perf_counter()
                    try:
                        if self.transactions:
                            cur.execute("BEGIN")
                        self._write(cur, rng, len(mine))
                        if self.transactions:
                            cur.execute("COMMIT")
                    except pymysql.err.MySQLError:
                        if self.transactions:
                            conn.rollback()
                        self.errors += 1
                        continue
                    mine.append(time.perf_counter() - start)
        finally:
            conn.close()
            self.latencies += mine

    def _write(self, cur, rng: random.Random, n: int) -> None:
        if n % 2:
            cur.execute("UPDATE orders SET note = %s, updated_at = NOW(6) WHERE id = %s",
                        (f"bench {n}", rng.randrange(1, self.max_id + 1)))
        else:
            user, merchant = rng.randrange(1, 50_000_000), rng.randrange(1, 500_000)
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, %s, 0, %s, 'bench', NOW(6), "
                        "NOW(6))", (user, merchant, Decimal(rng.randrange(100, 99999)) / 100))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def _backfill(layout: Layout) -> float:
    """One whole backfill (rows per second over its run)."""
    args = argparse.Namespace(chunk=1000, rows_per_second=0, max_latency_ms=1000.0,
                              max_sync_lag=60.0, restart=True, metrics_port=None,
                              metrics_host="127.0.0.1", no_progress=True)
    run = Backfill(layout, args, lambda line: None)
    start = time.monotonic()
    try:
        run.run()
    finally:
        run.close()
    return run.copied / (time.monotonic() - start)


def bench(config: Config, args: argparse.Namespace) -> dict:
    """Run the whole walk; the figures."""
    db = migrated_database(config, args.db)
    layout = Layout(config, db)
    figures: dict = {"rows": args.rows, "clients": args.clients, "seconds": args.seconds,
                     "phases": {}, "backfill": {}}
    try:
        demo(layout, argparse.Namespace(rows=args.rows, seed=1, reset=True, force=True,
                                        no_progress=True))
        writers = Writers(config, args, db, args.rows)

        def measure(phase: str) -> None:
            for transactions in (False, True) if args.transactions else (False,):
                writers.transactions = transactions
                with writers:
                    time.sleep(args.seconds)
                writers.transactions = False
                lat = writers.latencies
                name = f"{phase}{TXN if transactions else ''}"
                figures["phases"][name] = {
                    "writes": len(lat), "errors": writers.errors,
                    "per_second": len(lat) / args.seconds,
                    "p50_ms": _percentile(lat, 0.5) * 1000,
                    "p99_ms": _percentile(lat, 0.99) * 1000, "max_ms": max(lat, default=0) * 1000}
                print(f"{name}: {figures['phases'][name]}", file=sys.stderr, flush=True)

        measure("legacy")
        switch(config, db, "dual_legacy", 60)
        measure("dual_legacy")
        empty_copies(layout)  # both runs copy into empty shards
        figures["backfill"]["idle"] = _backfill(layout)
        empty_copies(layout)
        with writers:
            figures["backfill"]["loaded"] = _backfill(layout)
        print(f"backfill: {figures['backfill']}", file=sys.stderr, flush=True)
        for phase in ("shadow", "dual_sharded", "sharded"):
            switch(config, db, phase, 60)
            measure(phase)
    finally:
        layout.close()
    return figures


def table(figures: dict) -> str:
    """The figures as Markdown (a phase in transactions against legacy in transactions)."""
    phases = figures["phases"]
    lines = [f"Demo set: {figures['rows']} orders; {figures['clients']} clients writing through "
             f"DAL for {figures['seconds']} s per phase.", "",
             "| phase | writes/s | p50 ms | p99 ms | max ms | p50 vs legacy | p99 vs legacy |",
             "|---|---|---|---|---|---|---|"]
    for phase, f in phases.items():
        base = phases["legacy" + (TXN if phase.endswith(TXN) else "")]
        lines.append(f"| {phase} | {f['per_second']:.0f} | {f['p50_ms']:.2f} | "
                     f"{f['p99_ms']:.2f} | {f['max_ms']:.1f} | "
                     f"{f['p50_ms'] / base['p50_ms']:.2f}x | {f['p99_ms'] / base['p99_ms']:.2f}x |")
    bf = figures["backfill"]
    lines += ["", "| backfill | rows/s |", "|---|---|",
              f"| no other load | {bf['idle']:.0f} |",
              f"| {figures['clients']} clients writing | {bf['loaded']:.0f} |"]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    parser.add_argument("--db", help="the logical database (default: the one with a migration)")
    parser.add_argument("--rows", type=int, default=200_000, help="demo orders (default: "
                        "%(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="writing connections "
                        "(default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="of writes per phase "
                        "(default: %(default)s)")
    parser.add_argument("--transactions", action="store_true", help="also measure each "
                        "phase with every write inside BEGIN ... COMMIT")
    parser.add_argument("--host", help="DAL's address (default: server.listen)")
    parser.add_argument("--port", type=int, help="DAL's port (default: server.listen)")
    parser.add_argument("--user", default="app")
    parser.add_argument("--password", default="app")
    parser.add_argument("--json", help="also write the figures to this file")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        figures = bench(config, args)
    except (SwitchError, ValueError, pymysql.Error) as exc:
        print(f"dal migrate bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print(table(figures))
    return 0


SUBCOMMANDS["bench"] = Subcommand(
    "the figures: write latency per phase, backfill rows/s with and without load",
    add_arguments, run)
