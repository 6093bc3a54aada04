"""Where a row of the authoritative dimension is copied to: the routing half of `dal sync`.

For every logical database, the authoritative dimension (``user``) is the source; every other
dimension (``merchant``) holds a copy of each sharded and bound table it carries. A row goes to
shard ``key % shards`` of the copy dimension, ``key`` being the table's key column for that
dimension (``keys:`` override, else the dimension's key); a row without that column routes by
the gene of its first gene column (``(id // 120) % 120``, router/genes.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from config.model import Config, TableKind
from router.genes import merchant_shard_of_gene, user_shard_of_gene

COPIED_KINDS = (TableKind.SHARDED, TableKind.BOUND)


@dataclass(frozen=True)
class Copy:
    """One copy dimension of one table: how to find the shard of a row there."""

    dimension: str
    shards: int
    prefix: str
    key: str | None          # key column, or None: route by gene
    genes: tuple[str, ...]
    placement: dict[int, str]  # shard -> instance

    def shard(self, row: dict) -> int:
        """The copy shard of a row image; KeyError when the row has neither key nor gene."""
        if self.key is not None and self.key in row:
            return int(row[self.key]) % self.shards
        for gene in self.genes:
            if row.get(gene) is not None:
                return merchant_shard_of_gene(int(row[gene]), self.shards)
        raise KeyError(f"row has neither {self.key} nor a gene column {list(self.genes)}")

    def shard_sql(self, columns: list[str]) -> str:
        """The SQL expression of :meth:`shard` over a table with ``columns``."""
        if self.key is not None and self.key in columns:
            return f"`{self.key}` % {self.shards}"
        for gene in self.genes:
            if gene in columns:
                return f"(`{gene}` DIV {self.shards}) % {self.shards}"
        raise KeyError(f"table has neither {self.key} nor a gene column {list(self.genes)}")

    def database(self, shard: int) -> str:
        return f"{self.prefix}{shard:03d}"


@dataclass(frozen=True)
class SourceTable:
    """A copied table of the authoritative dimension, with its copies and its own key."""

    logical: str
    table: str
    source_key: str | None   # the authoritative key column (user_id), or None: gene
    genes: tuple[str, ...]
    source_shards: int
    copies: tuple[Copy, ...]

    def source_shard_filter(self, shard: int) -> str:
        """SQL condition selecting rows of one authoritative shard (for a TRUNCATE there)."""
        if self.source_key is not None:
            return f"`{self.source_key}` % {self.source_shards} = {shard}"
        return f"`{self.genes[0]}` % {self.source_shards} = {shard}"

    def source_shard_of(self, row: dict) -> int:
        if self.source_key is not None and self.source_key in row:
            return int(row[self.source_key]) % self.source_shards
        return user_shard_of_gene(int(row[self.genes[0]]), self.source_shards)


class Routes:
    """The copy plan of a config: source instances, their shard schemas, and table routes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # source schema (user_017) -> (logical database, shard number, source instance)
        self.schemas: dict[str, tuple[str, int, str]] = {}
        self.tables: dict[tuple[str, str], SourceTable] = {}  # (logical, table) -> routes
        self.targets: set[str] = set()  # instances holding copy shards
        for name, db in config.databases.items():
            auth = db.dimensions[db.authoritative]
            for place in auth.placement:
                for shard in place.numbers():
                    self.schemas[auth.database(shard)] = (name, shard, place.instance)
            for table, conf in db.tables.items():
                if conf.kind not in COPIED_KINDS:
                    continue
                keys = conf.keys or {}
                copies = []
                for dim_name, dim in db.dimensions.items():
                    if dim_name == db.authoritative or (conf.keys and dim_name not in keys):
                        continue
                    placement = {s: p.instance for p in dim.placement for s in p.numbers()}
                    self.targets.update(placement.values())
                    copies.append(Copy(dim_name, dim.shards, dim.prefix,
                                       keys.get(dim_name, dim.key), tuple(conf.genes),
                                       placement))
                if copies:
                    self.tables[(name, table)] = SourceTable(
                        name, table, keys.get(db.authoritative, auth.key), tuple(conf.genes),
                        auth.shards, tuple(copies))

    def sources(self) -> dict[str, list[str]]:
        """Source instance -> the authoritative shard schemas it holds."""
        out: dict[str, list[str]] = {}
        for schema, (_, _, instance) in sorted(self.schemas.items()):
            out.setdefault(instance, []).append(schema)
        return out

    def table(self, schema: str, table: str) -> SourceTable | None:
        """The routes of a source table, or None when it is not copied."""
        place = self.schemas.get(schema)
        return self.tables.get((place[0], table)) if place else None

    def shard_of_schema(self, schema: str) -> int:
        return self.schemas[schema][1]
