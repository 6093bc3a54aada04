"""Prepared-statement CRUD scenarios shared by the Python drivers (mysql-connector with
``cursor(prepared=True)``, the ``mariadb`` connector with ``cursor(binary=True)``).

``write`` inserts orders for several users (shards on both instances) and a merchant, reads
them back, updates them, and returns what it saw; the test compares that with direct reads of
the owning shards. ``delete`` removes them again. Both return plain values, so that a child
process (the mysql-connector C extension) can pickle them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

CREATED = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)
ORDER_COLUMNS = "id, user_id, status, total, note, created_at"
MERCHANT_COLUMNS = "id, name, region_id, rating, created_at"
INSERT_ORDER = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")


def write(cursor: Callable[[], Any], users: list[int], name: str) -> dict[str, Any]:
    obs: dict[str, Any] = {"ids": {}, "rows": {}, "lastrowid": {}}
    cur = cursor()
    for user in users:
        cur.execute(INSERT_ORDER, (user, 31, 2, Decimal("12.50"), f"note {user}", CREATED,
                                   CREATED))
        obs["lastrowid"][user] = cur.lastrowid
    for _ in range(2):  # the second execution reuses the prepared statement
        for user in users:
            cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ? ORDER BY id",
                        (user,))
            obs["rows"][user] = [tuple(r) for r in cur.fetchall()]
            obs["ids"][user] = obs["rows"][user][0][0] if obs["rows"][user] else None
    first = users[0]
    cur.execute("UPDATE orders SET note = ?, status = ? WHERE user_id = ? AND id = ?",
                ("updated", 5, first, obs["ids"][first]))
    obs["update_rowcount"] = cur.rowcount
    marks = ", ".join("?" * len(users))
    cur.execute(f"SELECT COUNT(*), SUM(total) FROM orders WHERE user_id IN ({marks})",
                tuple(users))
    obs["aggregate"] = tuple(cur.fetchone())
    cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id IN ({marks}) ORDER BY id",
                tuple(users))
    obs["scatter"] = [tuple(r) for r in cur.fetchall()]
    # Without ORDER BY: a text COM_QUERY streams such a scatter; an execution must not.
    cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id IN ({marks})", tuple(users))
    obs["scatter_unordered"] = [tuple(r) for r in cur.fetchall()]

    cur.execute("INSERT INTO merchants (name, region_id, rating, created_at) VALUES (?, ?, ?, ?)",
                (name, 7, Decimal("4.25"), CREATED))
    obs["merchant_id"] = merchant_id = cur.lastrowid
    cur.execute("UPDATE merchants SET rating = ?, region_id = ? WHERE id = ?",
                (Decimal("3.10"), None, merchant_id))
    obs["merchant_update_rowcount"] = cur.rowcount
    cur.execute(f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = ?", (merchant_id,))
    obs["merchant"] = tuple(cur.fetchone())
    cur.close()
    return obs


def delete(cursor: Callable[[], Any], ids: dict[int, int], merchant_id: int) -> dict[str, Any]:
    cur = cursor()
    counts = []
    for user, order_id in ids.items():
        cur.execute("DELETE FROM orders WHERE user_id = ? AND id = ?", (user, order_id))
        counts.append(cur.rowcount)
    cur.execute("DELETE FROM merchants WHERE id = ?", (merchant_id,))
    merchant = cur.rowcount
    cur.close()
    return {"order_rowcounts": counts, "merchant_rowcount": merchant}
