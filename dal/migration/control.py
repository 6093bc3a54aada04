"""The migration control tables in ``dal_meta`` on the default instance, and small accessors.

Shared by DAL (the phase watcher, the repairer, the legacy-id lookup) and the `dal migrate`
tools (phase, status, backfill, verify). Every accessor takes a pymysql cursor and runs plain
SQL on it; the caller owns the connection and its transactions (``connect`` opens one with
autocommit on). The tables are described in docs/migration.md and the shared spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pymysql
from pymysql.constants import CLIENT

from config.model import Config, Instance

PHASES = ("legacy", "dual_legacy", "shadow", "dual_sharded", "sharded")
ACTIVE, DRAIN, DRAINED = "active", "drain", "drained"
TO_SHARDS, TO_LEGACY = "to_shards", "to_legacy"
LIVE_SECONDS = 5  # a process is live while its heartbeat is fresher than this

DDL = (
    "CREATE DATABASE IF NOT EXISTS dal_meta",
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_phase ("
    " db VARCHAR(64) PRIMARY KEY, phase VARCHAR(16) NOT NULL,"
    " version BIGINT UNSIGNED NOT NULL, state VARCHAR(8) NOT NULL,"
    " next_phase VARCHAR(16) NULL, max_legacy_id BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " changed_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_acks ("
    " process VARCHAR(96) PRIMARY KEY, db VARCHAR(64) NOT NULL,"
    " version BIGINT UNSIGNED NOT NULL, state VARCHAR(8) NOT NULL,"
    " phase VARCHAR(16) NOT NULL, heartbeat DATETIME(6) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_lookup ("
    " db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, id BIGINT UNSIGNED NOT NULL,"
    " user_id BIGINT UNSIGNED NOT NULL, merchant_id BIGINT UNSIGNED NOT NULL,"
    " PRIMARY KEY (db, tbl, id)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_repair ("
    " seq BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, db VARCHAR(64) NOT NULL,"
    " tbl VARCHAR(64) NOT NULL, id BIGINT UNSIGNED NOT NULL,"
    " direction VARCHAR(12) NOT NULL, error VARCHAR(512) NULL,"
    " attempts INT NOT NULL DEFAULT 0, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_backfill ("
    " db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, last_id BIGINT UNSIGNED NOT NULL,"
    " rows_copied BIGINT UNSIGNED NOT NULL, done TINYINT NOT NULL,"
    " updated_at DATETIME(6) NOT NULL, PRIMARY KEY (db, tbl)) ENGINE=InnoDB",
    # per process, the DAL sessions whose open transactions hold a drain up
    "CREATE TABLE IF NOT EXISTS dal_meta.migration_holders ("
    " process VARCHAR(96) PRIMARY KEY, holders VARCHAR(512) NOT NULL) ENGINE=InnoDB",
)
# Where a transaction's outbox lives (the authoritative side's instance, dal/migration/txn.py)
OUTBOX_DDL = DDL[:1] + DDL[4:5]
assert "migration_repair" in OUTBOX_DDL[1]

Cursor = pymysql.cursors.Cursor


def control_instance_name(config: Config) -> str:
    """The instance holding dal_meta: the first logical database's default instance."""
    return next(iter(config.databases.values())).default_instance


@dataclass(frozen=True)
class PhaseRow:
    """One logical database's row of ``migration_phase``."""

    db: str
    phase: str
    version: int
    state: str
    next_phase: str | None
    max_legacy_id: int
    changed_at: datetime


@dataclass(frozen=True)
class Ack:
    """One process's row of ``migration_acks``; ``live``: its heartbeat is fresh."""

    process: str
    db: str
    version: int
    state: str
    phase: str
    heartbeat: datetime
    live: bool
    holders: str = ""  # DAL connection ids of the open transactions holding a drain up


@dataclass(frozen=True)
class Repair:
    """One entry of the repair log: re-copy row ``id`` of ``tbl`` in ``direction``."""

    seq: int
    db: str
    tbl: str
    id: int
    direction: str
    error: str | None
    attempts: int


@dataclass(frozen=True)
class Checkpoint:
    """The backfill's progress on one table."""

    db: str
    tbl: str
    last_id: int
    rows_copied: int
    done: bool
    updated_at: datetime


def connect(instance: Instance, timeout: float = 5.0) -> pymysql.connections.Connection:
    """A blocking connection to ``instance`` (autocommit on, FOUND_ROWS) for these tables."""
    return pymysql.connect(host=instance.host, port=instance.port, user=instance.user,
                           password=instance.password, connect_timeout=timeout,
                           read_timeout=timeout * 2, write_timeout=timeout * 2,
                           autocommit=True, client_flag=CLIENT.FOUND_ROWS)


def ensure_tables(cur: Cursor) -> None:
    """Create ``dal_meta`` and the control tables where missing."""
    for stmt in DDL:
        cur.execute(stmt)


def next_phase_ok(current: str, target: str) -> bool:
    """Whether ``current`` -> ``target`` is one step forward or back along PHASES."""
    if current not in PHASES or target not in PHASES:
        return False
    return abs(PHASES.index(current) - PHASES.index(target)) == 1


# -- migration_phase ---------------------------------------------------------------------------

_PHASE_COLUMNS = "db, phase, version, state, next_phase, max_legacy_id, changed_at"


def ensure_phase(cur: Cursor, db: str) -> None:
    """Give ``db`` its first row (phase legacy, active, version 1) unless it has one."""
    cur.execute("INSERT IGNORE INTO dal_meta.migration_phase (db, phase, version, state,"
                " next_phase, max_legacy_id, changed_at)"
                " VALUES (%s, 'legacy', 1, 'active', NULL, 0, NOW(6))", (db,))


def read_phase(cur: Cursor, db: str, for_update: bool = False) -> PhaseRow | None:
    """``db``'s phase row, or None when it has none (then it is in phase legacy)."""
    lock = " FOR UPDATE" if for_update else ""
    cur.execute(f"SELECT {_PHASE_COLUMNS} FROM dal_meta.migration_phase WHERE db = %s{lock}",
                (db,))
    row = cur.fetchone()
    return None if row is None else _phase_row(row)


def read_phases(cur: Cursor) -> list[PhaseRow]:
    """Every database's phase row, by name."""
    cur.execute(f"SELECT {_PHASE_COLUMNS} FROM dal_meta.migration_phase ORDER BY db")
    return [_phase_row(row) for row in cur.fetchall()]


def _phase_row(row: tuple) -> PhaseRow:
    db, phase, version, state, nxt, max_id, changed = row
    return PhaseRow(db, phase, int(version), state, nxt, int(max_id), changed)


def write_phase(cur: Cursor, db: str, phase: str, state: str, next_phase: str | None,
                version: int, max_legacy_id: int | None = None) -> None:
    """Set ``db``'s phase row (the caller computes ``version``: +1 on every change)."""
    extra, args = "", [phase, state, next_phase, version]
    if max_legacy_id is not None:
        extra = ", max_legacy_id = %s"
        args.append(max_legacy_id)
    cur.execute("UPDATE dal_meta.migration_phase SET phase = %s, state = %s, next_phase = %s,"
                f" version = %s, changed_at = NOW(6){extra} WHERE db = %s", (*args, db))


def set_max_legacy_id(cur: Cursor, db: str, value: int) -> None:
    """Record the highest legacy id of ``db`` (at the switch to dual_legacy)."""
    cur.execute("UPDATE dal_meta.migration_phase SET max_legacy_id = %s WHERE db = %s",
                (value, db))


# -- migration_acks ----------------------------------------------------------------------------

def write_ack(cur: Cursor, process: str, db: str, version: int, state: str, phase: str,
              holders: str = "") -> None:
    """Record (or refresh, as a heartbeat) what ``process`` has applied for ``db``;
    ``holders``: its sessions whose open transactions hold a drain up."""
    cur.execute("INSERT INTO dal_meta.migration_acks (process, db, version, state, phase,"
                " heartbeat) VALUES (%s, %s, %s, %s, %s, NOW(6)) ON DUPLICATE KEY UPDATE"
                " db = VALUES(db), version = VALUES(version), state = VALUES(state),"
                " phase = VALUES(phase), heartbeat = VALUES(heartbeat)",
                (process, db, version, state, phase))
    if holders:
        cur.execute("REPLACE INTO dal_meta.migration_holders (process, holders) VALUES (%s, %s)",
                    (process, holders[:512]))
    else:
        cur.execute("DELETE FROM dal_meta.migration_holders WHERE process = %s", (process,))


def read_acks(cur: Cursor, db: str | None = None) -> list[Ack]:
    """The acks of ``db`` (every db when None), with whether each process is live."""
    where, args = ("WHERE db = %s", (db,)) if db is not None else ("", ())
    cur.execute("SELECT a.process, db, version, state, phase, heartbeat,"
                f" heartbeat > NOW(6) - INTERVAL {LIVE_SECONDS} SECOND, h.holders"
                " FROM dal_meta.migration_acks a LEFT JOIN dal_meta.migration_holders h"
                f" ON h.process = a.process {where} ORDER BY db, a.process", args)
    return [Ack(p, d, int(v), s, ph, hb, bool(live), h or "")
            for p, d, v, s, ph, hb, live, h in cur.fetchall()]


def delete_ack(cur: Cursor, process: str) -> None:
    """Forget ``process`` (it stopped cleanly)."""
    cur.execute("DELETE FROM dal_meta.migration_acks WHERE process = %s", (process,))
    cur.execute("DELETE FROM dal_meta.migration_holders WHERE process = %s", (process,))


def prune_acks(cur: Cursor, older_than_seconds: int = 3600) -> None:
    """Forget processes whose last heartbeat is older than ``older_than_seconds``."""
    cur.execute("DELETE FROM dal_meta.migration_acks"
                " WHERE heartbeat < NOW(6) - INTERVAL %s SECOND", (older_than_seconds,))


# -- migration_lookup --------------------------------------------------------------------------

def lookup_put(cur: Cursor, db: str, tbl: str,
               rows: Iterable[tuple[int, int, int]]) -> None:
    """Record ``(id, user_id, merchant_id)`` of legacy rows of ``tbl`` (replacing older ones)."""
    values = [(db, tbl, int(i), int(u), int(m)) for i, u, m in rows]
    if values:
        cur.executemany("REPLACE INTO dal_meta.migration_lookup (db, tbl, id, user_id,"
                        " merchant_id) VALUES (%s, %s, %s, %s, %s)", values)


def lookup_get(cur: Cursor, db: str, tbl: str,
               ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``id -> (user_id, merchant_id)`` for those of ``ids`` the lookup knows."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    marks = ", ".join(["%s"] * len(wanted))
    cur.execute("SELECT id, user_id, merchant_id FROM dal_meta.migration_lookup"
                f" WHERE db = %s AND tbl = %s AND id IN ({marks})", (db, tbl, *wanted))
    return {int(i): (int(u), int(m)) for i, u, m in cur.fetchall()}


def lookup_delete(cur: Cursor, db: str, tbl: str, ids: Iterable[int]) -> None:
    """Forget legacy ids of ``tbl`` (their rows were deleted)."""
    wanted = sorted({int(i) for i in ids})
    if wanted:
        marks = ", ".join(["%s"] * len(wanted))
        cur.execute("DELETE FROM dal_meta.migration_lookup"
                    f" WHERE db = %s AND tbl = %s AND id IN ({marks})", (db, tbl, *wanted))


# -- migration_repair --------------------------------------------------------------------------

# The head of an INSERT of repair-log entries: here through pymysql, and in a client's
# transaction as the outbox (dal/migration/txn.py).
REPAIR_INSERT = ("INSERT INTO dal_meta.migration_repair (db, tbl, id, direction, error, attempts,"
                 " created_at) VALUES ")


def enqueue_repair(cur: Cursor, db: str, tbl: str, ids: Iterable[int], direction: str,
                   error: str | None) -> None:
    """Record a failed mirror of each of ``ids`` (one row per id) durably."""
    note = None if error is None else error[:512]
    values = [(db, tbl, int(i), direction, note) for i in ids]
    if values:
        cur.executemany(REPAIR_INSERT + "(%s, %s, %s, %s, %s, 0, NOW(6))", values)


def pending_repairs(cur: Cursor, db: str, limit: int = 100) -> list[Repair]:
    """The oldest ``limit`` entries of ``db``'s repair log."""
    cur.execute("SELECT seq, db, tbl, id, direction, error, attempts"
                " FROM dal_meta.migration_repair WHERE db = %s ORDER BY seq LIMIT %s",
                (db, limit))
    return [Repair(int(s), d, t, int(i), dr, e, int(a)) for s, d, t, i, dr, e, a in cur.fetchall()]


def finish_repair(cur: Cursor, seq: int) -> None:
    """Delete a repaired entry."""
    cur.execute("DELETE FROM dal_meta.migration_repair WHERE seq = %s", (seq,))


def fail_repair(cur: Cursor, seq: int, error: str) -> None:
    """Count one more failed attempt of an entry."""
    cur.execute("UPDATE dal_meta.migration_repair SET attempts = attempts + 1, error = %s"
                " WHERE seq = %s", (error[:512], seq))


def repair_depth(cur: Cursor, db: str) -> int:
    """How many entries ``db``'s repair log holds."""
    cur.execute("SELECT COUNT(*) FROM dal_meta.migration_repair WHERE db = %s", (db,))
    return int(cur.fetchone()[0])


# -- migration_backfill ------------------------------------------------------------------------

def save_checkpoint(cur: Cursor, db: str, tbl: str, last_id: int, rows_copied: int,
                    done: bool) -> None:
    """Record the backfill's progress on ``tbl``."""
    cur.execute("REPLACE INTO dal_meta.migration_backfill (db, tbl, last_id, rows_copied, done,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, NOW(6))",
                (db, tbl, last_id, rows_copied, int(done)))


def read_checkpoint(cur: Cursor, db: str, tbl: str) -> Checkpoint | None:
    """The backfill's progress on ``tbl``, or None before it started."""
    cur.execute("SELECT db, tbl, last_id, rows_copied, done, updated_at"
                " FROM dal_meta.migration_backfill WHERE db = %s AND tbl = %s", (db, tbl))
    row = cur.fetchone()
    return None if row is None else _checkpoint(row)


def read_checkpoints(cur: Cursor, db: str) -> list[Checkpoint]:
    """The backfill's progress on every table of ``db``."""
    cur.execute("SELECT db, tbl, last_id, rows_copied, done, updated_at"
                " FROM dal_meta.migration_backfill WHERE db = %s ORDER BY tbl", (db,))
    return [_checkpoint(row) for row in cur.fetchall()]


def reset_checkpoints(cur: Cursor, db: str) -> None:
    """Forget the backfill's progress on ``db`` (a fresh backfill starts over)."""
    cur.execute("DELETE FROM dal_meta.migration_backfill WHERE db = %s", (db,))


def _checkpoint(row: tuple) -> Checkpoint:
    db, tbl, last_id, copied, done, updated = row
    return Checkpoint(db, tbl, int(last_id), int(copied), bool(done), updated)
