"""A live migration's test set-up on the test instances: the legacy database `legacy_trade` on
instance a (created as root, DAL's account granted on it for the test only), clean control
rows, DAL processes of the test's own with a `migration` section, and direct backend reads."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

import pymysql
import yaml

from config.model import Config
from dal.migration import control
from tests.dal_process import ROOT, TEST_CONFIG, DalProcess, running_test_config, start_own_dal
from tests.metrics_scrape import scrape, value

DB = "trade"
LEGACY = "legacy_trade"
SHARDS = 120
TABLES = ("orders", "order_items")


def _managed(config: Config, name: str):
    from tools import localdb

    return next(m for m in localdb.managed(config) if m.name == name)


class MigrationEnv:
    """The backends of the test config, seen directly."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.raw = yaml.safe_load(TEST_CONFIG.read_text())

    def connect(self, instance: str, database: str | None = None) -> pymysql.connections.Connection:
        """DAL's backend account on ``instance``."""
        inst = self.config.instances[instance]
        return pymysql.connect(host=inst.host, port=inst.port, user=inst.user,
                               password=inst.password, database=database, autocommit=True,
                               connect_timeout=5)

    def root(self, instance: str = "a") -> pymysql.connections.Connection:
        from tools import localdb

        return localdb.root_connect(_managed(self.config, instance))

    def setup(self) -> None:
        """A fresh legacy database with DAL's rights on it, and clean control rows."""
        schema = (ROOT / "config" / "schema" / "legacy_trade.sql").read_text()
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {LEGACY}")
                cur.execute(f"CREATE DATABASE {LEGACY}")
                cur.execute(f"USE {LEGACY}")
                for stmt in schema.split(";"):
                    if "CREATE TABLE" in stmt:
                        cur.execute(stmt)
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `legacy\\_trade`.* TO "
                                f"%s@'{host}'", (self.config.instances["a"].user,))
        finally:
            conn.close()
        self.reset_control()

    def reset_control(self) -> None:
        """No phase row, acks, lookup, repair or backfill entries for `trade`."""
        with contextlib.closing(self.connect("a")) as conn, conn.cursor() as cur:
            control.ensure_tables(cur)
            for table in ("migration_phase", "migration_lookup", "migration_repair",
                          "migration_backfill", "migration_acks"):
                cur.execute(f"DELETE FROM dal_meta.{table} WHERE db = %s", (DB,))

    def teardown(self, users: range) -> None:
        """Drop the legacy database, restore DAL's grants, delete the test's shard rows."""
        from tools import localdb

        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {LEGACY}")
        finally:
            conn.close()
        localdb.up_one(_managed(self.config, "a"), lambda line: None)
        self.delete_shard_rows(users)
        self.reset_control()

    def delete_shard_rows(self, users: range) -> None:
        """Delete the rows of these users from every user and merchant shard."""
        conns = {name: self.connect(name) for name in ("a", "b")}
        try:
            for shard in range(SHARDS):
                with conns[self.instance_of(shard)].cursor() as cur:
                    for prefix in ("user", "merchant"):
                        for table in TABLES:
                            cur.execute(f"DELETE FROM {prefix}_{shard:03d}.{table} WHERE "
                                        "user_id BETWEEN %s AND %s",
                                        (users.start, users.stop - 1))
        finally:
            for conn in conns.values():
                conn.close()

    def instance_of(self, shard: int) -> str:
        """The instance of user (and merchant) shard ``shard`` in the test topology."""
        return self.config.shard_instance(DB, "user", shard)

    def set_phase(self, phase: str, max_legacy_id: int = 0) -> None:
        """Put the phase row straight to ``phase`` (active), version + 1."""
        with contextlib.closing(self.connect("a")) as conn, conn.cursor() as cur:
            control.ensure_phase(cur, DB)
            row = control.read_phase(cur, DB)
            control.write_phase(cur, DB, phase, control.ACTIVE, None, row.version + 1,
                                max_legacy_id)

    def phase(self) -> control.PhaseRow:
        with contextlib.closing(self.connect("a")) as conn, conn.cursor() as cur:
            return control.read_phase(cur, DB)

    def legacy_rows(self, table: str, where: str = "1", args: tuple = ()) -> list[tuple]:
        """Rows of a legacy table, ordered by id."""
        with contextlib.closing(self.connect("a", LEGACY)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY id", args)
            return list(cur.fetchall())

    def shard_rows(self, table: str, user: int, where: str = "1", args: tuple = (),
                   dimension: str = "user", key: int | None = None) -> list[tuple]:
        """Rows of ``table`` on the shard of ``user`` (or of ``key`` in ``dimension``)."""
        shard = (user if key is None else key) % SHARDS
        with contextlib.closing(self.connect(self.instance_of(shard))) as conn, \
                conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {dimension}_{shard:03d}.{table} WHERE {where} "
                        f"ORDER BY id", args)
            return list(cur.fetchall())

    def everywhere(self, table: str, row_id: int) -> list[str]:
        """Every user and merchant shard database holding row ``row_id`` of ``table``."""
        found = []
        for instance in ("a", "b"):
            with contextlib.closing(self.connect(instance)) as conn, conn.cursor() as cur:
                # trade's shard databases only: other tests' migrations (`mt`) have their own
                cur.execute("SELECT table_schema FROM information_schema.tables WHERE "
                            "table_name = %s AND table_schema REGEXP "
                            "'^(user|merchant)_[0-9]{3}$'", (table,))
                names = [r[0] for r in cur.fetchall()]
                union = " UNION ALL ".join(f"SELECT '{n}' FROM {n}.{table} WHERE id = {row_id}"
                                           for n in names)
                if union:
                    cur.execute(union)
                    found += [r[0] for r in cur.fetchall()]
        return sorted(found)

    def repair_depth(self) -> int:
        with contextlib.closing(self.connect("a")) as conn, conn.cursor() as cur:
            return control.repair_depth(cur, DB)

    def acks(self) -> list[control.Ack]:
        with contextlib.closing(self.connect("a")) as conn, conn.cursor() as cur:
            return control.read_acks(cur, DB)


def migration_databases(raw: dict, **options: object) -> dict:
    """The test config's databases with a migration of trade's orders and order_items."""
    databases = copy.deepcopy(raw["databases"])
    databases[DB]["migration"] = {"source_instance": "a", "source_database": LEGACY,
                                  "tables": list(TABLES), "shadow_rate": 0.0,
                                  "write_pause": 5.0, "merchant_copy": "direct", **options}
    return databases


class MigratingDal:
    """A DAL of the test's own serving the migration."""

    def __init__(self, proc: DalProcess, raw: dict, path: Path) -> None:
        self.proc = proc
        self.raw = raw
        self.path = path
        self.port = proc.port
        self.metrics_port = raw["server"]["metrics"]["port"]

    def connect(self, user: str = "app", password: str = "app", **kwargs: object):
        options: dict = {"autocommit": True, "connect_timeout": 10, "read_timeout": 30,
                         "database": DB, **kwargs}
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               **options)

    def run(self, sql: str, args: tuple | None = None, user: str = "app") -> tuple[list, int, int]:
        """(rows, affected rows, last insert id) of one statement."""
        conn = self.connect(user, user)
        try:
            with conn.cursor() as cur:
                affected = cur.execute(sql, args)
                return list(cur.fetchall()), affected, cur.lastrowid
        finally:
            conn.close()

    def metric(self, name: str, **labels: str) -> float:
        return value(scrape(self.metrics_port), name, **labels)


@contextlib.contextmanager
def migrating_dal(directory: Path, env: MigrationEnv, name: str = "dal", mode: str = "single",
                  **options: object) -> Iterator[MigratingDal]:
    """A DAL on free ports with the test config plus the migration section, in transaction
    mode ``mode`` (single or xa)."""
    directory = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    sections: dict = {"databases": migration_databases(env.raw, **options)}
    if mode == "xa":
        sections["transactions"] = {"mode": "xa", "lock_wait_timeout": 5,
                                    "decision_log": str(directory / "xa-decisions.log")}
    proc, raw, path = start_own_dal(directory, ROOT / "var" / "test" / f"migration-{name}.log",
                                    sections, read_timeout=5.0, login_timeout=3.0)
    try:
        yield MigratingDal(proc, raw, path)
    finally:
        proc.stop()


def env_fixture(users: range):
    """A pytest fixture: a fresh environment, whose teardown deletes ``users``' shard rows."""
    import pytest

    @pytest.fixture
    def env() -> Iterator[MigrationEnv]:
        made = make_env()
        made.setup()
        yield made
        made.teardown(users)

    return env


def make_env() -> MigrationEnv:
    """The environment, or a skip when the test instances are not running."""
    return MigrationEnv(running_test_config())


def copy_legacy(env: MigrationEnv) -> None:
    """What the backfill does, in one go (the tests' stand-in for `dal migrate backfill`):
    every legacy row REPLACEd into its user and merchant shards, the lookup filled."""
    with contextlib.closing(env.connect("a", LEGACY)) as conn, conn.cursor(
            pymysql.cursors.DictCursor) as cur:
        for table in TABLES:
            cur.execute(f"SELECT * FROM {table} ORDER BY id LOCK IN SHARE MODE")
            rows = list(cur.fetchall())
            for row in rows:
                for dimension, key in (("user", row["user_id"]), ("merchant", row["merchant_id"])):
                    shard = key % SHARDS
                    with contextlib.closing(env.connect(env.instance_of(shard))) as target, \
                            target.cursor() as out:
                        names = ", ".join(row)
                        marks = ", ".join(["%s"] * len(row))
                        out.execute(f"REPLACE INTO {dimension}_{shard:03d}.{table} ({names}) "
                                    f"VALUES ({marks})", tuple(row.values()))
            with contextlib.closing(env.connect("a")) as meta, meta.cursor() as out:
                control.lookup_put(out, DB, table, [(r["id"], r["user_id"], r["merchant_id"])
                                                    for r in rows])
