"""2,000 concurrent clients through a DAL whose pools hold at most 8 connections per instance.

Point reads and single-shard transactions on `orders` (tools/loadgen.py): zero errors, every
answer what the client itself wrote, the shards hold exactly what was committed, and a sampler
reading each backend's own SHOW PROCESSLIST never sees more than 8 connections from DAL.
"""

from __future__ import annotations

import contextlib
import resource
import threading
import time
from pathlib import Path

import pymysql
import pytest
import yaml

from tests.dal_process import TEST_CONFIG, dal_with_pool, running_test_config
from tests.metrics_scrape import scrape, value
from tools import loadgen

CLIENTS = 2000
POOL_MAX = 8
DURATION = 12.0  # seconds of load once every client is connected
USER_BASE = 700_000  # user ids no other test uses


class ProcesslistSampler(threading.Thread):
    """Polls SHOW PROCESSLIST on each instance (as root, so its own row is easy to tell
    apart) and keeps the most connections of DAL's backend user seen at once, ignoring the
    connections that existed before the DAL under test started (other DAL processes')."""

    def __init__(self, instances: dict[str, dict], backend_user: str) -> None:
        super().__init__(daemon=True)
        self.user = backend_user
        self.conns = {name: pymysql.connect(host=cfg["host"], port=cfg["port"], user="root",
                                            autocommit=True)
                      for name, cfg in instances.items()}
        self.before = {name: self._ids(conn) for name, conn in self.conns.items()}
        self.peak = dict.fromkeys(self.conns, 0)
        self.samples = 0
        self.stopping = threading.Event()

    def _ids(self, conn: pymysql.connections.Connection) -> set[int]:
        with conn.cursor() as cur:
            cur.execute("SHOW PROCESSLIST")
            own = conn.thread_id()
            # dal_meta: DAL's gene worker lease connection, not one of its pools'
            return {row[0] for row in cur.fetchall()
                    if row[1] == self.user and row[0] != own and row[3] != "dal_meta"}

    def run(self) -> None:
        while not self.stopping.is_set():
            for name, conn in self.conns.items():
                count = len(self._ids(conn) - self.before[name])
                self.peak[name] = max(self.peak[name], count)
            self.samples += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(10)
        for conn in self.conns.values():
            if conn.open:
                conn.close()


@pytest.fixture
def load_dal(tmp_path: Path):
    """A DAL of its own: pool max 8 per instance, a long acquire timeout (2,000 clients share
    16 connections, so a statement may wait its turn for a while), a wait queue for all."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < CLIENTS + 500:
        pytest.skip(f"file-descriptor limit {hard} is too low for {CLIENTS} clients")
    with contextlib.suppress(ValueError):  # for this process and the DAL it starts
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    instances = yaml.safe_load(TEST_CONFIG.read_text())["instances"]
    # The sampler notes the backend connections that exist before this DAL starts.
    sampler = ProcesslistSampler(instances, instances["a"]["user"])
    proc, raw = dal_with_pool(tmp_path, {"max_size": POOL_MAX, "acquire_timeout": 60.0},
                            max_clients=CLIENTS + 100)
    try:
        yield proc, sampler, raw["server"]["metrics"]["port"]
    finally:
        sampler.stop()
    assert proc.stop() == 0


def test_2000_clients_share_8_connections_per_instance(load_dal) -> None:
    config = running_test_config()
    proc, sampler, metrics_port = load_dal
    users = [USER_BASE + i for i in range(CLIENTS)]
    loadgen.prepare(config, users)
    sampler.start()
    try:
        result = loadgen.run_blocking(users, loadgen.dal_route("127.0.0.1", proc.port), DURATION)
    finally:
        sampler.stop()
    print(f"\n{CLIENTS} clients: connected in {result.connect_seconds:.1f} s, "
          f"{result.statements} statements ({result.reads} reads, {result.transactions} "
          f"transactions) in {result.seconds:.1f} s = {result.statements_per_second:.0f}/s; "
          f"peak DAL connections per instance {sampler.peak} over {sampler.samples} samples")
    assert result.connected == CLIENTS, result.samples
    assert result.errors == 0 and result.wrong == 0, result.samples
    assert result.transactions >= CLIENTS, "too few transactions to call this a load test"
    assert loadgen.verify(config, result.expected) == []
    assert sampler.samples >= 10
    assert all(peak <= POOL_MAX for peak in sampler.peak.values()), sampler.peak
    # The pools were really saturated, so the bound above was tested, not idle.
    assert all(peak == POOL_MAX for peak in sampler.peak.values()), sampler.peak
    # DAL's own view agrees: queued acquires waited, none timed out, all returned.
    metrics = scrape(metrics_port)
    for instance in ("a", "b"):
        assert value(metrics, "dal_pool_max", instance=instance) == POOL_MAX
        assert value(metrics, "dal_pool_in_use", instance=instance) == 0
        assert value(metrics, "dal_pool_acquire_timeouts_total", instance=instance) == 0
        assert value(metrics, "dal_pool_acquire_wait_seconds_count", instance=instance) > CLIENTS
        assert value(metrics, "dal_pool_acquire_wait_seconds_sum", instance=instance) > 0
