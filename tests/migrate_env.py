"""A migration of its own for tests: the logical database `mt` (120 user and 120 merchant
shards, as the genes of order ids need) on the test instances, moved from the legacy database
`user_mt_legacy`, so that rows other tests leave in `trade`'s shards never count.

The names all start with ``user_``/``merchant_``: DAL's backend account already holds its
grants on those prefixes (tools/accounts.py), so a DAL serving `mt` needs no new grant and the
test instances' grants stay exactly what `dal localdb up` gives them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pymysql
import yaml

from tests.dal_process import ROOT, TEST_CONFIG, dba_login

DB = "mt"
LEGACY = "user_mt_legacy"
SHARDS = 120
DIFF = re.compile(r"^(missing|extra|changed) (\w+) id=(\d+) ", re.M)


def mt_section(merchant_copy: str = "direct") -> dict:
    """The config section of `mt`."""
    def dim(key: str, prefix: str) -> dict:
        return {"key": key, "shards": SHARDS, "prefix": prefix,
                "placement": [{"shards": f"0-{SHARDS // 2 - 1}", "instance": "a"},
                              {"shards": f"{SHARDS // 2}-{SHARDS - 1}", "instance": "b"}]}

    return {
        "default_instance": "a", "default_database": "user_mt_main", "authoritative": "user",
        "schema": str(ROOT / "config" / "schema" / "trade.sql"),
        "dimensions": {"user": dim("user_id", "user_mt_"),
                       "merchant": dim("merchant_id", "merchant_mt_")},
        "tables": {"orders": {"kind": "sharded", "genes": ["id"], "generated": "id"},
                   "order_items": {"kind": "bound", "bound_to": "orders",
                                   "genes": ["id", "order_id"], "generated": "id"},
                   "regions": {"kind": "broadcast"}, "merchants": {"kind": "unsharded"}},
        "migration": {"source_instance": "a", "source_database": LEGACY,
                      "tables": ["orders", "order_items"], "merchant_copy": merchant_copy,
                      "shadow_rate": 1.0, "write_pause": 5.0},
    }


def write_mt_config(path: Path, **server: object) -> dict:
    """test.yaml with `mt` as its only logical database; returns the raw dict."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["databases"] = {DB: mt_section()}
    raw["server"].update(server)
    path.write_text(yaml.safe_dump(raw))
    return raw


def dal(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`dal ARGS...` as a subprocess from the repository root."""
    return subprocess.run([sys.executable, "-m", "dal.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def migrate_argv(config: Path, sub: str, *args: str) -> list[str]:
    """The command line of `dal migrate SUB --config CONFIG ARGS...` (no progress bars)."""
    quiet = ["--no-progress"] if sub in ("backfill", "verify", "demo") else []
    return [sys.executable, "-m", "dal.cli", "migrate", sub, "--config", str(config), *args,
            *quiet]


def migrate(config: Path, sub: str, *args: str, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    """`dal migrate SUB --config CONFIG ARGS...`, waited for."""
    return subprocess.run(migrate_argv(config, sub, *args), cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def create(config: Path) -> None:
    """The databases of `mt` created where missing (`dal schema apply`)."""
    done = dal("schema", "apply", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr


def prepare(config: Path, rows: int, seed: int = 1) -> None:
    """Legacy refilled with ``rows`` demo orders; the shards and control rows of `mt` empty."""
    done = migrate(config, "demo", "--rows", str(rows), "--seed", str(seed), "--reset",
                   "--force")
    assert done.returncode == 0, done.stdout + done.stderr


def direct(raw: dict, instance: str = "a", **options: object) -> pymysql.connections.Connection:
    """A DBA connection to a test instance (autocommit)."""
    inst = raw["instances"][instance]
    user, password = dba_login()
    options = {"autocommit": True, **options}
    return pymysql.connect(host=inst["host"], port=inst["port"], user=user, password=password,
                           **options)


def set_phase(raw: dict, phase: str, max_legacy_id: int | None = None) -> None:
    """Write `mt`'s phase row directly (for the tools' tests, where no DAL runs)."""
    conn = direct(raw)
    try:
        with conn.cursor() as cur:
            if max_legacy_id is None:
                cur.execute(f"SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM {LEGACY}.orders),"
                            f" (SELECT COALESCE(MAX(id), 0) FROM {LEGACY}.order_items))")
                max_legacy_id = int(cur.fetchone()[0])
            cur.execute("UPDATE dal_meta.migration_phase SET phase = %s, state = 'active', "
                        "next_phase = NULL, version = version + 1, max_legacy_id = %s "
                        "WHERE db = %s", (phase, max_legacy_id, DB))
    finally:
        conn.close()


def shard_of(user_id: int) -> tuple[str, str]:
    """(instance, database) of a user id's user shard in `mt`."""
    shard = user_id % SHARDS
    return ("a" if shard < SHARDS // 2 else "b"), f"user_mt_{shard:03d}"


def user_rows(raw: dict, table: str) -> dict[int, tuple]:
    """Every row of ``table`` over `mt`'s user shards: {id: row}."""
    out: dict[int, tuple] = {}
    for instance in ("a", "b"):
        conn = direct(raw, instance)
        try:
            with conn.cursor() as cur:
                for shard in range(SHARDS):
                    if shard_of(shard)[0] != instance:
                        continue
                    cur.execute(f"SELECT * FROM user_mt_{shard:03d}.{table}")
                    for row in cur.fetchall():
                        assert row[0] not in out, f"{table} id={row[0]} on two shards"
                        out[row[0]] = row
        finally:
            conn.close()
    return out


def legacy_rows(raw: dict, table: str) -> dict[int, tuple]:
    conn = direct(raw)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {LEGACY}.{table}")
            return {row[0]: row for row in cur.fetchall()}
    finally:
        conn.close()

