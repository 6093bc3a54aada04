"""Where a live migration's rows live, for the `dal migrate` tools: the legacy tables, the user
shard each row belongs to, and (when ``merchant_copy: direct``) its merchant copy.

The tools log in as the config's DBA account (``dba:``), as `dal schema apply` does: they read
and write the legacy database, every shard and ``dal_meta``. A row's user shard is its
``user_id % shards`` (the table's key for the authoritative dimension); its merchant copy is
chosen the way `dal sync` chooses it (tools/sync_route.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pymysql

from config.loader import load_config
from config.migration import MigrationConfig
from config.model import Config, Instance
from dal.migration import control
from tools.sync_route import Copy, Routes
from tools.verify import Connections

LEGACY_AUTHORITATIVE = ("legacy", "dual_legacy", "shadow")


def quote(name: str) -> str:
    """A backquoted identifier."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Place:
    """One physical database on one instance."""

    instance: str
    database: str

    def table(self, name: str) -> str:
        return f"{quote(self.database)}.{quote(name)}"


def dba_config(config: Config) -> Config:
    """``config`` with every instance reached as the DBA account."""
    dba = config.dba
    return config.model_copy(update={"instances": {
        name: inst.login_as(dba.user, dba.password) for name, inst in config.instances.items()}})


def migrated_database(config: Config, name: str | None) -> str:
    """The logical database to work on: ``name``, or the only one with a migration section."""
    with_section = [db for db, conf in config.databases.items() if conf.migration is not None]
    if name is not None:
        if name not in with_section:
            raise ValueError(f"database {name!r} has no migration section in the config")
        return name
    if len(with_section) != 1:
        raise ValueError("name the database with --db: the config has "
                         f"{len(with_section) or 'no'} databases with a migration section")
    return with_section[0]


class Layout:
    """One logical database's migration: legacy place, shard places, columns, routing."""

    def __init__(self, config: Config, db: str) -> None:
        self.config = dba_config(config)
        self.db = db
        logical = config.databases[db]
        self.migration: MigrationConfig = logical.migration  # type: ignore[assignment]
        self.legacy = Place(self.migration.source_instance, self.migration.source_database)
        self.meta_instance = control.control_instance_name(config)  # dal_meta's instance
        user = logical.dimensions[logical.authoritative]
        self.user_shards = user.shards
        self.user_places = [Place(config.shard_instance(db, logical.authoritative, s),
                                  user.database(s)) for s in range(user.shards)]
        self.keys = {t: (logical.tables[t].keys or {}).get(logical.authoritative, user.key)
                     for t in self.migration.tables}
        routes = Routes(config)
        self.copies: dict[str, tuple[Copy, ...]] = {
            t: routes.tables[(db, t)].copies if (db, t) in routes.tables else ()
            for t in self.migration.tables}
        self.direct_copy = self.migration.merchant_copy == "direct"
        self.conns = Connections(self.config)

    @property
    def tables(self) -> list[str]:
        return list(self.migration.tables)

    def meta(self) -> pymysql.connections.Connection:
        """A new autocommit connection to ``dal_meta``'s instance, its tables ensured."""
        conn = control.connect(self.instance(self.meta_instance))
        with conn.cursor() as cur:
            control.ensure_tables(cur)
        return conn

    def instance(self, name: str) -> Instance:
        return self.config.instances[name]

    def connect(self, name: str, **options: object) -> pymysql.connections.Connection:
        """A new connection to instance ``name`` (DBA account), for a transaction of its own."""
        inst = self.instance(name)
        return pymysql.connect(host=inst.host, port=inst.port, user=inst.user,
                               password=inst.password, connect_timeout=5, read_timeout=120,
                               **options)

    def columns(self, table: str) -> list[str]:
        """The legacy table's columns, in order; the shards must have the same ones."""
        sql = ("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
               " AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")
        legacy = [r[0] for r in self.conns.query(self.legacy.instance, sql,
                                                 (self.legacy.database, table))]
        first = self.user_places[0]
        shard = [r[0] for r in self.conns.query(first.instance, sql, (first.database, table))]
        if not legacy:
            raise ValueError(f"{self.legacy.database}.{table} does not exist on instance "
                             f"{self.legacy.instance} (dal migrate demo creates it)")
        if legacy != shard:
            raise ValueError(f"{self.legacy.database}.{table} and {first.database}.{table} have "
                             f"different columns: {legacy} vs {shard}")
        if "id" not in legacy or self.keys[table] not in legacy:
            raise ValueError(f"{table}: needs columns id and {self.keys[table]}")
        return legacy

    def user_shard(self, table: str, row: dict) -> int:
        """The user shard a row image belongs to."""
        return int(row[self.keys[table]]) % self.user_shards

    def copy_places(self, table: str, row: dict) -> list[Place]:
        """The merchant copies of a row that the tools write themselves (direct copy only)."""
        if not self.direct_copy:
            return []
        out = []
        for copy in self.copies[table]:
            shard = copy.shard(row)
            out.append(Place(copy.placement[shard], copy.database(shard)))
        return out

    def places_of(self, table: str, row: dict) -> list[Place]:
        """Every shard place a row image is written to: its user shard, then its copies."""
        return [self.user_places[self.user_shard(table, row)], *self.copy_places(table, row)]

    def all_places(self, table: str) -> list[Place]:
        """Every shard database holding ``table``: the user shards and every copy's shards."""
        places = list(self.user_places)
        for copy in self.copies[table]:
            places += [Place(copy.placement[s], copy.database(s)) for s in range(copy.shards)]
        return places

    def replace_rows(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        """REPLACE each row into its shard places: one multi-row statement per place, one
        transaction per instance. Returns the number of rows."""
        grouped: dict[Place, list[str]] = {}
        literal = self.conns.get(self.legacy.instance).literal
        count = 0
        for row in rows:
            count += 1
            text = literal(tuple(row))  # escaped once, whatever the number of places
            for place in self.places_of(table, dict(zip(columns, row, strict=True))):
                grouped.setdefault(place, []).append(text)
        names = ", ".join(map(quote, columns))
        for instance in sorted({p.instance for p in grouped}):
            conn = self.conns.get(instance)
            conn.begin()
            with conn.cursor() as cur:
                for place in (p for p in grouped if p.instance == instance):
                    cur.execute(f"REPLACE INTO {place.table(table)} ({names}) VALUES "
                                + ", ".join(grouped[place]))
            conn.commit()
        return count

    def delete_id(self, table: str, place: Place, id_: int) -> None:
        """Delete row ``id_`` of ``table`` at ``place``."""
        with self.conns.get(place.instance).cursor() as cur:
            cur.execute(f"DELETE FROM {place.table(table)} WHERE id = %s", (id_,))

    def close(self) -> None:
        self.conns.close()


def layout_for(args: argparse.Namespace, command: str) -> Layout | None:
    """The layout of ``args.config``'s migrated database (``args.db``); None after saying on
    stderr why there is none (the caller exits 2)."""
    config = load_config(args.config)
    try:
        return Layout(config, migrated_database(config, args.db))
    except ValueError as exc:
        print(f"dal migrate {command}: {exc}", file=sys.stderr)
        return None


def legacy_is_authoritative(phase: str) -> bool:
    """Whether legacy holds the truth in ``phase`` (else the shards do)."""
    return phase in LEGACY_AUTHORITATIVE


def read_phase(layout: Layout) -> control.PhaseRow | None:
    """The migration's phase row (None: no row yet, i.e. phase legacy)."""
    meta = layout.meta()
    try:
        with meta.cursor() as cur:
            return control.read_phase(cur, layout.db)
    finally:
        meta.close()
