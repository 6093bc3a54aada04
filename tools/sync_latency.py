"""Read-after-write latency of the merchant copy, measured through DAL.

  python -m tools.sync_latency --port 3307 [--seconds 20] [--rate 200] [--writers 4]

While writer threads insert orders (with one item each) through DAL at a steady total rate, a
prober inserts an order with a unique note, and from the moment DAL acknowledges the INSERT
polls ``SELECT id FROM orders WHERE merchant_id = ? AND note = ?`` through DAL (answered by
the merchant copy) until the row is there. Prints p50/p90/p99/max of those times. Needs DAL
and `dal sync` running (e.g. `make run`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
import uuid

import pymysql

INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
          "updated_at) VALUES (%s, %s, 1, 9.99, %s, NOW(6), NOW(6))")


def _connect(args: argparse.Namespace) -> pymysql.connections.Connection:
    return pymysql.connect(host=args.host, port=args.port, user=args.user,
                           password=args.password, database=args.database, autocommit=True)


def _writer(args: argparse.Namespace, stop: threading.Event, rate: float) -> None:
    conn = _connect(args)
    cur = conn.cursor()
    rng = random.Random()
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            user, merchant = rng.randint(1, 10**6), rng.randint(1, 10**6)
            cur.execute(INSERT, (user, merchant, "load"))
            cur.execute("INSERT INTO order_items (order_id, user_id, merchant_id, sku, qty, "
                        "price) VALUES (%s, %s, %s, 'load', 1, 9.99)",
                        (cur.lastrowid, user, merchant))
            next_at += 1.0 / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        conn.close()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(args: argparse.Namespace) -> dict:
    """Run the load and the probes; the latency summary in milliseconds."""
    stop = threading.Event()
    writers = [threading.Thread(target=_writer, args=(args, stop, args.rate / args.writers),
                                daemon=True) for _ in range(args.writers)]
    for w in writers:
        w.start()
    conn = _connect(args)
    cur = conn.cursor()
    latencies: list[float] = []
    timeouts = 0
    rng = random.Random()
    deadline = time.monotonic() + args.seconds
    try:
        time.sleep(min(1.0, args.seconds / 10))  # let the load settle
        while time.monotonic() < deadline:
            user, merchant, note = rng.randint(1, 10**6), rng.randint(1, 10**6), uuid.uuid4().hex
            cur.execute(INSERT, (user, merchant, note))
            acked = time.perf_counter()
            while True:
                cur.execute("SELECT id FROM orders WHERE merchant_id = %s AND note = %s",
                            (merchant, note))
                if cur.fetchone():
                    latencies.append((time.perf_counter() - acked) * 1000)
                    break
                if time.perf_counter() - acked > args.timeout:
                    timeouts += 1
                    break
                time.sleep(0.0005)
            time.sleep(args.interval)
    finally:
        stop.set()
        for w in writers:
            w.join(10)
        conn.close()
    return {
        "probes": len(latencies), "timeouts": timeouts, "load_rate": args.rate,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p90_ms": round(_percentile(latencies, 90), 2) if latencies else None,
        "p99_ms": round(_percentile(latencies, 99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.sync_latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3307, help="DAL's port")
    p.add_argument("--user", default="app")
    p.add_argument("--password", default="app")
    p.add_argument("--database", default="trade")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=200.0, help="background orders per second")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--interval", type=float, default=0.02, help="seconds between probes")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a probe waits at most")
    return p


def main(argv: list[str] | None = None) -> int:
    result = measure(parser().parse_args(argv))
    print(json.dumps(result))
    return 0 if result["probes"] and not result["timeouts"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
