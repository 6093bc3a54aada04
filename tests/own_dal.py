"""A DAL process of a test's own, with extra config sections, and a /metrics reader."""

from __future__ import annotations

import contextlib
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymysql
import yaml

from tests.dal_process import ROOT, DalProcess, free_port, write_config

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
        with urllib.request.urlopen(f"http://{HOST}:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if match and match.group(1) == name:
                got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
                if got == want:
                    return float(match.group(3))
        return 0.0


@contextlib.contextmanager
def own_dal(tmp_path: Path, **sections: object) -> Iterator[OwnDal]:
    """Start DAL on free ports with test.yaml plus ``sections`` (top-level keys replaced,
    ``pool`` and ``users`` merged); stop it at the end."""
    path = tmp_path / "dal.yaml"
    raw = write_config(path, read_timeout=2.0, login_timeout=3.0,
                       listen={"host": HOST, "port": free_port()},
                       metrics={"host": HOST, "port": free_port()})
    for key, value in sections.items():
        if key in ("pool", "users"):
            raw[key] = {**raw.get(key, {}), **value}  # type: ignore[dict-item]
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw))
    log = ROOT / "var" / "test" / "dal-own.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = DalProcess(path, raw["server"]["listen"]["port"], log).start()
    try:
        yield OwnDal(proc, path, raw)
    finally:
        proc.stop()
