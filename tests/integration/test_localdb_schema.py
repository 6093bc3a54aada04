"""`dal localdb` and `dal schema` against the real test instances of config/test.yaml.

`make test` runs `dal localdb up` and `dal schema apply` on config/test.yaml before pytest;
without running instances these tests are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from config.model import Config
from dal.cli import main
from tests.dal_process import TEST_CONFIG, running_test_config
from tools import localdb, schema

ROOT = Path(__file__).resolve().parents[2]
SHARD_TABLES = {"orders", "order_items", "regions"}


@pytest.fixture(scope="module")
def config() -> Iterator[Config]:
    """The test config, run from the repository root (its datadirs are relative)."""
    cfg = running_test_config()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        yield cfg


def connect(cfg: Config, instance: str) -> pymysql.connections.Connection:
    inst = cfg.instances[instance]
    return pymysql.connect(
        host=inst.host, port=inst.port, user=inst.user, password=inst.password, autocommit=True
    )


def execute(cfg: Config, instance: str, sql: str) -> None:
    conn = connect(cfg, instance)
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def tables_by_database(cfg: Config, instance: str) -> dict[str, set[str]]:
    conn = connect(cfg, instance)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema REGEXP '^(user|merchant)_[0-9]{3}$' OR table_schema = 'trade'"
            )
            found: dict[str, set[str]] = defaultdict(set)
            for db, table in cur.fetchall():
                found[db].add(table)
            cur.execute("SHOW DATABASES")
            for (db,) in cur.fetchall():
                found.setdefault(db, set())
            return found
    finally:
        conn.close()


def test_status_reports_both_running(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    found = localdb.status(config)
    assert [item.name for item in found] == ["a", "b"]
    for item in found:
        assert item.running and item.pid is not None
        assert item.version and "MariaDB" in item.version
    assert main(["localdb", "status", "--config", str(TEST_CONFIG)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    a = config.instances["a"]
    assert lines[0].startswith(f"a  127.0.0.1:{a.port}  {a.datadir}  running  pid ")


def test_second_up_is_a_no_op(config: Config) -> None:
    before = {item.name: item.pid for item in localdb.status(config)}
    said: list[str] = []
    localdb.up(config, say=said.append)
    assert {item.name: item.pid for item in localdb.status(config)} == before
    assert sorted(said) == [
        f"{name}: already running, pid {before[name]} on 127.0.0.1:{config.instances[name].port}"
        for name in ("a", "b")
    ]


def test_schema_apply_is_idempotent(config: Config) -> None:
    for _ in range(2):
        report = schema.apply(config, progress=False)
        assert report.databases == 241
        assert report.databases_created == []
        assert report.tables_created == []
        assert report.tables_present == 240 * 3 + 2
        assert report.drift == []
        assert report.ok
    assert report.summary() == (
        "schema apply: 241 databases (0 created), 0 tables created, 722 already present, 0 drifted"
    )


def test_every_shard_database_has_its_tables(config: Config) -> None:
    on_a, on_b = tables_by_database(config, "a"), tables_by_database(config, "b")
    for prefix in ("user_", "merchant_"):
        for shard in range(120):
            name = f"{prefix}{shard:03d}"
            here, there = (on_a, on_b) if shard < 60 else (on_b, on_a)
            assert here[name] == SHARD_TABLES, name
            assert name not in there, f"{name} is on both instances"
    # The schema's tables for the default database; other unsharded tables (the benchmark's
    # sbtest1, an admin's own) may live there too, but never a sharded one.
    assert {"merchants", "regions"} <= on_a["trade"]
    assert not {"orders", "order_items"} & on_a["trade"]
    assert "trade" not in on_b


def test_injected_drift_is_reported_then_repaired(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(config, "a", "ALTER TABLE user_005.orders ADD COLUMN x INT")
    try:
        report = schema.check(config, progress=False)
        assert not report.ok
        assert [str(d) for d in report.drift] == ["user_005.orders: column x is extra"]
        assert main(["schema", "check", "--config", str(TEST_CONFIG)]) == 4
        out = capsys.readouterr().out
        assert "drift: user_005.orders: column x is extra" in out
        assert "1 drifted" in out
    finally:
        execute(config, "a", "ALTER TABLE user_005.orders DROP COLUMN x")
    assert schema.check(config, progress=False).ok


def test_missing_table_is_reported_and_recreated(config: Config) -> None:
    # Keep the table's rows aside, since other tests may rely on them.
    execute(config, "b", "RENAME TABLE merchant_100.regions TO merchant_100._dal_test_saved")
    try:
        report = schema.check(config, progress=False)
        assert report.tables_created == ["merchant_100.regions"]
        assert not report.ok
        report = schema.apply(config, progress=False)
        assert report.tables_created == ["merchant_100.regions"]
        assert report.ok
        assert schema.check(config, progress=False).ok
    finally:
        execute(config, "b", "DROP TABLE IF EXISTS merchant_100.regions")
        execute(config, "b", "RENAME TABLE merchant_100._dal_test_saved TO merchant_100.regions")


def test_help_explains_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    for command, phrase in (("localdb", "--no-defaults"), ("schema", "broadcast")):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert phrase in capsys.readouterr().out
