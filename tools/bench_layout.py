"""Where the bench's sharded tables live: the logical database `sbtest` (config/bench.yaml), its
tables sharded by `id` over the user dimension (sbtest1 for --sharded, orders for --scatter),
and the `dal schema apply` that creates their shard databases and tables."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from config.model import Config, Dimension, TableKind
from tools import schema as schema_tool
from tools.bench_common import MAX_ERROR_SAMPLES, BenchConfigError, BenchError

TABLE = "sbtest1"
SHARDED_DB = "sbtest"  # the logical database --sharded and --scatter measure (config/bench.yaml)
SHARD_KEY = "id"


@dataclass(frozen=True)
class ShardTable:
    """One physical copy of a table of `sbtest`: shard `shard` of `shards`, in `database` on
    `instance`."""

    instance: str
    database: str
    shard: int
    shards: int

    def expected(self, size: int) -> tuple[int, int, int]:
        """(count, min id, max id) of the rows with id in 1..size and id % shards == shard."""
        first = self.shard or self.shards
        if first > size:
            return 0, 0, 0
        count = (size - first) // self.shards + 1
        return count, first, first + (count - 1) * self.shards


def sharded_layout(config: Config, table_name: str = TABLE,
                   option: str = "--sharded") -> list[tuple[str, list[ShardTable]]]:
    """Per dimension that holds ``table_name`` in the logical database `sbtest`: its shard
    tables. ``option`` names what needs them in the messages.

    BenchConfigError if the config lacks `sbtest`, or the table is not sharded by `id`.
    """
    db = config.databases.get(SHARDED_DB)
    if db is None:
        raise BenchConfigError(
            f"{option} measures the logical database {SHARDED_DB!r} ({table_name} sharded by "
            f"{SHARD_KEY}), which this config does not define (it has "
            f"{', '.join(config.databases)}); use --config config/bench.yaml, which defines it, "
            "or add it to your config as config/bench.yaml does")
    table = db.tables.get(table_name)
    if table is None or table.kind is not TableKind.SHARDED:
        raise BenchConfigError(
            f"{option} needs databases.{SHARDED_DB}.tables.{table_name} of kind sharded in the "
            f"config (got {table.kind.value if table else 'no entry'})")
    keys = table.keys if table.keys is not None else {
        name: dim.key for name, dim in db.dimensions.items()}
    out: list[tuple[str, list[ShardTable]]] = []
    for dim_name, column in keys.items():
        dim: Dimension | None = db.dimensions.get(dim_name)
        if dim is None or column != SHARD_KEY:
            raise BenchConfigError(
                f"{option} needs {SHARDED_DB}.{table_name} sharded by {SHARD_KEY!r} in every "
                f"dimension it lives in; dimension {dim_name!r} "
                + ("is not defined" if dim is None else f"keys it by {column!r}"))
        out.append((dim_name, [
            ShardTable(config.shard_instance(SHARDED_DB, dim_name, n), dim.database(n), n,
                       dim.shards)
            for n in range(dim.shards)
        ]))
    if not out:
        raise BenchConfigError(f"{SHARDED_DB}.{table_name} lives in no dimension of the config")
    return out


def apply_schema(config: Config) -> None:
    """`dal schema apply` for the logical database `sbtest` only (its schema file,
    config/schema/sbtest.sql): creates the shard databases and tables that are missing."""
    only = config.model_copy(update={"databases": {SHARDED_DB: config.databases[SHARDED_DB]}})
    try:
        report = schema_tool.apply(only, progress=False)
    except schema_tool.SchemaError as exc:
        raise BenchConfigError(f"schema apply for {SHARDED_DB}: {exc}") from None
    except schema_tool.SchemaDbError as exc:
        raise BenchError(f"schema apply for {SHARDED_DB}: {exc}") from None
    if report.databases_created or report.tables_created or report.drift:
        print(f"dal bench: {report.summary()} (logical database {SHARDED_DB})", file=sys.stderr)
    for drift in report.drift[:MAX_ERROR_SAMPLES]:
        print(f"dal bench: warning: drift: {drift}", file=sys.stderr)
