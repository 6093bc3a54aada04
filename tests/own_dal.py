"""A DAL process of a test's own, with extra config sections, and a /metrics reader."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pymysql

from tests.dal_process import ROOT, DalProcess, start_own_dal
from tests.metrics_scrape import scrape, value

HOST = "127.0.0.1"


class OwnDal:
    """A running DAL with its config file, ports and connection helpers."""

    def __init__(self, proc: DalProcess, path: Path, raw: dict) -> None:
        self.proc = proc
        self.path = path
        self.raw = raw
        self.port = proc.port
        self.metrics_port = raw["server"]["metrics"]["port"]

    def connect(self, user: str = "app", password: str = "app", **kwargs: object):
        options: dict = {"autocommit": True, "connect_timeout": 10, "read_timeout": 30,
                         "database": "trade", **kwargs}
        return pymysql.connect(host=HOST, port=self.port, user=user, password=password,
                               **options)

    def admin(self, sql: str) -> list[dict]:
        """Run one admin statement; its rows as dicts."""
        conn = self.connect("admin", "admin", cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        return value(scrape(self.metrics_port), name, **labels)


@contextlib.contextmanager
def own_dal(tmp_path: Path, **sections: object) -> Iterator[OwnDal]:
    """Start DAL on free ports with test.yaml plus ``sections`` (top-level keys replaced,
    ``pool`` and ``users`` merged); stop it at the end."""
    proc, raw, path = start_own_dal(tmp_path, ROOT / "var" / "test" / "dal-own.log", sections,
                                    read_timeout=2.0, login_timeout=3.0)
    try:
        yield OwnDal(proc, path, raw)
    finally:
        proc.stop()


LIMITED_USERS = {"limited": {"password": "limited", "role": "app", "databases": ["trade"]}}


@contextlib.contextmanager
def dal_with_a_foreign_database(directory: Path, name: str, other: str, table: str,
                                **sections: object) -> Iterator[tuple[DalProcess, dict]]:
    """A DAL of its own with the user ``limited`` (databases [trade]) and a created logical
    database ``other`` that it may not use, holding ``table`` (id, v) with the row (1,
    'only-admins'); both dropped and stopped at the end. ``sections``: as for `own_dal`."""
    from tests.dal_process import running_test_config

    running_test_config()
    proc, raw, _ = start_own_dal(directory, ROOT / "var" / "test" / f"dal-{name}.log",
                                 {"users": LIMITED_USERS, **sections})
    admin = pymysql.connect(host=HOST, port=proc.port, user="admin", password="admin",
                            database="trade", autocommit=True, connect_timeout=10)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {other}")
        cur.execute(f"CREATE DATABASE {other}")
        cur.execute(f"CREATE TABLE {other}.{table} (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {other}.{table} VALUES (1, 'only-admins')")
    try:
        yield proc, raw
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {other}")
        admin.close()
        proc.stop()
