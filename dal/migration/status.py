"""What `dal migrate status` and ``SHOW DAL MIGRATION`` show, read from the control tables and
the outboxes."""

from __future__ import annotations

from config.model import Config
from dal.migration import control
from dal.migration.link import ControlLink
from dal.migration.repair import Repairer

DB_HEADER = ["db", "phase", "state", "next_phase", "version", "max_legacy_id", "backfill",
             "repair_depth", "changed_at"]
PROCESS_HEADER = ["db", "process", "version", "state", "phase", "heartbeat", "live"]


REPAIR_DEPTH = DB_HEADER.index("repair_depth")


def add_outboxes(config: Config, link: ControlLink, dbs: list[list[object]]) -> None:
    """Add to each row's repair depth the entries of that database in the other instances'
    outboxes (client transactions' pending mirrors, dal/migration/txn.py), as the
    ``dal_migration_repair_depth`` metric counts them. Blocking."""
    repairer = Repairer(config, link)
    try:
        for row in dbs:
            row[REPAIR_DEPTH] += repairer.outbox_depth(row[0])  # type: ignore[operator]
    finally:
        repairer.close()


def status_rows(config: Config, cur: control.Cursor) -> tuple[list[list[object]],
                                                               list[list[object]]]:
    """Per migrated database its phase row, backfill progress and repair depth; per process
    its ack."""
    control.ensure_tables(cur)
    dbs, procs = [], []
    for db, cfg in config.databases.items():
        if cfg.migration is None:
            continue
        control.ensure_phase(cur, db)
        row = control.read_phase(cur, db)
        assert row is not None
        points = control.read_checkpoints(cur, db)
        backfill = ", ".join(f"{p.tbl} {p.rows_copied} rows{' done' if p.done else ''}"
                             for p in points) or "not started"
        dbs.append([db, row.phase, row.state, row.next_phase or "", row.version,
                    row.max_legacy_id, backfill, control.repair_depth(cur, db),
                    str(row.changed_at)])
        procs += [[db, a.process, a.version, a.state, a.phase, str(a.heartbeat),
                   "yes" if a.live else "no"] for a in control.read_acks(cur, db)]
    return dbs, procs
