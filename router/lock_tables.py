"""LOCK TABLES: as it is on unsharded and broadcast tables; on sharded and bound tables READ
locks only, which then lock nothing (no lock spans 120 shards)."""

from __future__ import annotations

import re
from dataclasses import replace

from router import errors
from router.catalog import SHARDED_KINDS, Catalog
from router.plan import LOCAL, Plan, refuse

_LOCK_TABLES = re.compile(r"(?is)\s*LOCK\s+TABLES?\s+(.*?)\s*;?\s*$")
_LOCK_ITEM = re.compile(r'(?is)\s*((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)'
                        r"(?:\s+(?:AS\s+)?(?!READ\b|WRITE\b|LOW_PRIORITY\b)[\w$`]+)?\s+"
                        r"(READ(?:\s+LOCAL)?|(?:LOW_PRIORITY\s+)?WRITE(?:\s+CONCURRENT)?)\s*$")


def plan_lock_tables(catalog: Catalog, text: str, schema: str | None) -> Plan | None:
    """LOCK TABLES: as it is on unsharded and broadcast tables (on the default database,
    pinning the session). A list that names a sharded or bound table takes READ locks only,
    and then locks nothing (no lock spans 120 shards; see README, "What you see through
    DAL"): answered OK, so that mariadb-dump proceeds. None for another statement."""
    lock = _LOCK_TABLES.match(text)
    if lock is None:
        return None
    sharded = []
    for item in _split_top_level(lock.group(1)):
        match = _LOCK_ITEM.match(item)
        if match is None:
            return catalog.unparsed(text, schema, "DAL reads LOCK TABLES <table> [[AS] alias] "
                                    "READ [LOCAL] | [LOW_PRIORITY] WRITE [CONCURRENT]",
                                    "lock_tables")
        name = match.group(1).replace("`", "")
        db, _, table = name.rpartition(".")
        resolved = catalog.resolve(db.strip() or None, table.strip(), schema)
        if isinstance(resolved, Plan):
            return resolved
        if resolved[1] in SHARDED_KINDS:
            if not match.group(2).upper().startswith("READ"):
                return refuse(*errors.NOT_SUPPORTED, f"LOCK TABLES ... WRITE on "
                              f"{resolved[1].value} table '{table.strip()}' is refused: DAL "
                              "cannot lock a table across its shards; use a transaction on "
                              "one user's rows")
            sharded.append(table)
    if not sharded:
        return replace(catalog.default_route(schema, "lock"), pin="lock_tables")
    return Plan(LOCAL, handler="ok", statement="lock")


def _split_top_level(items: str) -> list[str]:
    """A LOCK TABLES list split at its commas (none sits inside a quoted name)."""
    parts, depth, start = [], False, 0
    for i, c in enumerate(items):
        if c == "`":
            depth = not depth
        elif c == "," and not depth:
            parts.append(items[start:i])
            start = i + 1
    parts.append(items[start:])
    return parts
