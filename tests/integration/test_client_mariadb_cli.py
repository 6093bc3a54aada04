"""The `mariadb` command-line client against DAL: batch mode (-e, --batch
--skip-column-names) doing CRUD on `merchants`, and an interactive start under a
pseudo-terminal without -A, which lists the tables and sends COM_FIELD_LIST for each of them
(for name completion) before the first prompt.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.clients.merchants import count_direct, purge, unique_prefix
from tests.clients.pty_session import PtySession

MARIADB = "/usr/bin/mariadb"
TIMESTAMP6 = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")

pytestmark = pytest.mark.skipif(not Path(MARIADB).exists() and not shutil.which("mariadb"),
                                reason=f"{MARIADB} is not installed")


@pytest.fixture
def prefix(direct):
    value = unique_prefix("cli")
    yield value
    purge(direct("a", "trade"), value)


@pytest.fixture
def cli_env(tmp_path):
    """No option files, no history, a UTF-8 locale, a dumb terminal."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "LANG": "C.UTF-8", "TERM": "dumb", "MYSQL_HISTFILE": "/dev/null"}


def base_args(port: int) -> list[str]:
    return [MARIADB, "--no-defaults", "-h127.0.0.1", f"-P{port}", "-uapp", "-papp",
            "--default-character-set=utf8mb4", "--connect-timeout=10"]


@pytest.fixture
def batch(dal, cli_env, connect):
    """Runs `mariadb ... trade --batch --skip-column-names [-vvv] -e SQL`. Depends on
    `connect` so that every test ends with the pools-idle check."""

    def run(sql: str, verbose: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        args = [*base_args(dal.port), "trade", "--batch", "--skip-column-names"]
        if verbose:
            args.append("-vvv")
        proc = subprocess.run([*args, "-e", sql], capture_output=True, text=True, timeout=60,
                              env=cli_env, check=False)
        if check:
            assert proc.returncode == 0, f"mariadb exited {proc.returncode}: {proc.stderr}"
            assert "ERROR" not in proc.stderr, proc.stderr
        return proc

    return run


def rows(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines() if line]


def test_batch_crud(batch, direct, prefix):
    name = prefix + "batch 😀 café"
    out = batch(f"INSERT INTO merchants (name, region_id, rating) VALUES ('{name}', 3, 4.5); "
                f"SELECT id FROM merchants WHERE name = '{name}'").stdout
    ((merchant_id,),) = rows(out)
    merchant_id = int(merchant_id)
    assert merchant_id > 0

    select = ("SELECT id, name, region_id, rating, created_at FROM merchants "
              f"WHERE id = {merchant_id}")
    ((got_id, got_name, region, rating, created),) = rows(batch(select).stdout)
    assert (int(got_id), got_name, region, rating) == (merchant_id, name, "3", "4.50")
    assert TIMESTAMP6.match(created), created

    backend = direct("a", "trade")
    with backend.cursor() as cur:
        cur.execute("SELECT name, region_id, rating FROM trade.merchants WHERE id = %s",
                    (merchant_id,))
        assert cur.fetchone() == (name, 3, Decimal("4.50"))

    # The affected-row counts and the info string come from the backend's OK packet.
    out = batch(f"UPDATE merchants SET rating = NULL, region_id = region_id + 1 "
                f"WHERE id = {merchant_id}", verbose=True).stdout
    assert "Query OK, 1 row affected" in out
    assert "Rows matched: 1  Changed: 1  Warnings: 0" in out
    ((_, _, region, rating, _),) = rows(batch(select).stdout)
    assert (region, rating) == ("4", "NULL")

    out = batch(f"DELETE FROM merchants WHERE id = {merchant_id}", verbose=True).stdout
    assert "Query OK, 1 row affected" in out
    assert batch(select).stdout == ""
    assert count_direct(backend, merchant_id) == 0


def test_batch_reports_backend_errors(batch):
    proc = batch("SELECT * FROM no_such_table_cli", check=False)
    assert proc.returncode == 1
    assert ("ERROR 1146 (42S02) at line 1: Table 'trade.no_such_table_cli' doesn't exist"
            in proc.stderr)
    # Batch mode stops at the first error: nothing after it ran.
    proc = batch("SELECT 'before'; SELECT * FROM no_such_table_cli; SELECT 'after'",
                 check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["before"]


def test_batch_metadata_statements(batch):
    assert batch("SHOW DATABASES").stdout.splitlines() == ["information_schema", "trade"]
    tables = set(batch("SHOW TABLES").stdout.splitlines())
    assert {"merchants", "order_items", "orders", "regions"} <= tables
    out = batch("SELECT DATABASE(); SELECT @@version").stdout.splitlines()
    assert out[0] == "trade"
    assert "MariaDB" in out[1]


def test_interactive_start_reads_table_information(dal, cli_env, connect, direct, prefix):
    """Without -A the client runs SHOW DATABASES and SHOW TABLES, then COM_FIELD_LIST for
    every table, before its first prompt; it must start cleanly, complete a column name it
    learned that way, run statements and quit."""
    name = prefix + "interactive"
    with connect().cursor() as cur:
        cur.execute("INSERT INTO merchants (name, rating) VALUES (%s, 4.5)", (name,))
        merchant_id = cur.lastrowid

    session = PtySession([*base_args(dal.port), "trade"], env=cli_env)
    try:
        session.expect(r"MariaDB \[trade\]> ", timeout=30)
        start = session.text()
        assert "Reading table information for completion of table and column names" in start
        assert "Didn't find any fields in table" not in start  # a COM_FIELD_LIST failed
        assert "Server version: " in start and "MariaDB" in start

        mark = len(session.text())
        session.send(f"SELECT name FROM merchants WHERE id={merchant_id};\n")
        session.expect(r"1 row in set", start=mark)
        assert re.search(rf"\|\s*{re.escape(name)}\s*\|", session.text()[mark:])

        # Column completion works only from the COM_FIELD_LIST answers: "rati" + TAB.
        mark = len(session.text())
        session.send("SELECT rati\t")
        session.expect(r"SELECT rating ", start=mark, timeout=10)
        session.send(f" FROM merchants WHERE id={merchant_id};\n")
        session.expect(r"1 row in set", start=mark)
        assert re.search(r"\|\s*4\.50\s*\|", session.text()[mark:])

        mark = len(session.text())
        session.send(f"UPDATE merchants SET rating = 1.25 WHERE id={merchant_id};\n")
        session.expect(r"Rows matched: 1  Changed: 1  Warnings: 0", start=mark)

        mark = len(session.text())
        session.send("quit\n")
        session.expect(r"Bye", start=mark)
        assert session.wait(timeout=15) == 0
    finally:
        session.close()
    assert "ERROR" not in session.text(), session.text()

    backend = direct("a", "trade")
    with backend.cursor() as cur:
        cur.execute("SELECT rating FROM trade.merchants WHERE id = %s", (merchant_id,))
        assert cur.fetchone() == (Decimal("1.25"),)
    with connect().cursor() as cur:
        assert cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,)) == 1
    assert count_direct(backend, merchant_id) == 0


@pytest.mark.parametrize("user", ["app", "legacy", "modern"])
@pytest.mark.parametrize("default_auth", [None, "caching_sha2_password"])
def test_batch_login_as_each_user(dal, cli_env, connect, user, default_auth):
    """libmariadb's own auth plugins: `legacy` (native hash only) logs in with
    mysql_native_password; `modern` (sha2 hash only) is switched to caching_sha2_password.
    With --default-auth=caching_sha2_password libmariadb answers the greeting with no data and
    waits for a switch. A wrong password is refused with 1045."""
    args = [MARIADB, "--no-defaults", "-h127.0.0.1", f"-P{dal.port}", f"-u{user}",
            "--connect-timeout=10", "trade", "--batch", "--skip-column-names"]
    if default_auth:
        args.append(f"--default-auth={default_auth}")
    ok = subprocess.run([*args, f"-p{user}", "-e", "SELECT DATABASE(), COUNT(*) >= 0 FROM "
                         "merchants"], capture_output=True, text=True, timeout=60,
                        env=cli_env, check=False)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "trade\t1\n", "")
    bad = subprocess.run([*args, "-pwrong", "-e", "SELECT 1"], capture_output=True, text=True,
                         timeout=60, env=cli_env, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"ERROR 1045 (28000): Access denied for user '{user}'@")
    assert "(using password: YES)" in bad.stderr
    assert bad.stdout == ""
