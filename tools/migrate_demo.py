"""Fill the legacy database of a migration with demo orders (`dal migrate demo`).

  dal migrate demo --config config/migrate-demo.yaml               200,000 orders, if not there
  dal migrate demo --rows 5000 --seed 7 --config F                 another size, another seed
  dal migrate demo --reset --config F                              empty everything and refill

Creates the migration's source database (config/schema/legacy_trade.sql) on its source
instance and fills `orders` with --rows orders of 1-5 `order_items` each, ids from
AUTO_INCREMENT: users and merchants with a skewed popularity, statuses that depend on an
order's age, creation times over two years in id order. The same --seed gives the same rows.
Then the control row of the logical database is created with phase `legacy`.

A second run with the same --rows does nothing. --reset (or a different --rows) empties the
legacy tables, the migrated tables in every shard and the migration's control rows (lookup,
backfill checkpoints, repair log), and sets the phase back to `legacy`; it refuses while the
phase is not `legacy` (roll back first) unless --force. Logs in as the DBA account.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
from collections.abc import Iterator
from decimal import Decimal

import pymysql

from dal.migration import control
from tools.migrate import SUBCOMMANDS, Subcommand
from tools.migrate_layout import Layout, Place, layout_for, quote
from tools.schema import SCHEMA_DIR, split_statements

LEGACY_SCHEMA = SCHEMA_DIR / "schema" / "legacy_trade.sql"
BATCH = 1000  # orders per INSERT
START = datetime.datetime(2024, 1, 1)
SPAN = datetime.timedelta(days=730)
NOTES = ("leave at the door", "call on arrival", "no cutlery", "extra napkins", "gift wrap",
         "ring twice", "fragile")
# status: 0 created, 1 paid, 2 shipped, 3 delivered, 4 cancelled, 5 refunded
OLD_STATUSES, OLD_WEIGHTS = (3, 4, 5), (85, 10, 5)
NEW_STATUSES, NEW_WEIGHTS = (0, 1, 2, 3, 4), (10, 25, 30, 30, 5)
ITEM_COUNTS, ITEM_WEIGHTS = (1, 2, 3, 4, 5), (40, 25, 15, 12, 8)

ORDER_COLUMNS = ("user_id", "merchant_id", "status", "total", "note", "created_at", "updated_at")
ITEM_COLUMNS = ("order_id", "user_id", "merchant_id", "sku", "qty", "price")


class Generator:
    """Deterministic demo rows: orders in creation order, and each order's items."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rows = rows
        self.rng = random.Random(seed)
        self.users = self.rng.sample(range(1, 50_000_000), max(rows // 8, 50))
        self.merchants = self.rng.sample(range(1, 500_000), max(rows // 100, 20))

    def _pick(self, pool: list[int], skew: float) -> int:
        return pool[int(len(pool) * self.rng.random() ** skew)]

    def order(self, n: int) -> tuple[tuple, list[tuple]]:
        """Order number ``n`` (0-based) and its items without order_id: (order, items)."""
        rng = self.rng
        user, merchant = self._pick(self.users, 2.0), self._pick(self.merchants, 3.0)
        created = START + SPAN * (n / self.rows) + datetime.timedelta(seconds=rng.randrange(600))
        recent = n > self.rows * 0.97
        status = rng.choices(*((NEW_STATUSES, NEW_WEIGHTS) if recent
                               else (OLD_STATUSES, OLD_WEIGHTS)))[0]
        items = []
        for _ in range(rng.choices(ITEM_COUNTS, ITEM_WEIGHTS)[0]):
            price = Decimal(int(rng.lognormvariate(7.3, 0.9)) % 30000 + 100) / 100
            items.append((user, merchant, f"SKU-{merchant}-{rng.randrange(1, 400):04d}",
                          rng.choices((1, 2, 3, 4), (70, 20, 7, 3))[0], price))
        total = sum((qty * price for *_, qty, price in items), Decimal("0.00"))
        note = rng.choice(NOTES) if rng.random() < 0.1 else None
        updated = created + datetime.timedelta(minutes=rng.randrange(1, 60 * 72) * (status > 0))
        return (user, merchant, status, total, note, created, updated), items

    def batches(self) -> Iterator[list[tuple[tuple, list[tuple]]]]:
        for start in range(0, self.rows, BATCH):
            yield [self.order(n) for n in range(start, min(start + BATCH, self.rows))]


def _insert(cur, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    """One multi-row INSERT; the first AUTO_INCREMENT id it used."""
    marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([marks] * len(rows)), [v for row in rows for v in row])
    return int(cur.lastrowid)


def fill(layout: Layout, rows: int, seed: int, progress: bool) -> tuple[int, int]:
    """Insert the demo rows into the (empty) legacy tables; (orders, items) inserted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    gen = Generator(rows, seed)
    conn = layout.connect(layout.legacy.instance, database=layout.legacy.database)
    items_total = 0
    try:
        with conn.cursor() as cur, Progress(
                "demo: orders", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                disable=not progress) as bar:
            task = bar.add_task("orders", total=rows)
            for batch in gen.batches():
                conn.begin()
                first = _insert(cur, "orders", ORDER_COLUMNS, [o for o, _ in batch])
                cur.execute("SELECT id FROM orders WHERE id >= %s ORDER BY id LIMIT %s",
                            (first, len(batch)))
                ids = [r[0] for r in cur.fetchall()]
                items = [(oid, *item) for oid, (_, its) in zip(ids, batch, strict=True)
                         for item in its]
                _insert(cur, "order_items", ITEM_COLUMNS, items)
                conn.commit()
                items_total += len(items)
                bar.advance(task, len(batch))
    finally:
        conn.close()
    return rows, items_total


def create_legacy(layout: Layout) -> None:
    """Create the source database and its tables (config/schema/legacy_trade.sql) if missing."""
    conn = layout.connect(layout.legacy.instance, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(layout.legacy.database)}")
            cur.execute(f"USE {quote(layout.legacy.database)}")
            for _, stmt in split_statements(LEGACY_SCHEMA.read_text()):
                cur.execute(stmt)
    finally:
        conn.close()


def empty_everything(layout: Layout) -> None:
    """Empty the legacy tables, the migrated tables on every shard, and the control rows."""
    for table in layout.tables:
        layout.conns.query(layout.legacy.instance, f"TRUNCATE {layout.legacy.table(table)}")
    empty_copies(layout)


def empty_copies(layout: Layout) -> None:
    """Empty the migrated tables on every shard, and the migration's control rows."""
    for table in layout.tables:
        by_instance: dict[str, list[Place]] = {}
        for place in layout.all_places(table):
            by_instance.setdefault(place.instance, []).append(place)
        for instance, places in by_instance.items():  # only the non-empty ones (fast)
            found = layout.conns.query(instance, " UNION ALL ".join(
                f"(SELECT {i} FROM {p.table(table)} LIMIT 1)" for i, p in enumerate(places)))
            for (i,) in found:
                layout.conns.query(instance, f"TRUNCATE {places[int(i)].table(table)}")
    meta = layout.meta()
    try:
        with meta.cursor() as cur:
            control.reset_checkpoints(cur, layout.db)
            for table in ("migration_lookup", "migration_repair"):
                cur.execute(f"DELETE FROM dal_meta.{table} WHERE db = %s", (layout.db,))
    finally:
        meta.close()


def count_orders(layout: Layout) -> int:
    return int(layout.conns.query(layout.legacy.instance,
                                  f"SELECT COUNT(*) FROM {layout.legacy.table('orders')}")[0][0])


def set_legacy_phase(layout: Layout) -> None:
    """The control row: phase legacy, active (a new version when it existed)."""
    meta = layout.meta()
    try:
        with meta.cursor() as cur:
            row = control.read_phase(cur, layout.db)
            if row is None:
                control.ensure_phase(cur, layout.db)
            elif row.phase != "legacy" or row.state != control.ACTIVE or row.max_legacy_id:
                control.write_phase(cur, layout.db, "legacy", control.ACTIVE, None,
                                    row.version + 1, max_legacy_id=0)
    finally:
        meta.close()


def demo(layout: Layout, args: argparse.Namespace) -> int:
    """Create and fill the legacy database unless it already holds the requested demo."""
    create_legacy(layout)
    meta = layout.meta()
    try:
        with meta.cursor() as cur:
            phase = control.read_phase(cur, layout.db)
    finally:
        meta.close()
    present = count_orders(layout)
    if present == args.rows and phase is not None and not args.reset:
        print(f"demo: {layout.legacy.database} already holds {present} orders "
              f"(phase {phase.phase}); --reset refills it")
        return 0
    if phase is not None and phase.phase != "legacy" and not args.force:
        print(f"demo: refusing to refill while {layout.db} is in phase {phase.phase}: roll back "
              "to legacy with `dal migrate phase` first, or pass --force", file=sys.stderr)
        return 3
    empty_everything(layout)
    orders, items = fill(layout, args.rows, args.seed, not args.no_progress)
    set_legacy_phase(layout)
    print(f"demo: {orders} orders and {items} items in {layout.legacy.database} on instance "
          f"{layout.legacy.instance}; {layout.db} is in phase legacy")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, default=200_000, help="orders (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument("--db", help="the logical database (default: the one with a migration)")
    parser.add_argument("--reset", action="store_true", help="empty everything and refill")
    parser.add_argument("--force", action="store_true",
                        help="refill even when the phase is not legacy")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    layout = layout_for(args, "demo")
    if layout is None:
        return 2
    try:
        return demo(layout, args)
    except pymysql.Error as exc:
        print(f"dal migrate demo: {exc}", file=sys.stderr)
        return 1
    finally:
        layout.close()


SUBCOMMANDS["demo"] = Subcommand(
    "fill the legacy database with demo orders (phase legacy)",
    add_arguments, run)
