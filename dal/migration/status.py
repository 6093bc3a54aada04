"""What `dal migrate status` and ``SHOW DAL MIGRATION`` show, read from the control tables."""

from __future__ import annotations

from config.model import Config
from dal.migration import control

DB_HEADER = ["db", "phase", "state", "next_phase", "version", "max_legacy_id", "backfill",
             "repair_depth", "changed_at"]
PROCESS_HEADER = ["db", "process", "version", "state", "phase", "heartbeat", "live"]


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
