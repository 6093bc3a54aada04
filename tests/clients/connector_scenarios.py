"""mysql-connector-python scenarios, run with the pure-Python implementation in the test
process, or with the C extension in a child process.

Why a child process for the C extension: the wheel's ``_mysql_connector`` links against the
OpenSSL it bundles (mysql/vendor/libssl.so.3, which needs OPENSSL_3.2.0 symbols). Once the
interpreter has loaded the system's older libssl.so.3 (Python's ``ssl`` module, imported by
pymysql, hence by tests/conftest.py), the dynamic linker reuses it and the C extension fails to
load: ``mysql.connector.HAVE_CEXT`` is False inside pytest. A fresh interpreter that imports
``_mysql_connector`` before anything imports ``ssl`` loads it fine. The child reports
``HAVE_CEXT`` itself; only if it is False there is the C-extension variant skipped.

A scenario returns plain values (tuples, Decimal, datetime), so that the test can assert on
them the same way for both implementations. Nothing here imports ``ssl`` at module level.
"""

from __future__ import annotations

import datetime
import pickle
import subprocess
import sys
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
COLUMNS = "id, name, region_id, rating, created_at"
CREATED = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)

_CHILD = """
try:
    import _mysql_connector  # noqa: F401  (first: see tests/clients/connector_scenarios.py)
except ImportError as exc:
    problem = f"_mysql_connector cannot be imported: {exc}"
else:
    problem = None
from tests.clients.connector_scenarios import child_main
child_main(problem)
"""


class CextUnavailable(Exception):
    """The C extension cannot be used even in a fresh interpreter."""


def _connect(use_pure: bool, port: int, user: str = "app", password: str = "app",
             database: str | None = "trade", host: str = HOST, **kwargs: Any):
    import mysql.connector

    options = {"ssl_disabled": True, "connection_timeout": 10, **kwargs}  # TLS: opt in
    return mysql.connector.connect(host=host, port=port, user=user, password=password,
                                   database=database, use_pure=use_pure, **options)


def crud(use_pure: bool, port: int, prefix: str) -> dict[str, Any]:
    """Insert, read, update and roll back on `merchants` with autocommit off (the
    connector's default). Leaves the committed row in place for the caller to check."""
    obs: dict[str, Any] = {}
    conn = _connect(use_pure, port)
    try:
        obs["class"] = type(conn).__name__
        obs["autocommit"] = conn.autocommit
        obs["database"] = conn.database
        obs["charset"] = conn.charset
        obs["server_info"] = conn.server_info
        obs["connection_id"] = conn.connection_id
        cur = conn.cursor()
        cur.execute("SELECT DATABASE(), @@version")
        obs["database_version"] = cur.fetchone()

        name = prefix + "connector 😀"
        cur.execute("INSERT INTO merchants (name, region_id, rating, created_at) "
                    "VALUES (%s, %s, %s, %s)", (name, 7, Decimal("4.25"), CREATED))
        obs["name"] = name
        obs["insert_rowcount"] = cur.rowcount
        obs["id"] = merchant_id = cur.lastrowid
        obs["in_transaction"] = conn.in_transaction
        cur.execute(f"SELECT {COLUMNS} FROM merchants WHERE id = %s", (merchant_id,))
        obs["row_in_transaction"] = cur.fetchone()
        conn.commit()
        obs["in_transaction_after_commit"] = conn.in_transaction

        cur.execute("UPDATE merchants SET rating = %s, region_id = NULL WHERE id = %s",
                    (Decimal("3.10"), merchant_id))
        obs["update_rowcount"] = cur.rowcount
        cur.execute("UPDATE merchants SET rating = %s WHERE id = %s",
                    (Decimal("3.10"), merchant_id))
        obs["noop_update_rowcount"] = cur.rowcount
        conn.commit()
        cur.execute(f"SELECT {COLUMNS} FROM merchants WHERE id = %s", (merchant_id,))
        obs["row_updated"] = cur.fetchone()

        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (prefix + "rolled-back",))
        obs["rolled_back_id"] = cur.lastrowid
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM merchants WHERE id = %s", (obs["rolled_back_id"],))
        obs["rolled_back_count"] = cur.fetchone()[0]

        cur.execute("SELECT CAST('x' AS SIGNED)")
        obs["cast"] = cur.fetchall()
        cur.execute("SHOW WARNINGS")
        obs["warnings"] = cur.fetchall()
        conn.rollback()
        cur.close()
    finally:
        conn.close()
    return obs


def delete(use_pure: bool, port: int, merchant_id: int) -> dict[str, Any]:
    """Delete one merchant and commit; report the rowcount and what a re-read finds."""
    conn = _connect(use_pure, port)
    try:
        cur = conn.cursor()
        cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))
        rowcount = cur.rowcount
        conn.commit()
        cur.execute(f"SELECT {COLUMNS} FROM merchants WHERE id = %s", (merchant_id,))
        after = cur.fetchall()
        cur.close()
    finally:
        conn.close()
    return {"rowcount": rowcount, "after": after}


def login(use_pure: bool, port: int, user: str, password: str, host: str = HOST,
          database: str | None = "trade", **kwargs: Any) -> dict[str, Any]:
    """Log in; report the default database and the session's view of it, or the error."""
    try:
        conn = _connect(use_pure, port, user, password, database, host, **kwargs)
    except Exception as exc:
        return {"error": {"type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                          "msg": getattr(exc, "msg", str(exc)),
                          "context": repr(exc.__context__)}}
    try:
        cur = conn.cursor()
        cur.execute("SELECT DATABASE()")
        database_now = cur.fetchone()[0]
        cur.close()
        return {"class": type(conn).__name__, "database": database_now}
    finally:
        conn.close()


def change_user(use_pure: bool, port: int, to_user: str, to_password: str, merchant: str,
                database: str | None = "trade") -> dict[str, Any]:
    """As `app`: set a user variable, open a transaction that inserts merchant ``merchant``,
    then COM_CHANGE_USER to ``to_user``; report what the session sees afterwards, or the
    error and what the (still open) connection then sees."""
    obs: dict[str, Any] = {}
    conn = _connect(use_pure, port)
    try:
        cur = conn.cursor()
        cur.execute("SET @marker = 42")
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (merchant,))
        obs["in_transaction"] = conn.in_transaction
        cur.close()
        try:
            conn.cmd_change_user(username=to_user, password=to_password, database=database)
        except Exception as exc:
            obs["error"] = {"errno": getattr(exc, "errno", None),
                            "msg": getattr(exc, "msg", str(exc))}
        cur = conn.cursor()
        cur.execute("SELECT @marker, DATABASE(), COUNT(*) FROM trade.merchants WHERE name = %s",
                    (merchant,))
        obs["after"] = cur.fetchone()
        try:
            cur.execute("SHOW DAL POOLS")
            cur.fetchall()
            obs["admin"] = True
        except Exception as exc:
            obs["admin"] = getattr(exc, "errno", None)
        cur.close()
    finally:
        conn.close()
    return obs


SCENARIOS = {"crud": crud, "delete": delete, "login": login, "change_user": change_user}


def prepared(use_pure: bool, port: int, step: str, **kwargs: Any) -> dict[str, Any]:
    """A tests/clients/prepared_scenarios.py step with ``cursor(prepared=True)``."""
    from tests.clients import prepared_scenarios

    conn = _connect(use_pure, port, autocommit=True)
    try:
        return getattr(prepared_scenarios, step)(lambda: conn.cursor(prepared=True), **kwargs)
    finally:
        conn.close()


SCENARIOS["prepared"] = prepared


def run_or_skip(use_pure: bool, scenario: str, **kwargs: Any) -> Any:
    """`run`, skipping the calling test when the C extension cannot be used at all."""
    import pytest

    try:
        return run(use_pure, scenario, **kwargs)
    except CextUnavailable as exc:
        pytest.skip(f"mysql-connector C extension unavailable: {exc}")


def run(use_pure: bool, scenario: str, **kwargs: Any) -> Any:
    """Run a scenario with the pure implementation here, or with the C extension in a child
    interpreter; raises `CextUnavailable` if the child cannot use the C extension."""
    if use_pure:
        return SCENARIOS[scenario](True, **kwargs)
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps((scenario, kwargs)),
                          capture_output=True, timeout=120, cwd=ROOT, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"C-extension child exited with {proc.returncode}:\n"
                           f"{proc.stderr.decode(errors='replace')}")
    status, value = pickle.loads(proc.stdout)
    if status == "unavailable":
        raise CextUnavailable(value)
    if status == "failed":
        raise RuntimeError(f"C-extension scenario {scenario!r} failed in the child:\n{value}")
    return value


def child_main(problem: str | None) -> None:
    """The child's side of `run`: a pickled (scenario, kwargs) in, a pickled result out."""
    scenario, kwargs = pickle.loads(sys.stdin.buffer.read())
    if problem is None:
        import mysql.connector

        if not mysql.connector.HAVE_CEXT:
            try:
                import mysql.connector.connection_cext  # for the reason
            except ImportError as exc:
                problem = f"mysql.connector.HAVE_CEXT is False: {exc}"
            else:
                problem = "mysql.connector.HAVE_CEXT is False"
    if problem is not None:
        result: tuple[str, Any] = ("unavailable", problem)
    else:
        try:
            result = ("ok", SCENARIOS[scenario](False, **kwargs))
        except Exception:
            result = ("failed", traceback.format_exc())
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()
