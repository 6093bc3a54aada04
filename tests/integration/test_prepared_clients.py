"""Real drivers' server-side prepared statements through DAL, each doing CRUD on sharded
`orders` (checked against direct reads of the owning shard) and on `merchants`:
mysql-connector-python ``cursor(prepared=True)`` (pure and C extension), the ``mariadb``
connector ``cursor(binary=True)`` with ``executemany``, node mysql2 ``execute``, and MariaDB
Connector/J with ``useServerPrepStmts=true``. Each is skipped, with the reason, when its
library is not installed (``make install`` installs them)."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.clients import prepared_scenarios
from tests.clients.connector_scenarios import run as run_connector
from tests.clients.connector_scenarios import run_or_skip
from tests.dal_process import ROOT

USERS = [810_007 + i * 7901 for i in range(4)]  # shards on both instances
NODE_DIR = ROOT / "tests" / "clients" / "node"
JAVA_SOURCE = ROOT / "tests" / "clients" / "java" / "Prepared.java"
CONNECTOR_J = Path("/usr/share/java/mariadb-java-client.jar")


def instance_of(shard: int) -> str:
    return "a" if shard < 60 else "b"


def norm(value: object) -> str | None:
    """A value as text, the same whatever the driver returned it as."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return value.decode()
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def norm_rows(rows) -> list[list[str | None]]:
    return [[norm(v) for v in row] for row in rows]


def direct_orders(direct, user: int) -> list[tuple]:
    shard = user % 120
    with direct(instance_of(shard)).cursor() as cur:
        cur.execute(f"SELECT {prepared_scenarios.ORDER_COLUMNS} FROM user_{shard:03d}.orders "
                    "WHERE user_id = %s ORDER BY id", (user,))
        return list(cur.fetchall())


def direct_merchant(direct, merchant_id: int) -> tuple | None:
    with direct("a", "trade").cursor() as cur:
        cur.execute(f"SELECT {prepared_scenarios.MERCHANT_COLUMNS} FROM merchants WHERE id = %s",
                    (merchant_id,))
        return cur.fetchone()


@pytest.fixture
def clean(connect, direct):
    names = []

    def wipe() -> None:
        with connect().cursor() as cur:
            for user in USERS:
                cur.execute("DELETE FROM orders WHERE user_id = %s", (user,))
        with direct("a", "trade").cursor() as cur:
            for name in names:
                cur.execute("DELETE FROM merchants WHERE name = %s", (name,))

    wipe()
    yield names
    wipe()


def check_write(obs: dict, direct, name: str,
                id_bits: int = 64) -> tuple[dict[int, int], int]:
    """What the driver saw matches what the owning shards hold; returns the ids.
    ``id_bits``: the driver's lastrowid keeps only that many bits of the generated id."""
    ids = {int(user): int(order_id) for user, order_id in obs["ids"].items()}
    assert sorted(ids) == sorted(USERS)
    if "lastrowid" in obs:
        mask = (1 << id_bits) - 1
        assert {int(u): int(i) for u, i in obs["lastrowid"].items()} == {
            u: i & mask for u, i in ids.items()}
    after = {user: direct_orders(direct, user) for user in USERS}
    for user in USERS:
        assert [row[0] for row in after[user]] == [ids[user]], f"user {user}: wrong shard"
        before = [list(row) for row in after[user]]
        if user == USERS[0]:
            assert before[0][2] == 5 and before[0][4] == "updated"
            before[0][2], before[0][4] = 2, f"note {user}"
        seen = obs["rows"][str(user)] if str(user) in obs["rows"] else obs["rows"][user]
        assert norm_rows(seen) == norm_rows(before)
    assert int(obs["update_rowcount"]) == 1
    assert norm_rows([obs["aggregate"]]) == [[str(len(USERS)), str(Decimal("12.50")
                                                                   * len(USERS))]]
    assert norm_rows(obs["scatter"]) == norm_rows(sorted(r for u in USERS for r in after[u]))
    if "scatter_unordered" in obs:  # the drivers of tests/clients/prepared_scenarios.py
        assert sorted(norm_rows(obs["scatter_unordered"]), key=lambda r: int(r[0])) == (
            norm_rows(sorted(r for u in USERS for r in after[u])))
    merchant_id = int(obs["merchant_id"])
    row = direct_merchant(direct, merchant_id)
    assert row is not None and row[1] == name and row[2] is None and row[3] == Decimal("3.10")
    assert int(obs["merchant_update_rowcount"]) == 1
    assert norm_rows([obs["merchant"]]) == norm_rows([row])
    return ids, merchant_id


def check_delete(obs: dict, direct, merchant_id: int) -> None:
    assert [int(n) for n in obs["order_rowcounts"]] == [1] * len(USERS)
    assert int(obs["merchant_rowcount"]) == 1
    assert all(direct_orders(direct, user) == [] for user in USERS)
    assert direct_merchant(direct, merchant_id) is None


# -- mysql-connector-python ----------------------------------------------------------------------


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "cext"])
def test_mysql_connector_prepared_cursor(use_pure, dal, direct, clean) -> None:
    name = f"ps-connector-{use_pure}-{time.time_ns()}"
    clean.append(name)
    obs = run_or_skip(use_pure, "prepared", port=dal.port, step="write", users=USERS,
                      name=name)
    ids, merchant_id = check_write(obs, direct, name)
    obs = run_connector(use_pure, "prepared", port=dal.port, step="delete", ids=ids,
                        merchant_id=merchant_id)
    check_delete(obs, direct, merchant_id)


# -- mariadb connector ---------------------------------------------------------------------------


def test_mariadb_connector_binary_and_executemany(dal, direct, clean) -> None:
    mariadb = pytest.importorskip("mariadb", reason="pip package mariadb (needs libmariadb-dev)")
    name = f"ps-mariadb-{time.time_ns()}"
    clean.append(name)
    conn = mariadb.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                           database="trade", autocommit=True)
    try:
        obs = prepared_scenarios.write(lambda: conn.cursor(binary=True), USERS, name)
        # The connector's lastrowid keeps 32 bits of a 64-bit id, directly on MariaDB too.
        ids, merchant_id = check_write(obs, direct, name, id_bits=32)
        # executemany: one prepared INSERT, rows for users on several shards.
        cur = conn.cursor(binary=True)
        rows = [(user, 32, 3, Decimal("1.25"), f"many {user}", prepared_scenarios.CREATED,
                 prepared_scenarios.CREATED) for user in USERS]
        cur.executemany(prepared_scenarios.INSERT_ORDER, rows)
        assert cur.rowcount in (len(USERS), -1)
        for user in USERS:
            notes = [row[4] for row in direct_orders(direct, user)]
            assert f"many {user}" in notes
        cur.executemany("DELETE FROM orders WHERE user_id = ? AND note = ?",
                        [(user, f"many {user}") for user in USERS])
        assert all(len(direct_orders(direct, user)) == 1 for user in USERS)
        cur.close()
        obs = prepared_scenarios.delete(lambda: conn.cursor(binary=True), ids, merchant_id)
        check_delete(obs, direct, merchant_id)
    finally:
        conn.close()


# -- node mysql2 ---------------------------------------------------------------------------------


def run_program(args: list[str], cwd: Path) -> dict:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return json.loads(proc.stdout)


def test_node_mysql2_execute(dal, direct, clean) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "mysql2").is_dir():
        pytest.skip("npm package mysql2 is not installed (make install runs npm install in "
                    "tests/clients/node; npm may be unreachable)")
    name = f"ps-node-{time.time_ns()}"
    clean.append(name)
    script = ["node", "prepared.js", str(dal.port)]
    obs = run_program([*script, "write", name, *map(str, USERS)], NODE_DIR)
    ids, merchant_id = check_write(obs, direct, name)
    obs = run_program([*script, "delete", json.dumps({str(u): str(i) for u, i in ids.items()}),
                       str(merchant_id)], NODE_DIR)
    check_delete(obs, direct, merchant_id)


# -- MariaDB Connector/J -------------------------------------------------------------------------


def test_connector_j_server_prepared(dal, direct, clean, tmp_path) -> None:
    if shutil.which("javac") is None or not CONNECTOR_J.exists():
        pytest.skip("javac or MariaDB Connector/J (apt package libmariadb-java) missing")
    compiled = subprocess.run(["javac", "-d", str(tmp_path), str(JAVA_SOURCE)],
                              capture_output=True, timeout=120, check=False)
    assert compiled.returncode == 0, compiled.stderr.decode(errors="replace")
    name = f"ps-java-{time.time_ns()}"
    clean.append(name)
    java = ["java", "-cp", f"{tmp_path}:{CONNECTOR_J}", "Prepared", str(dal.port)]
    obs = run_program([*java, "write", name, *map(str, USERS)], tmp_path)
    ids, merchant_id = check_write(obs, direct, name)
    pairs = ",".join(f"{u}:{i}" for u, i in ids.items())
    obs = run_program([*java, "delete", pairs, str(merchant_id)], tmp_path)
    check_delete(obs, direct, merchant_id)
