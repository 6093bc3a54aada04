"""``SET DAL MIGRATION PHASE = 'NAME' [FOR db]`` and ``SHOW DAL MIGRATION`` (admins).

The SET runs the fleet-safe switch (dal/migration/switch.py) in a worker thread, as `dal
migrate phase` does: this process's own phase watcher acks it like any other's. The database is
named by FOR, else it is the only migrated database of the config.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from dal import errors
from dal.admin import result_set
from dal.login import err_packet, ok_packet
from dal.migration import control
from dal.migration.link import ControlLink
from dal.migration.status import DB_HEADER, add_outboxes, status_rows
from dal.migration.switch import SwitchError, control_instance, switch
from dal.wire.messages import ERR

_SET = re.compile(r"(?is)\s*SET\s+DAL\s+MIGRATION\s+PHASE\s*=\s*'(\w+)'"
                  r"(?:\s+FOR\s+`?(\w+)`?)?\s*;?\s*$")
_SHOW = re.compile(r"(?is)\s*SHOW\s+DAL\s+MIGRATION\s*;?\s*$")
_HEAD = re.compile(rb"(?is)\s*(SET|SHOW)\s+DAL\s+MIGRATION\b")


def matches(sql: bytes) -> bool:
    """Whether ``sql`` is one of these two statements."""
    return _HEAD.match(sql) is not None


async def execute(server: Any, sql: str, *, seq: int, status: int) -> bytes:
    """Run one of them; the framed answer."""
    config = server.config
    migrated = [db for db, cfg in config.databases.items() if cfg.migration is not None]
    if _SHOW.match(sql):
        link = ControlLink(control_instance(config))
        try:
            dbs, procs = await link.call(lambda cur: status_rows(config, cur))
            await asyncio.to_thread(add_outboxes, config, link, dbs)
        finally:
            link.close()
        header = [*DB_HEADER, "processes"]
        rows = [[*row, "; ".join(f"{p[1]} v{p[2]} {p[3]} {p[4]}{'' if p[6] == 'yes' else ' (dead)'}"
                                 for p in procs if p[0] == row[0])] for row in dbs]
        return result_set(header, rows, seq=seq, status=status)
    match = _SET.match(sql)
    if match is None:
        return _error("expected SET DAL MIGRATION PHASE = '<phase>' [FOR <db>] or SHOW DAL "
                      "MIGRATION", seq)
    target, db = match.group(1).lower(), match.group(2)
    if db is None:
        if len(migrated) != 1:
            return _error(f"name the database: SET DAL MIGRATION PHASE = '{target}' FOR <db> "
                          f"(migrated: {', '.join(migrated) or 'none'})", seq)
        db = migrated[0]
    if target not in control.PHASES:
        return _error(f"unknown phase '{target}'; phases: {', '.join(control.PHASES)}", seq)
    try:
        await asyncio.to_thread(switch, config, db, target)
    except SwitchError as exc:
        return _error(f"SET DAL MIGRATION PHASE: {exc}", seq)
    except Exception as exc:
        return _error(f"SET DAL MIGRATION PHASE failed: {exc}", seq)
    return ok_packet(seq, status)


def _error(message: str, seq: int) -> bytes:
    code, sqlstate = errors.NOT_SUPPORTED
    return err_packet(ERR(code, message, sqlstate), seq)
