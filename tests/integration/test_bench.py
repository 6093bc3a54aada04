"""`dal bench` end to end: short bounded runs against the test instances and a DAL it starts.

`make test` starts the instances of config/test.yaml before pytest; without them these tests are
skipped. Each run starts its own DAL on a free port, so it never meets another test's DAL.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from config.loader import load_config
from config.model import Config
from dal.execute.fanout import CONNECTIONS
from tests.dal_process import TEST_CONFIG, running_test_config
from tools import bench_hop, bench_spread, localdb
from tools.bench import dal_running
from tools.bench_common import Target

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--duration", "2", "--rounds", "1", "--warmup", "1"]


def _connect(cfg: Config) -> pymysql.connections.Connection:
    db = next(iter(cfg.databases.values()))
    inst = cfg.instances[db.default_instance]
    return pymysql.connect(host=inst.host, port=inst.port, user=inst.user,
                           password=inst.password, database=db.default_database, autocommit=True)


@pytest.fixture(scope="module")
def config() -> Iterator[Config]:
    """The test config; drops trade.sbtest1 afterwards if the bench created it."""
    cfg = running_test_config()
    conn = _connect(cfg)
    try:
        with conn.cursor() as cur:
            existed = bool(cur.execute("SHOW TABLES LIKE 'sbtest1'"))
    finally:
        conn.close()
    yield cfg
    if not existed:
        conn = _connect(cfg)
        try:
            conn.cursor().execute("DROP TABLE IF EXISTS sbtest1")
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench(tmp_path: Path, *extra: str, config_path: Path = TEST_CONFIG,
          last_round: str = "round 2/2: dal") -> dict[str, Any]:
    """Run `dal bench` in a subprocess with its own DAL; the JSON figures it wrote."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "dal.cli", "bench", "--config", str(config_path),
           "--port", str(free_port()), "--json", str(out), *SHORT, *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert last_round in proc.stderr
    # One uncounted warm-up round per target comes before the measured ones.
    assert proc.stderr.index("warm-up: direct") < proc.stderr.index("warm-up: dal") < \
        proc.stderr.index("round 1/")
    assert "ratio dal/direct" in proc.stdout
    assert "cpu per query, dal rounds: dal " in proc.stdout
    return json.loads(out.read_text())


def check(result: dict[str, Any]) -> None:
    targets = result["targets"]
    assert set(targets) == {"direct", "dal"}
    for figures in targets.values():
        assert figures["qps"] > 0, figures
        assert figures["queries"] > 0, figures
        assert figures["errors"] == 0, figures
        assert figures["p99_ms"] is not None and figures["p99_ms"] > 0, figures
    assert result["dal_started"] is True
    assert 0 < result["ratio"] < 2
    # Each round's CPU time per query: the servers and the load generator work in both, DAL
    # only in its own rounds (it idles while the direct rounds run).
    direct, dal = targets["direct"]["cpu_us"], targets["dal"]["cpu_us"]
    assert direct["servers"] > 0 and direct["client"] > 0, direct
    assert dal["servers"] > 0 and dal["client"] > 0, dal
    assert dal["dal"] > 5 * direct["dal"], (direct, dal)


def test_builtin_generator(config: Config, tmp_path: Path) -> None:
    result = bench(tmp_path, "--clients", "4", "--procs", "1")
    assert result["mode"] == "builtin"
    check(result)
    assert all(t["p50_ms"] <= t["p99_ms"] for t in result["targets"].values())


@pytest.mark.skipif(shutil.which("sysbench") is None, reason="sysbench is not installed")
def test_sysbench(config: Config, tmp_path: Path) -> None:
    result = bench(tmp_path, "--sysbench", "--threads", "4")
    assert result["mode"] == "sysbench"
    check(result)


@pytest.mark.skipif(shutil.which("sysbench") is None, reason="sysbench is not installed")
def test_sysbench_both_ps_modes_in_one_run(config: Config, tmp_path: Path) -> None:
    # Each round runs both targets in disable, then in auto: the two ratios come from one run.
    result = bench(tmp_path, "--sysbench", "--threads", "4", "--ps-mode", "both",
                   last_round="round 4/4: dal    (auto)")
    modes = result["by_ps_mode"]
    assert set(modes) == {"disable", "auto"}
    for mode, figures in modes.items():
        assert figures["params"]["ps_mode"] == mode
        check({**figures, "dal_started": result["dal_started"]})
        assert [(r["number"], r["target"]) for r in figures["rounds"]] == (
            [(1, "direct"), (2, "dal")] if mode == "disable" else [(3, "direct"), (4, "dal")])
    assert result["ratio_auto_over_disable"] == pytest.approx(
        modes["auto"]["ratio"] / modes["disable"]["ratio"], abs=1e-3)


@pytest.mark.skipif(shutil.which("sysbench") is None, reason="sysbench is not installed")
def test_fixed_offered_load(config: Config, tmp_path: Path) -> None:
    # --rate: every target gets the same statements per second, so that CPU per query
    # compares the work of one statement, not how each batches at saturation.
    result = bench(tmp_path, "--sysbench", "--threads", "4", "--rate", "300")
    check(result)
    assert result["params"]["rate"] == 300
    for figures in result["targets"].values():
        assert 240 <= figures["qps"] <= 330, figures
    assert 0.8 <= result["ratio"] <= 1.25


def test_both_ps_modes_need_sysbench(config: Config) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dal.cli", "bench", "--config", str(TEST_CONFIG), "--ps-mode",
         "both", *SHORT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--ps-mode both goes with --sysbench" in proc.stderr


SBTEST = {
    "default_instance": "a",
    "default_database": "sbtest",
    "dimensions": {"user": {"key": "id", "shards": 120, "prefix": "sbtest_", "placement": [
        {"shards": "0-59", "instance": "a"}, {"shards": "60-119", "instance": "b"}]}},
    "tables": {"sbtest1": {"kind": "sharded"}, "orders": {"kind": "sharded"}},
}


def _sbtest_databases(cfg: Config) -> dict[str, set[str]]:
    """Per instance, the databases named sbtest, sbtest_NNN or sbtest_spread."""
    found = {}
    for name, inst in cfg.instances.items():
        conn = pymysql.connect(host=inst.host, port=inst.port, user=inst.user,
                               password=inst.password, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT schema_name FROM information_schema.schemata "
                            "WHERE schema_name REGEXP '^sbtest(_[0-9]{3}|_spread)?$'")
                found[name] = {row[0] for row in cur.fetchall()}
        finally:
            conn.close()
    return found


@pytest.fixture
def sharded_config(config: Config, tmp_path: Path) -> Iterator[Path]:
    """config/test.yaml plus the logical database sbtest (as in config/bench.yaml), in tmp.

    Drops the sbtest and sbtest_NNN databases the bench creates, so that other tests' views of
    the instances (SHOW DATABASES, schema apply counts) are unaffected.
    """
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["databases"]["sbtest"] = SBTEST
    path = tmp_path / "sharded.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    _grant(load_config(path))  # DAL's backend account may use sbtest
    before = _sbtest_databases(config)
    yield path
    for name, created in _sbtest_databases(config).items():
        inst = config.instances[name]
        conn = pymysql.connect(host=inst.host, port=inst.port, user=inst.user,
                               password=inst.password, autocommit=True)
        try:
            with conn.cursor() as cur:
                for db in sorted(created - before[name]):
                    cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        finally:
            conn.close()
    try:
        assert _sbtest_databases(config) == before
    finally:
        _grant(config)  # and no longer


def _grant(cfg: Config) -> None:
    """`dal localdb up`: DAL's backend account gets exactly the databases of ``cfg``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the test config's datadirs are relative to the repository
        localdb.up(cfg, say=lambda line: None)


def test_sharded_builtin_generator(config: Config, sharded_config: Path, tmp_path: Path) -> None:
    result = bench(tmp_path, "--sharded", "--clients", "4", "--procs", "1",
                   config_path=sharded_config)
    assert result["mode"] == "builtin"
    assert result["layout"] == "sharded"
    assert result["shards"] == 120
    assert result["dal_database"] == "sbtest"
    assert result["direct_database"] == "trade"
    check(result)
    found = _sbtest_databases(config)
    assert {f"sbtest_{n:03d}" for n in range(60)} <= found["a"]
    assert {f"sbtest_{n:03d}" for n in range(60, 120)} <= found["b"]


@pytest.mark.skipif(shutil.which("sysbench") is None, reason="sysbench is not installed")
def test_spread_measures_the_layout_without_a_proxy(config: Config, sharded_config: Path,
                                                    tmp_path: Path) -> None:
    """--spread: sysbench straight to MariaDB over as many tables as DAL has shards (and
    through the hop), in the same alternated rounds, each table holding its share of ids."""
    hop = bench_hop.program() is not None
    expected = ["direct", "dal", *(["hop"] if hop else []), "spread",
                *(["sp-hop"] if hop else [])]
    result = bench(tmp_path, "--sharded", "--sysbench", "--threads", "4", "--spread", "--hop",
                   "--table-size", "600", config_path=sharded_config,
                   last_round=f"round {len(expected)}/{len(expected)}: ")
    assert list(result["targets"]) == expected
    for name in expected:
        figures = result["targets"][name]
        assert figures["queries"] > 0 and figures["errors"] == 0, figures
    # `spread` is the servers themselves: no CPU group of its own; the hop in front is one.
    assert "spread" not in result["cpu_own_us"]
    assert ("sp-hop" in result["cpu_own_us"]) == hop
    conn = _connect(config)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.tables "
                        "WHERE table_schema = 'sbtest_spread'")
            assert cur.fetchone() == (120,)
            for number in (1, 77, 120):
                cur.execute(f"SELECT COUNT(*), MIN(id), MAX(id), SUM(k) FROM "
                            f"sbtest_spread.sbtest{number}")
                spread = cur.fetchone()
                cur.execute("SELECT COUNT(*), MIN(id), MAX(id), SUM(k) FROM sbtest1 "
                            "WHERE id <= 5")
                assert spread == cur.fetchone()  # ceil(600 / 120) = 5 ids, trade's values
    finally:
        conn.close()


def test_spread_is_left_out_where_its_prepared_statements_would_not_fit(config: Config) -> None:
    """With prepared statements every sysbench thread prepares its statement on each of the
    spread's tables: past the server's max_prepared_stmt_count the bench says so instead of
    failing the run."""
    db = next(iter(config.databases.values()))
    inst = config.instances[db.default_instance]
    direct = Target("direct", inst.host, inst.port, inst.user, inst.password,
                    db.default_database)
    assert bench_spread.prepared_limit(direct, 4, 120) is None
    reason = bench_spread.prepared_limit(direct, 1000, 120)
    assert reason is not None and "120000 statements" in reason
    assert "max_prepared_stmt_count" in reason


def test_sharded_without_sbtest_is_refused(config: Config) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dal.cli", "bench", "--config", str(TEST_CONFIG), "--sharded",
         *SHORT],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "does not define" in proc.stderr and "config/bench.yaml" in proc.stderr


def test_unreachable_dal_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    # Something that accepts TCP but never speaks MySQL: the bench must not hang or succeed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "dal.cli", "bench", "--config", str(TEST_CONFIG),
             "--port", str(port), *SHORT],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 1
    assert f"cannot reach dal at 127.0.0.1:{port}" in proc.stderr


def test_many_clients_mode(config: Config, tmp_path: Path) -> None:
    out = tmp_path / "many.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dal.cli", "bench", "--config", str(TEST_CONFIG), "--port",
         str(free_port()), "--json", str(out), "--many", "60", "--rounds", "1",
         "--duration", "1.5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "ratio dal/direct: statements/s" in proc.stdout
    result = json.loads(out.read_text())
    assert result["clients"] == 60
    for figures in result["targets"].values():
        assert figures["transactions"] > 0 and figures["statements_per_second"] > 0, figures
        assert figures["errors"] == 0 and figures["wrong"] == 0, figures
    assert 0 < result["ratio"] < 2


# --- the whole picture in one run (issue 23) ---------------------------------------------------


def run_bench(tmp_path: Path, *args: str, config_path: Path = TEST_CONFIG,
              env: dict[str, str] | None = None,
              status: int = 0) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`dal bench ... --json` in a subprocess; its output and (status 0) the JSON it wrote."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "dal.cli", "bench", "--config", str(config_path),
           "--json", str(out), *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == status, f"{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(out.read_text()) if status == 0 else {}


def test_hop_and_compared_dal_are_targets_of_the_same_run(config: Config,
                                                          tmp_path: Path) -> None:
    # Another DAL already listening (as an older build would be) is measured as target "old".
    other = Target("old", "127.0.0.1", free_port(), "app", "app", "trade")
    with dal_running(str(TEST_CONFIG), other):
        proc, result = run_bench(tmp_path, "--port", str(free_port()), *SHORT, "--clients",
                                 "4", "--procs", "1", "--hop", "--compare-port",
                                 f"{other.port}:old")
    hop = bench_hop.program() is not None
    expected = ["direct", "dal", *(["hop"] if hop else []), "old"]
    assert list(result["targets"]) == expected
    assert [r["target"] for r in result["rounds"]] == expected  # rounds alternate over all
    for name in expected:
        figures = result["targets"][name]
        assert figures["queries"] > 0 and figures["errors"] == 0, figures
    for name in expected[1:]:
        ratios = result["ratios"][name]
        assert ratios["qps"] == pytest.approx(
            result["targets"][name]["qps"] / result["targets"]["direct"]["qps"], abs=1e-3)
        assert f"ratio {name}/direct: qps" in proc.stdout
    # Each proxy's own CPU per query, measured from the processes listening on its port.
    own = result["cpu_own_us"]
    assert set(own) == set(expected[1:]) and all(us > 0 for us in own.values()), own
    assert result["targets"]["old"]["cpu_us"]["old"] > 5 * result["targets"]["dal"]["cpu_us"][
        "old"], result["targets"]
    assert "own cpu per query" in proc.stdout
    if hop:
        assert result["hop"] == {"measured": True, "reason": None}
        assert result["cpu_ratio_to_hop"]["dal"] == pytest.approx(own["dal"] / own["hop"],
                                                                  abs=1e-3)
    else:
        assert "hop: not measured: haproxy is not installed" in proc.stdout


def test_hop_without_haproxy_is_skipped_with_a_reason(config: Config, tmp_path: Path) -> None:
    proc, result = run_bench(tmp_path, "--port", str(free_port()), "--duration", "1",
                             "--rounds", "1", "--warmup", "0", "--clients", "2", "--procs",
                             "1", "--hop", env={"DAL_BENCH_HAPROXY": str(tmp_path / "none")})
    assert list(result["targets"]) == ["direct", "dal"]
    assert result["hop"]["measured"] is False
    assert "haproxy is not installed" in result["hop"]["reason"]
    assert "--hop: haproxy is not installed" in proc.stderr
    assert "hop: not measured: haproxy is not installed" in proc.stdout


def test_client_counts_in_one_run(config: Config, tmp_path: Path) -> None:
    # With sysbench: 4 clients as sysbench threads, 40 above --sysbench-max-threads with the
    # asyncio generator; without sysbench both counts use the asyncio generator.
    sysbench = shutil.which("sysbench") is not None
    proc, result = run_bench(tmp_path, "--port", str(free_port()), "--duration", "1.5",
                             "--rounds", "1", "--warmup", "0", "--clients-set", "4,40",
                             "--procs", "1", "--sysbench-max-threads", "8",
                             *(["--sysbench"] if sysbench else []))
    by_clients = result["by_clients"]
    assert list(by_clients) == ["4", "40"]
    assert by_clients["4"]["generator"] == ("sysbench" if sysbench else "asyncio")
    assert by_clients["40"]["generator"] == "asyncio"
    assert by_clients["40"]["params"]["clients"] == 40
    for figures in by_clients.values():
        assert list(figures["targets"]) == ["direct", "dal"]
        for target in figures["targets"].values():
            assert target["queries"] > 0 and target["errors"] == 0, target
        # The ratio is the report's own arithmetic (DAL may well beat direct at 40 clients: it
        # keeps MariaDB at 16 connections): computed from the two throughputs, never invented.
        targets = figures["targets"]
        assert figures["ratios"]["dal"]["qps"] == pytest.approx(
            targets["dal"]["qps"] / targets["direct"]["qps"], abs=1e-3)
    assert by_clients["40"]["targets"]["dal"]["p50_ms"] is not None
    assert "client counts" in proc.stdout and "dal/direct" in proc.stdout


def test_scatter_and_ids(config: Config, sharded_config: Path, tmp_path: Path) -> None:
    try:
        proc, result = run_bench(tmp_path, "--port", str(free_port()), *SHORT,
                                 "--no-point-selects", "--scatter", "--scatter-rows", "1200",
                                 "--ids", "--ids-count", "20000", config_path=sharded_config)
    finally:
        conn = _connect(config)
        try:
            conn.cursor().execute("DROP TABLE IF EXISTS scatter_orders")
        finally:
            conn.close()
    assert "targets" not in result and "by_clients" not in result
    scatter = result["scatter"]
    assert (scatter["rows"], scatter["shards"]) == (1200, 120)
    assert set(scatter["queries"]) == {"created_at", "id"}
    floors = [f"floor{n}" for n in sorted({1, CONNECTIONS})]  # the statements without DAL
    for query in scatter["queries"].values():
        assert list(query["targets"]) == ["direct", "dal", *floors]
        assert "scatter_orders" in query["targets"]["direct"]["sql"]
        for figures in query["targets"].values():
            assert figures["queries"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
        for name in ("dal", *floors):
            assert query["ratios"][name]["p50"] == pytest.approx(
                query["targets"][name]["p50_ms"] / query["targets"]["direct"]["p50_ms"],
                abs=1e-3)
    assert scatter["errors"] == {"direct": 0, "dal": 0}
    assert "scatter over 120 shards, 1200 orders" in proc.stdout
    ids = result["ids"]
    assert ids["count"] == 20000 and ids["ids_per_second"] > 0 and ids["ids_per_cpu_second"] > 0
    assert "order ids, one process" in proc.stdout
    assert {"steal_percent", "busy_percent"} <= set(result["machine"])


def test_ids_need_no_database(tmp_path: Path) -> None:
    # Every instance of this config points at a port nothing listens on.
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    for inst in raw["instances"].values():
        inst["port"] = free_port()
    path = tmp_path / "nowhere.yaml"
    path.write_text(yaml.safe_dump(raw))
    _proc, result = run_bench(tmp_path, "--no-point-selects", "--ids", "--ids-count", "5000",
                              config_path=path)
    assert result["ids"]["count"] == 5000 and result["ids"]["runs"] == 3
    assert result["ids"]["ids_per_second_best"] >= result["ids"]["ids_per_second"] > 0


@pytest.mark.parametrize("args, message", [
    (["--no-point-selects"], "--no-point-selects leaves nothing to measure"),
    (["--compare-port", "3999:hop"], "--compare-port labels must be distinct"),
    (["--clients-set", "4,8", "--sysbench", "--ps-mode", "both"], "goes without --ps-mode both"),
    (["--rate", "100"], "--rate needs a positive rate, --sysbench"),
    (["--spread", "--sysbench"], "--spread goes with --sysbench --sharded"),
    (["--spread", "--sysbench", "--sharded", "--clients-set", "4,40", "--sysbench-max-threads",
      "8"], "--spread measures the point-select rounds with sysbench"),
    (["--spread", "--sysbench", "--sharded", "--no-point-selects", "--scatter"],
     "--spread measures the point-select rounds with sysbench"),
    (["--rate", "0", "--sysbench"], "--rate needs a positive rate, --sysbench"),
])
def test_whole_picture_arguments_are_checked(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    proc, _ = run_bench(tmp_path, *args, status=2)
    assert message in proc.stderr
