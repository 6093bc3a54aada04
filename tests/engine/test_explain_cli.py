"""`dal explain`: the plan of a statement from the config alone (no DAL, no backend)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import DEFAULT_CONFIG
from dal.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_explain_prints_the_tree_and_each_shards_sql(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--config", str(DEFAULT_CONFIG),
                 "SELECT id, created_at FROM orders ORDER BY created_at DESC LIMIT 20"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["plan", "targets", "sql"]
    assert lines[1].startswith("Limit 20 offset 0")
    assert lines[2].startswith("  MergeSort k-way by #2 DESC")
    assert lines[3].startswith("    Scatter SELECT on user shards: every shard")
    assert "120 databases: user_000..user_059 on a, user_060..user_119 on b" in lines[3]
    assert lines[4].startswith("      -> user_000 (each of the 120 the same")
    assert " user_000 on a " in lines[4]
    assert lines[4].endswith("  SELECT id, created_at FROM user_000.orders ORDER BY created_at "
                             "DESC LIMIT 20")
    assert len(lines) == 5


def test_explain_takes_the_database_and_the_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--config", str(DEFAULT_CONFIG), "--database", "trade",
                 "CREATE TABLE notes (id INT)"]) == 0
    assert "Refuse (rule ddl): ERROR 1227" in capsys.readouterr().out
    assert main(["explain", "--config", str(DEFAULT_CONFIG), "--admin",
                 "CREATE TABLE notes (id INT)"]) == 0
    out = capsys.readouterr().out
    assert "Route DDL to instance a, database trade" in out
    assert out.rstrip().endswith("CREATE TABLE notes (id INT)")


def test_explain_runs_as_a_command_with_help() -> None:
    done = subprocess.run([sys.executable, "-m", "dal.cli", "explain", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert "without a running DAL" in done.stdout
    assert "--database" in done.stdout
    done = subprocess.run([sys.executable, "-m", "dal.cli", "explain", "--config",
                           str(DEFAULT_CONFIG), "UPDATE regions SET name = 'x' WHERE id = 1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines()[1].startswith("Broadcast UPDATE to every copy")
    assert "241 databases: trade on a, user_000..user_059 on a" in done.stdout
