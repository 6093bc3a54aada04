"""`dal bench --txn-modes`: what transaction mode xa costs a single-shard transaction.

Two DAL processes on the same backends, one in mode `single` and one in mode `xa` (the
shipped default), each started here on a free port. Rounds alternate between them; in each,
``--clients`` threads run ``BEGIN; SELECT ... FOR UPDATE; UPDATE; COMMIT`` on one user each
(one shard, one instance), so the only difference is XA START/END and the one-phase XA COMMIT
against a plain BEGIN/COMMIT. Reported: transactions per second and p50/p99 latency per mode,
and xa over single, from one run.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from config.model import Config
from tools.bench import Target, _percentile, dal_running

USER_BASE = 7_300_000  # the users this bench writes orders for (one order each)
MODES = ("single", "xa")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config_file(source: str, mode: str, folder: Path) -> str:
    raw = yaml.safe_load(Path(source).read_text())
    raw["transactions"] = {"mode": mode, "decision_log": str(folder / f"{mode}-decisions.log"),
                           "xid_prefix": "benchtx"}
    raw.setdefault("server", {}).pop("tls", None)
    path = folder / f"{mode}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _prepare(target: Target, users: list[int]) -> None:
    conn = target.connect()
    with conn.cursor() as cur:
        for user in users:
            cur.execute("SELECT COUNT(*) FROM orders WHERE user_id = %s", (user,))
            if cur.fetchone()[0] == 0:
                cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, "
                            "created_at, updated_at) VALUES (%s, %s, 0, 1.00, NOW(), NOW())",
                            (user, user % 120))
    conn.close()


def _round(target: Target, users: list[int], seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(user: int) -> None:
        conn = target.connect()
        mine: list[float] = []
        try:
            with conn.cursor() as cur:
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    cur.execute("BEGIN")
                    cur.execute("SELECT status FROM orders WHERE user_id = %s FOR UPDATE",
                                (user,))
                    cur.fetchall()
                    cur.execute("UPDATE orders SET updated_at = NOW(6) WHERE user_id = %s",
                                (user,))
                    cur.execute("COMMIT")
                    mine.append(time.perf_counter() - started)
        except Exception as exc:  # a failed transaction is reported, never hidden
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(user,)) for user in users]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - begun
    ordered = sorted(latencies)
    return {"transactions": len(ordered), "tps": len(ordered) / elapsed,
            "p50_ms": _percentile(ordered, 50), "p99_ms": _percentile(ordered, 99),
            "errors": len(errors), "error_samples": errors[:3]}


def run_txn_modes(args: argparse.Namespace, config: Config) -> int:
    """Alternate rounds of single-shard transactions through DAL in mode single and xa."""
    users = [USER_BASE + i for i in range(args.clients)]
    database = next(iter(config.databases))
    with tempfile.TemporaryDirectory(prefix="dal-bench-txn-") as folder:
        targets = {mode: Target(mode, "127.0.0.1", _free_port(), args.user, args.password,
                                database) for mode in MODES}
        paths = {mode: _config_file(args.config, mode, Path(folder)) for mode in MODES}
        with dal_running(paths["single"], targets["single"]), \
                dal_running(paths["xa"], targets["xa"]):
            _prepare(targets["single"], users)
            for mode in MODES:  # warm-up, uncounted
                _round(targets[mode], users, min(args.warmup, 2.0))
            rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for number in range(1, args.rounds + 1):
                for mode in MODES:
                    figures = _round(targets[mode], users, args.duration)
                    rounds[mode].append(figures)
                    print(f"round {number} {mode:6}: {figures['tps']:8.1f} txn/s  p50 "
                          f"{figures['p50_ms'] or 0:.2f} ms  p99 {figures['p99_ms'] or 0:.2f} ms"
                          f"  errors {figures['errors']}", flush=True)
    errors = sum(r["errors"] for mode in MODES for r in rounds[mode])
    for mode in MODES:
        for sample in (s for r in rounds[mode] for s in r["error_samples"]):
            print(f"  {mode} error: {sample}")
    tps = {mode: sum(r["tps"] for r in rounds[mode]) / len(rounds[mode]) for mode in MODES}
    if not tps["single"] or not tps["xa"]:
        print("dal bench: no transaction completed in one of the modes (errors above)")
        return 1
    p50 = {mode: sorted(r["p50_ms"] or 0 for r in rounds[mode])[len(rounds[mode]) // 2]
           for mode in MODES}
    print(f"single-shard transactions, {args.clients} clients: xa/single throughput "
          f"{tps['xa'] / tps['single']:.2f}, p50 {p50['single']:.2f} ms (single) vs "
          f"{p50['xa']:.2f} ms (xa)")
    return 1 if errors else 0
