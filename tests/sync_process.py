"""A `dal sync` subprocess for tests, and direct reads of both dimensions to compare them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import yaml

from tests.dal_process import ROOT, TEST_CONFIG, dba_login, free_port

SHARDS = 120


def sync_config(path: Path) -> dict:
    """A copy of the test config with a sync section of its own (free metrics port, status file
    beside it); returns the raw dict."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["sync"] = {"metrics": {"host": "127.0.0.1", "port": free_port()},
                   "status_file": str(path.with_name("sync-status.json")),
                   "batch_transactions": 200}
    path.write_text(yaml.safe_dump(raw))
    return raw


class SyncProcess:
    """`dal sync --config ...` with its stderr in a log file."""

    def __init__(self, config_path: Path, raw: dict) -> None:
        self.config_path = config_path
        self.raw = raw
        self.status_path = Path(raw["sync"]["status_file"])
        self.log_path = config_path.with_name("sync.log")
        self.proc: subprocess.Popen | None = None

    def start(self, *extra: str) -> SyncProcess:
        self.status_path.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dal.cli", "sync", "--config", str(self.config_path),
             "--progress", "1", *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 20
        while self.status() is None:
            assert self.proc.poll() is None, f"dal sync exited: {self.log()[-2000:]}"
            assert time.monotonic() < deadline, "dal sync wrote no status in 20 s"
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def status(self) -> dict | None:
        try:
            data = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == self.proc.pid else None  # type: ignore[union-attr]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_caught_up(self, timeout: float = 60) -> dict:
        """Wait until every source's binlog, as it is now, is applied; returns the status."""
        heads = {name: master_status(inst) for name, inst in self.raw["instances"].items()}
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status is not None and all(
                    (s["applied_file"], s["applied_pos"]) >= heads[name]
                    for name, s in status["sources"].items()):
                return status
            assert self.proc is not None and self.proc.poll() is None, \
                f"dal sync exited: {self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"not caught up in {timeout} s: {status}"
            time.sleep(0.1)


def backend(inst: dict) -> pymysql.connections.Connection:
    """The instance as the DBA (binlog status, dal_meta and both dimensions: more than DAL's)."""
    user, password = dba_login()
    return pymysql.connect(host=inst["host"], port=inst["port"], user=user,
                           password=password, autocommit=True)


def master_status(inst: dict) -> tuple[str, int]:
    with backend(inst) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return row[0], int(row[1])


def instance_of(raw: dict, dimension: str, shard: int) -> dict:
    for place in raw["databases"]["trade"]["dimensions"][dimension]["placement"]:
        low, _, high = str(place["shards"]).partition("-")
        if int(low) <= shard <= int(high or low):
            return raw["instances"][place["instance"]]
    raise KeyError(shard)


def read_all(raw: dict, prefix: str, table: str) -> dict[int, dict[int, tuple]]:
    """Every row of ``table`` in every shard of a dimension: {shard: {id: row}}."""
    dimension = prefix.rstrip("_")
    out: dict[int, dict[int, tuple]] = {}
    conns = {name: backend(inst) for name, inst in raw["instances"].items()}
    try:
        by_port = {inst["port"]: conns[name] for name, inst in raw["instances"].items()}
        for shard in range(SHARDS):
            conn = by_port[instance_of(raw, dimension, shard)["port"]]
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {prefix}{shard:03d}.{table}")
                out[shard] = {row[0]: row for row in cur.fetchall()}
    finally:
        for conn in conns.values():
            conn.close()
    return out


def compare_dimensions(raw: dict, table: str, shard_of: int = 2) -> list[str]:
    """Problems found by reading all 240 shards directly: every user row must be in exactly
    merchant_(merchant_id % 120) with equal values, and the copy must hold nothing else.
    ``shard_of`` is the index of merchant_id in the row."""
    users = read_all(raw, "user_", table)
    merchants = read_all(raw, "merchant_", table)
    want: dict[int, dict[int, tuple]] = {s: {} for s in range(SHARDS)}
    problems = []
    for rows in users.values():
        for id_, row in rows.items():
            want[row[shard_of] % SHARDS][id_] = row
    for shard in range(SHARDS):
        w, g = want[shard], merchants[shard]
        for id_ in w.keys() - g.keys():
            problems.append(f"{table} {id_} missing in merchant_{shard:03d}")
        for id_ in g.keys() - w.keys():
            problems.append(f"{table} {id_} extra in merchant_{shard:03d}")
        for id_ in w.keys() & g.keys():
            if w[id_] != g[id_]:
                problems.append(f"{table} {id_} differs in merchant_{shard:03d}: "
                                f"{w[id_]} != {g[id_]}")
    return problems


def run_verify(config_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dal.cli", "verify", "dimensions", "--config", str(config_path),
         "--no-progress", "--state", str(config_path.with_name("verify.json")), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
