"""Shared fixtures: one `dal serve` for the test session, connection factories, and the check
that every test leaves every backend connection back in its pool."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest

from tests.dal_process import ROOT, DalProcess, dba_login, free_port, write_config

HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def dal_config(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("dal") / "dal.yaml"
    # Free ports, so that concurrent test runs (and a running `make run`) never collide.
    raw = write_config(path, read_timeout=2.0, login_timeout=3.0,
                       listen={"host": HOST, "port": free_port()},
                       metrics={"host": HOST, "port": free_port()})
    return path, raw


@pytest.fixture(scope="session")
def dal(dal_config: tuple[Path, dict]) -> Iterator[DalProcess]:
    """The DAL process under test, with the backends of config/test.yaml."""
    path, raw = dal_config
    port = raw["server"]["listen"]["port"]
    proc = DalProcess(path, port, ROOT / "var" / "test" / "dal.log").start()
    yield proc
    code = proc.stop()
    assert code == 0, f"dal serve exited with {code}; see var/test/dal.log"


@pytest.fixture(scope="session")
def backends(dal_config: tuple[Path, dict]) -> dict[str, dict]:
    """Backend instance addresses by name, for direct checks."""
    return dal_config[1]["instances"]


class Connections:
    """Opens connections and closes them all when the test ends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: list = []

    def __call__(self, user: str = "app", password: str = "app", database: str | None = "trade",
                 **kwargs: object) -> pymysql.connections.Connection:
        options: dict = {"autocommit": True, "connect_timeout": 10, "read_timeout": 30, **kwargs}
        conn = pymysql.connect(host=HOST, port=self.port, user=user, password=password,
                               database=database, **options)
        self.opened.append(conn)
        return conn

    def track(self, conn: object) -> object:
        self.opened.append(conn)
        return conn

    def close_all(self) -> None:
        for conn in self.opened:
            with contextlib.suppress(Exception):
                conn.close()  # type: ignore[attr-defined]
        self.opened.clear()


def pool_rows(port: int) -> list[dict]:
    """`SHOW DAL POOLS` as dicts, read through a fresh admin connection."""
    conn = pymysql.connect(host=HOST, port=port, user="admin", password="admin",
                           cursorclass=pymysql.cursors.DictCursor, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DAL POOLS")
            return list(cur.fetchall())
    finally:
        conn.close()


def assert_pools_idle(port: int, timeout: float = 5.0) -> None:
    """Every backend connection is back in its pool (or closed) within ``timeout``."""
    deadline = time.monotonic() + timeout
    rows = pool_rows(port)
    while any(r["in_use"] or r["connecting"] for r in rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = pool_rows(port)
    busy = {r["instance"]: r["in_use"] for r in rows if r["in_use"] or r["connecting"]}
    assert not busy, f"backend connections not returned to their pools: {busy}"


@pytest.fixture
def connect(dal: DalProcess) -> Iterator[Callable[..., pymysql.connections.Connection]]:
    """A factory of pymysql connections to DAL. After the test, all are closed and every pool
    must be idle again: no test may leak a backend connection."""
    conns = Connections(dal.port)
    yield conns
    conns.close_all()
    assert_pools_idle(dal.port)


@pytest.fixture(params=[True, False], ids=["pure", "cext"])
def use_pure(request: pytest.FixtureRequest) -> bool:
    """mysql-connector's implementation under test: pure Python, or the C extension."""
    return request.param


@pytest.fixture
def scenario(use_pure: bool, connect) -> Callable[..., object]:
    """Runs a mysql-connector scenario (tests/clients/connector_scenarios.py) with the
    implementation under test. Depends on `connect`, so that every test ends with the check
    that all backend connections are back in their pools."""
    from tests.clients.connector_scenarios import run_or_skip

    return functools.partial(run_or_skip, use_pure)


@pytest.fixture
def direct(backends: dict[str, dict]) -> Iterator[Callable[..., pymysql.connections.Connection]]:
    """A factory of direct pymysql connections to a backend instance, closed after the test."""
    opened: list = []

    def open_direct(instance: str = "a", database: str | None = None,
                    account: str = "dal") -> pymysql.Connection:
        """``account``: "dal" (DAL's backend account), "dba" (scratch databases, binlog
        status) or "root" (fault injection: seeing and killing DAL's sessions)."""
        cfg = backends[instance]
        user, password = {"dal": (cfg["user"], cfg["password"]), "dba": dba_login(),
                          "root": ("root", "")}[account]
        conn = pymysql.connect(host=cfg["host"], port=cfg["port"], user=user,
                               password=password, database=database, autocommit=True)
        opened.append(conn)
        return conn

    yield open_direct
    for conn in opened:
        conn.close()
