"""The dal_migration_* Prometheus families of one DAL process (docs/migration.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from dal.migration.control import PHASES


def migration_families(migration: Any) -> Iterator[Any]:
    """Phase, backfill progress, repair-log depth, shadow mismatches, dual-write latency."""
    phase = GaugeMetricFamily("dal_migration_phase", "1 for the phase each migrated database "
                              "is in (as this process applied it)", labels=["db", "phase"])
    for db in migration.dbs:
        applied = migration.applied.get(db)
        for name in PHASES:
            phase.add_metric([db, name], 1 if applied and applied[2] == name else 0)
    yield phase
    rows = CounterMetricFamily("dal_migration_backfill_rows", "Rows the backfill copied, per "
                               "table (from dal_meta.migration_backfill)", labels=["db", "tbl"])
    for (db, tbl), value in sorted(migration.backfill.items()):
        rows.add_metric([db, tbl], value)
    yield rows
    rate = GaugeMetricFamily("dal_migration_backfill_rows_per_second", "Backfill rows copied "
                             "per second, over the last reads of its progress", labels=["db"])
    for db in migration.dbs:
        rate.add_metric([db], migration.backfill_rate.get(db, 0.0))
    yield rate
    depth = GaugeMetricFamily("dal_migration_repair_depth", "Entries in the repair log (failed "
                              "mirror writes not re-copied yet)", labels=["db"])
    for db in migration.dbs:
        depth.add_metric([db], migration.repair_depth.get(db, 0))
    yield depth
    shadow = CounterMetricFamily("dal_migration_shadow_mismatches", "Shadow reads whose shard "
                                 "rows differed from legacy's", labels=["db"])
    for db in migration.dbs:
        shadow.add_metric([db], migration.shadow_mismatches[db])
    yield shadow
    reads = CounterMetricFamily("dal_migration_shadow_reads", "Shadow reads compared",
                                labels=["db"])
    for db in migration.dbs:
        reads.add_metric([db], migration.shadow_reads[db])
    yield reads
    latency = HistogramMetricFamily("dal_migration_dual_write_seconds", "Time of a dual write "
                                    "(authoritative side, mirror, commit)")
    latency.add_metric([], migration.dual_write.cumulative(), migration.dual_write.sum)
    yield latency
