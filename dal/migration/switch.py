"""The phase switch protocol (docs/migration.md), run by `dal migrate phase` and by
``SET DAL MIGRATION PHASE``; it talks to the fleet only through the control tables.

1. state='drain', next_phase=NAME, version+1;
2. wait until every live process acked 'drained' at that version (each holds its writes to
   the migrated tables meanwhile and waits for those in flight);
3. phase=NAME, state='active', version+1 (leaving legacy: max_legacy_id recorded first, while
   no write runs); processes apply it and release their held writes under the new phase;
4. wait until every live process acked 'active' at that version.
A timeout in 2 or 4, or any failure after 1 (a lost connection, a missing grant), puts the old
phase back (state 'active', version+1, on a new connection if need be) and fails. A process
drains only when its open transactions that wrote the migrated tables under the old phase have
ended; a drain timeout names those sessions (DAL connection ids).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pymysql

from config.model import Config
from dal.migration import control

POLL = 0.1


class SwitchError(Exception):
    """A switch that was refused or rolled back; the message says why."""


def control_instance(config: Config):
    """The instance holding dal_meta (`control.control_instance_name`)."""
    return config.instances[control.control_instance_name(config)]


def switch(config: Config, db: str, target: str, timeout: float = 30.0,
           say: Callable[[str], None] = lambda line: None) -> control.PhaseRow:
    """Move ``db`` one step to phase ``target``, fleet-safely; the new phase row."""
    cfg = config.databases.get(db)
    if cfg is None or cfg.migration is None:
        raise SwitchError(f"database {db!r} has no migration section in this config")
    if target not in control.PHASES:
        raise SwitchError(f"unknown phase {target!r}; phases: {', '.join(control.PHASES)}")
    conn = control.connect(control_instance(config))
    try:
        with conn.cursor() as cur:
            control.ensure_tables(cur)
            control.ensure_phase(cur, db)
            old = _begin(conn, db, target)
    except BaseException:
        conn.close()
        raise
    say(f"{db}: draining for {old.phase} -> {target} (version {old.version + 1})")
    try:
        return _complete(config, conn, db, old, target, timeout, say)
    except BaseException as exc:
        _restore_after(config, conn, db, old)
        if isinstance(exc, SwitchError):
            raise
        raise SwitchError(f"the switch of {db} to {target} failed ({exc}); {db} is back in "
                          f"phase {old.phase}") from exc
    finally:
        conn.close()


def _complete(config: Config, conn: pymysql.connections.Connection, db: str,
              old: control.PhaseRow, target: str, timeout: float,
              say: Callable[[str], None]) -> control.PhaseRow:
    """Steps 2-4 after the drain was marked; a `SwitchError` after a timeout (the caller
    puts the old phase back)."""
    drain = old.version + 1
    with conn.cursor() as cur:
        if not _wait(cur, db, drain, control.DRAINED, timeout):
            raise SwitchError(f"not every live DAL process drained within {timeout} s"
                              f"{_holders(cur, db, drain)}; {db} stays in phase {old.phase}")
        max_id = None
        if old.phase == "legacy" and target == "dual_legacy":
            max_id = legacy_max_id(config, db)
            say(f"{db}: highest legacy id {max_id}")
        control.write_phase(cur, db, target, control.ACTIVE, None, drain + 1, max_id)
        if not _wait(cur, db, drain + 1, control.ACTIVE, timeout):
            raise SwitchError(f"not every live DAL process applied {target} within "
                              f"{timeout} s; {db} is back in phase {old.phase}")
        row = control.read_phase(cur, db)
        assert row is not None
        say(f"{db}: phase {target} (version {row.version}), acked by every live process")
        return row


def _holders(cur: control.Cursor, db: str, version: int) -> str:
    """Which processes did not drain, and the sessions whose open transactions held them."""
    late = [a for a in control.read_acks(cur, db) if a.live and not (
        a.version > version or (a.version == version and a.state == control.DRAINED))]
    parts = [f"{a.process}: open transactions of DAL connection ids {a.holders}"
             if a.holders else f"{a.process}: writes in flight" for a in late]
    return f" ({'; '.join(parts)})" if parts else ""


def _begin(conn: pymysql.connections.Connection, db: str, target: str) -> control.PhaseRow:
    """Check the move and mark the drain, atomically."""
    with _transaction(conn) as cur:
        row = control.read_phase(cur, db, for_update=True)
        assert row is not None
        if row.state != control.ACTIVE:
            raise SwitchError(f"{db} is already switching ({row.phase} -> {row.next_phase}, "
                              f"version {row.version}); wait for it")
        if row.phase == target:
            raise SwitchError(f"{db} is in phase {target} already")
        if not control.next_phase_ok(row.phase, target):
            raise SwitchError(f"{db} cannot go from {row.phase} to {target}: one step "
                              f"at a time along {' <-> '.join(control.PHASES)}")
        control.write_phase(cur, db, row.phase, control.DRAIN, target, row.version + 1)
    return row


def _wait(cur: control.Cursor, db: str, version: int, state: str, timeout: float) -> bool:
    """Until every live process of ``db`` acked ``state`` at ``version`` (or later)."""
    deadline = time.monotonic() + timeout
    while True:
        acks = [a for a in control.read_acks(cur, db) if a.live]
        if all(a.version > version or (a.version == version and a.state == state)
               for a in acks):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)


def _restore_after(config: Config, conn: pymysql.connections.Connection, db: str,
                   old: control.PhaseRow) -> None:
    """Put ``old``'s phase back (active, a new version) unless the row moved on without this
    switch; on the switch's connection, or a new one if that one is lost."""
    for attempt in (0, 1):
        try:
            if attempt:
                conn = control.connect(control_instance(config))
            try:
                _restore(conn, db, old)
                return
            finally:
                if attempt:
                    conn.close()
        except pymysql.err.MySQLError:
            if attempt:
                raise


def _restore(conn: pymysql.connections.Connection, db: str, old: control.PhaseRow) -> None:
    with _transaction(conn) as cur:
        row = control.read_phase(cur, db, for_update=True)
        if row is not None and (row.state == control.DRAIN or row.phase != old.phase):
            control.write_phase(cur, db, old.phase, control.ACTIVE, None, row.version + 1)


@contextlib.contextmanager
def _transaction(conn: pymysql.connections.Connection) -> Iterator[control.Cursor]:
    """A cursor in a transaction on ``conn``: committed, or rolled back on any error."""
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise


def legacy_max_id(config: Config, db: str) -> int:
    """The largest id over the migrated tables of the legacy database."""
    mig = config.databases[db].migration
    assert mig is not None
    conn = control.connect(config.instances[mig.source_instance])
    try:
        with conn.cursor() as cur:
            best = 0
            for table in mig.tables:
                cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM `{mig.source_database}`.`{table}`")
                best = max(best, int(cur.fetchone()[0]))
            return best
    finally:
        conn.close()
