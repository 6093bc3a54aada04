"""Shared bits of the real-client tests that write rows to `trade.merchants`."""

from __future__ import annotations

import uuid

# The configured tables of the logical database `trade` (config/test.yaml).
CONFIGURED_TABLES = {"merchants", "order_items", "orders", "regions"}

# `DESCRIBE merchants` as the schema defines it: (field, type, null, key, default, extra).
MERCHANTS_DESCRIBE = [
    ("id", "bigint(20) unsigned", "NO", "PRI", None, "auto_increment"),
    ("name", "varchar(128)", "NO", "", None, ""),
    ("region_id", "int(11)", "YES", "", None, ""),
    ("rating", "decimal(3,2)", "YES", "", None, ""),
    ("created_at", "datetime(6)", "NO", "", "current_timestamp(6)", ""),
]


def unique_prefix(client: str) -> str:
    """A name prefix that no other test (or concurrent run) uses."""
    return f"{client}-{uuid.uuid4().hex}-"


def purge(direct_conn: object, prefix: str) -> int:
    """Delete, directly on the backend, every merchant whose name starts with ``prefix``.

    The tests delete their rows through DAL and assert it; this is the safety net that keeps
    `trade.merchants` clean when a test fails half-way."""
    with direct_conn.cursor() as cur:  # type: ignore[attr-defined]
        return cur.execute("DELETE FROM trade.merchants WHERE name LIKE %s", (prefix + "%",))


def count_direct(direct_conn: object, merchant_id: int) -> int:
    """How many rows with this id the backend holds (read directly, bypassing DAL)."""
    with direct_conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT COUNT(*) FROM trade.merchants WHERE id = %s", (merchant_id,))
        return cur.fetchone()[0]
