"""A seeded random workload on the sharded `orders` and `order_items` tables.

The same statement text is sent to DAL (logical database `trade`) and to an unsharded reference
database; `tests/differential/runner.py` compares what they answer. The generator keeps a small
model of the rows that exist (ids and their keys) so that point statements name real rows:
inserts add to it, deletes refresh it from the reference.

Every row this workload writes has a user id in ``[USER_BASE, USER_LAST]`` and a merchant id in
``[MERCHANT_BASE, MERCHANT_LAST]``, ranges no other test uses. Statements without a shard key
(scatters) always keep ``user_id BETWEEN USER_BASE AND USER_LAST``, so that rows other tests
leave in the shards never show up in a comparison.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal

SHARDS = 120
HALF = 60  # shards 0-59 live on instance a, 60-119 on instance b
USER_BASE = 7_300_000_000
USER_LAST = USER_BASE + 1_000_001
MERCHANT_BASE = 5_100_000_000
EXPLICIT_BASE = 4_200_000_000  # `base` of the gene ids this workload chooses itself
USER_RANGE = f"user_id BETWEEN {USER_BASE} AND {USER_LAST}"

ORDER_COLUMNS = ("id", "user_id", "merchant_id", "status", "total", "note", "created_at",
                 "updated_at")
ITEM_COLUMNS = ("id", "order_id", "user_id", "merchant_id", "sku", "qty", "price")
COLS = ", ".join(ORDER_COLUMNS)
ITEM_COLS = ", ".join(ITEM_COLUMNS)

EPOCH = datetime.datetime(2025, 3, 1, 8, 0, 0)
NOTES = (None, None, None, "gift", "Gift", "GIFT wrap", "Leave at door", "leave AT door",
         "call Me first", "O'Brien's order", "café au lait", "fragile \U0001F4E6", "", "zz top",
         "Zebra", "aardvark", "back\\slash")
SKUS = tuple(f"SKU-{n:03d}" for n in range(40))
# (ORDER BY clause, every one ends with the primary key so that the order is total)
ORDER_BYS = ("created_at, id", "total DESC, id", "status, total DESC, id", "note, id",
             "note DESC, id DESC", "user_id, created_at DESC, id", "updated_at DESC, id",
             "merchant_id, status DESC, id", "id DESC")
SELECT_LISTS = (COLS, "id, user_id, total", "id, status, note", "*", "id",
                "user_id, id, created_at, total")


def gene_id(base: int, user_id: int, merchant_id: int) -> int:
    """An order id whose gene names the user and merchant shards (DESIGN.md)."""
    return base * SHARDS * SHARDS + (merchant_id % SHARDS) * SHARDS + user_id % SHARDS


def gene_ok(row_id: int, user_id: int, merchant_id: int) -> bool:
    return (row_id > 0 and row_id % SHARDS == user_id % SHARDS
            and (row_id // SHARDS) % SHARDS == merchant_id % SHARDS)


def lit(value: object) -> str:
    """``value`` as an SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    return f"'{text}'"


@dataclass
class GeneratedInsert:
    """An INSERT whose ids DAL generates; the reference gets the same rows with those ids."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple]

    def reference_sql(self, ids: list[int]) -> str:
        values = ", ".join("(" + ", ".join(lit(v) for v in (*row, row_id)) + ")"
                           for row, row_id in zip(self.rows, ids, strict=True))
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}, id) VALUES {values}"

    def value(self, row: tuple, column: str) -> object:
        return row[self.columns.index(column)]


@dataclass
class Statement:
    """One statement of the workload.

    ``mode``: "compare" (run on DAL and the reference, results must be equal), "refuse" (DAL
    must refuse it with ``expect_code``, or with any error if that is None; the reference never
    sees it), "route" (DAL must run it without error; rows are not compared: merchant-keyed
    reads go to the merchant copy, which is not kept in sync yet)."""

    kind: str
    sql: str
    mode: str = "compare"
    ordered: bool = False
    scatter: bool = False
    expect_code: int | None = None
    generated: GeneratedInsert | None = None
    inserted: dict[str, list[dict]] = field(default_factory=dict)  # explicit-id rows by table
    refresh_users: tuple[int, ...] = ()
    index: int = -1


class Workload:
    """``count`` statements from ``seed``; call ``next()`` until it returns None, and report
    back with ``record_*``/``refresh`` as the runner learns ids and deletes rows."""

    def __init__(self, seed: int, count: int, users: int = 60, merchants: int = 20) -> None:
        self.seed = seed
        self.count = count
        self.rng = random.Random(seed)
        self.users = self._pick_users(users)
        self.merchants = sorted({MERCHANT_BASE + self.rng.randint(1, 10**6)
                                 for _ in range(merchants)})
        self.orders: dict[int, tuple[int, int]] = {}        # id -> (user_id, merchant_id)
        self.user_orders: dict[int, set[int]] = {u: set() for u in self.users}
        self.items: dict[int, tuple[int, int, int]] = {}    # id -> (order_id, user, merchant)
        self.order_items: dict[int, set[int]] = {}
        self.emitted = 0
        self.pending: deque[Statement] = deque()
        self.kinds: Counter[str] = Counter()
        self._clock = 0
        self._explicit = self.rng.randint(0, 10**6) * 1000
        self._recent_times: list[datetime.datetime] = []

    # -- the model ---------------------------------------------------------------------------

    def _pick_users(self, n: int) -> list[int]:
        """``n`` distinct user ids, half on each instance's shards."""
        chosen: set[int] = set()
        while len(chosen) < n:
            user = USER_BASE + self.rng.randint(1, 10**6)
            on_a = user % SHARDS < HALF
            if on_a == (len(chosen) % 2 == 0) and user not in chosen:
                chosen.add(user)
        return sorted(chosen)

    def record_order(self, row_id: int, user_id: int, merchant_id: int) -> None:
        self.orders[row_id] = (user_id, merchant_id)
        self.user_orders.setdefault(user_id, set()).add(row_id)

    def record_item(self, row_id: int, order_id: int, user_id: int, merchant_id: int) -> None:
        self.items[row_id] = (order_id, user_id, merchant_id)
        self.order_items.setdefault(order_id, set()).add(row_id)

    def refresh(self, users: tuple[int, ...], orders: list[tuple], items: list[tuple]) -> None:
        """Replace what the model knows of ``users`` with ``orders`` (id, user_id,
        merchant_id) and ``items`` (id, order_id, user_id, merchant_id) as they now exist."""
        for user in users:
            for row_id in self.user_orders.get(user, set()):
                self.orders.pop(row_id, None)
                for item in self.order_items.pop(row_id, set()):
                    self.items.pop(item, None)
            self.user_orders[user] = set()
        for row_id in [i for i, (_, u, _) in self.items.items() if u in users]:
            order_id = self.items.pop(row_id)[0]
            self.order_items.get(order_id, set()).discard(row_id)
        for row_id, user_id, merchant_id in orders:
            self.record_order(row_id, user_id, merchant_id)
        for row_id, order_id, user_id, merchant_id in items:
            self.record_item(row_id, order_id, user_id, merchant_id)

    # -- the stream --------------------------------------------------------------------------

    def next(self) -> Statement | None:
        if self.emitted >= self.count:
            return None
        if not self.pending:
            self.pending.extend(self._make())
        stmt = self.pending.popleft()
        stmt.index = self.emitted
        self.emitted += 1
        self.kinds[stmt.kind] += 1
        return stmt

    def _make(self) -> list[Statement]:
        if len(self.orders) < 40:
            return [self.ins_order()]
        kinds, weights = zip(*WEIGHTS.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        if kind.startswith(("ins_item", "upd_items", "del_items", "items_", "join")) \
                and not self.items:
            kind = "ins_item"
        made = getattr(self, kind)()
        return made if isinstance(made, list) else [made]

    # -- values ------------------------------------------------------------------------------

    def _time(self) -> datetime.datetime:
        """A literal timestamp; now and then one seen before, so that ORDER BY meets ties."""
        if self._recent_times and self.rng.random() < 0.1:
            return self.rng.choice(self._recent_times)
        self._clock += self.rng.randint(1, 500)
        value = EPOCH + datetime.timedelta(seconds=self._clock,
                                           microseconds=self.rng.choice(
                                               (0, 0, self.rng.randint(0, 999_999))))
        self._recent_times = [*self._recent_times[-20:], value]
        return value

    def _total(self) -> Decimal:
        r = self.rng.random()
        if r < 0.08:
            return Decimal("0.00")
        if r < 0.12:
            return self.rng.choice((Decimal("9999999999.99"), Decimal("1234567890.12"),
                                    Decimal("8000000000.50")))
        if r < 0.14:
            return Decimal(-self.rng.randint(1, 50000)) / 100
        return Decimal(self.rng.randint(1, 2_000_000)) / 100

    def _status(self) -> int:
        return self.rng.randint(0, 5)

    def _user(self) -> int:
        return self.rng.choice(self.users)

    def _users(self, low: int = 2, high: int = 8) -> list[int]:
        """Several users spanning both instances, sometimes one named twice."""
        n = self.rng.randint(low, high)
        on_a = [u for u in self.users if u % SHARDS < HALF]
        on_b = [u for u in self.users if u % SHARDS >= HALF]
        chosen = [self.rng.choice(on_a), self.rng.choice(on_b)]
        chosen += self.rng.sample(self.users, n - 2)
        if self.rng.random() < 0.1:
            chosen.append(chosen[0])
        self.rng.shuffle(chosen)
        return chosen

    def _user_key(self, user: int) -> str:
        """A user id literal; an application sometimes quotes numbers."""
        return f"'{user}'" if self.rng.random() < 0.05 else str(user)

    def _order(self, user: int | None = None) -> tuple[int, int, int] | None:
        """(id, user, merchant) of an existing order, of ``user`` when given."""
        if user is not None:
            ids = self.user_orders.get(user)
            if not ids:
                return None
            row_id = self.rng.choice(sorted(ids))
        else:
            if not self.orders:
                return None
            row_id = self.rng.choice(list(self.orders))
        return (row_id, *self.orders[row_id])

    def _user_with_orders(self) -> int:
        users = [u for u in self.users if self.user_orders.get(u)]
        return self.rng.choice(users) if users else self._user()

    def _explicit_base(self) -> int:
        self._explicit += 1
        return EXPLICIT_BASE + self._explicit

    def _range(self) -> str:
        """The predicate that keeps a scatter on this test's rows, sometimes narrowed."""
        r = self.rng.random()
        if r < 0.6:
            return USER_RANGE
        if r < 0.8:
            pivot = self.rng.choice(self.users)
            op = self.rng.choice((">", "<=", ">="))
            return f"{USER_RANGE} AND user_id {op} {pivot}"
        if r < 0.9:
            return f"user_id >= {USER_BASE} AND user_id <= {USER_LAST}"
        low, high = sorted(self.rng.sample(self.merchants, 2))
        return f"{USER_RANGE} AND merchant_id BETWEEN {low} AND {high}"

    def _limit(self) -> str:
        r = self.rng.random()
        n = self.rng.randint(1, 25)
        m = self.rng.randint(0, 40)
        if r < 0.25:
            return ""
        if r < 0.55:
            return f" LIMIT {n}"
        if r < 0.85:
            return f" LIMIT {n} OFFSET {m}"
        return f" LIMIT {m}, {n}"

    def _order_row(self, user: int) -> tuple:
        merchant = self.rng.choice(self.merchants)
        created = self._time()
        updated = created + datetime.timedelta(seconds=self.rng.choice((0, 0, 1, 3600)))
        return (user, merchant, self._status(), self._total(), self.rng.choice(NOTES),
                created, updated)

    # -- writes ------------------------------------------------------------------------------

    def ins_order(self) -> Statement:
        columns = ("user_id", "merchant_id", "status", "total", "note", "created_at",
                   "updated_at")
        row = self._order_row(self._user())
        if self.rng.random() < 0.3:  # another column order
            order = (1, 0, 3, 2, 6, 5, 4)
            columns = tuple(columns[i] for i in order)
            row = tuple(row[i] for i in order)
        gen = GeneratedInsert("orders", columns, [row])
        return Statement("ins_order", _insert_sql("orders", columns, [row]), generated=gen)

    def ins_order_multi(self) -> Statement:
        columns = ("user_id", "merchant_id", "status", "total", "note", "created_at",
                   "updated_at")
        n = self.rng.randint(2, 6)
        users = [self._user() for _ in range(n)]
        if self.rng.random() < 0.3:
            users[1] = users[0]  # two rows of one user in one statement
        rows = []
        seen: set[tuple[int, datetime.datetime]] = set()
        for user in users:
            row = self._order_row(user)
            while (user, row[5]) in seen:  # the runner finds the ids by (user, created_at)
                row = self._order_row(user)
            seen.add((user, row[5]))
            rows.append(row)
        gen = GeneratedInsert("orders", columns, rows)
        return Statement("ins_order_multi", _insert_sql("orders", columns, rows), generated=gen)

    def ins_order_explicit(self) -> Statement:
        columns = ("id", "user_id", "merchant_id", "status", "total", "note", "created_at",
                   "updated_at")
        rows = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            row = self._order_row(self._user())
            rows.append((gene_id(self._explicit_base(), row[0], row[1]), *row))
        stmt = Statement("ins_order_explicit", _insert_sql("orders", columns, rows))
        stmt.inserted["orders"] = [dict(zip(columns, r, strict=True)) for r in rows]
        return stmt

    def ins_item(self) -> Statement:
        """Items with gene ids chosen here: of one order, or of orders of several users."""
        columns = ("id", "order_id", "user_id", "merchant_id", "sku", "qty", "price")
        orders = [self._order() for _ in range(self.rng.choice((1, 1, 1, 2, 3)))]
        rows = []
        for order in orders:
            assert order is not None
            order_id, user, merchant = order
            for _ in range(self.rng.randint(1, 3)):
                rows.append((gene_id(self._explicit_base(), user, merchant), order_id, user,
                             merchant, self.rng.choice(SKUS), self.rng.randint(0, 20),
                             self._price()))
        stmt = Statement("ins_item", _insert_sql("order_items", columns, rows))
        stmt.inserted["order_items"] = [dict(zip(columns, r, strict=True)) for r in rows]
        return stmt

    def ins_item_gen(self) -> Statement:
        """One item whose id DAL generates."""
        columns = ("order_id", "user_id", "merchant_id", "sku", "qty", "price")
        order = self._order()
        assert order is not None
        order_id, user, merchant = order
        row = (order_id, user, merchant, self.rng.choice(SKUS), self.rng.randint(1, 9),
               self._price())
        gen = GeneratedInsert("order_items", columns, [row])
        return Statement("ins_item_gen", _insert_sql("order_items", columns, [row]),
                         generated=gen)

    def _price(self) -> Decimal:
        r = self.rng.random()
        if r < 0.05:
            return Decimal("0.00")
        if r < 0.08:
            return Decimal("99999.99")
        return Decimal(self.rng.randint(1, 100000)) / 100

    def upd_user(self) -> Statement:
        user = self._user_with_orders()
        r = self.rng.random()
        if r < 0.5:
            sql = (f"UPDATE orders SET status = {self._status()}, updated_at = "
                   f"{lit(self._time())} WHERE user_id = {self._user_key(user)} AND status = "
                   f"{self._status()}")
        elif r < 0.8:
            sql = (f"UPDATE orders SET note = {lit(self.rng.choice(NOTES))} WHERE user_id = "
                   f"{user} AND total < {lit(self._total())}")
        else:
            sql = (f"UPDATE orders SET total = total + 1.25 WHERE user_id = {user} "
                   f"AND total < 1000")
        return Statement("upd_user", sql)

    def upd_user_id(self) -> Statement:
        order = self._order(self._user_with_orders()) or self._order()
        assert order is not None
        row_id, user, _ = order
        sql = (f"UPDATE orders SET total = {lit(self._total())}, note = "
               f"{lit(self.rng.choice(NOTES))}, updated_at = {lit(self._time())} "
               f"WHERE user_id = {user} AND id = {row_id}")
        return Statement("upd_user_id", sql)

    def upd_id(self) -> Statement:
        order = self._order()
        assert order is not None
        if self.rng.random() < 0.7:
            sql = (f"UPDATE orders SET status = {self._status()}, note = NULL WHERE id = "
                   f"{order[0]}")
        else:
            ids = sorted({self._order()[0] for _ in range(self.rng.randint(2, 4))})  # type: ignore[index]
            sql = (f"UPDATE orders SET updated_at = {lit(self._time())} WHERE id IN "
                   f"({', '.join(map(str, ids))})")
        return Statement("upd_id", sql)

    def upd_in(self) -> Statement:
        users = self._users(2, 5)
        sql = (f"UPDATE orders SET status = {self._status()} WHERE user_id IN "
               f"({', '.join(map(str, users))}) AND total < {lit(self._total())}")
        return Statement("upd_in", sql)

    def upd_items(self) -> Statement:
        item_id = self.rng.choice(list(self.items))
        order_id, user, _ = self.items[item_id]
        if self.rng.random() < 0.5:
            sql = (f"UPDATE order_items SET qty = qty + 1, price = {lit(self._price())} "
                   f"WHERE order_id = {order_id}")
        else:
            sql = (f"UPDATE order_items SET qty = {self.rng.randint(0, 30)} WHERE user_id = "
                   f"{user} AND id = {item_id}")
        return Statement("upd_items", sql)

    def del_id(self) -> list[Statement]:
        """An order and its items, deleted by order id."""
        row_id, user, _ = self._order()  # type: ignore[misc]
        return [Statement("del_items", f"DELETE FROM order_items WHERE order_id = {row_id}",
                          refresh_users=(user,)),
                Statement("del_id", f"DELETE FROM orders WHERE id = {row_id}",
                          refresh_users=(user,))]

    def del_user(self) -> Statement:
        user = self._user_with_orders()
        sql = (f"DELETE FROM orders WHERE user_id = {user} AND status = {self._status()} "
               f"AND total < {lit(self._total())}")
        return Statement("del_user", sql, refresh_users=(user,))

    def del_items(self) -> Statement:
        item_id = self.rng.choice(list(self.items))
        _, user, _ = self.items[item_id]
        if self.rng.random() < 0.5:
            sql = (f"DELETE FROM order_items WHERE user_id = {user} AND qty > "
                   f"{self.rng.randint(5, 15)}")
        else:
            sql = f"DELETE FROM order_items WHERE id = {item_id}"
        return Statement("del_items", sql, refresh_users=(user,))

    def dup_key(self) -> Statement:
        """An explicit id that exists already: both must fail with 1062."""
        row_id, user, merchant = self._order()  # type: ignore[misc]
        row = self._order_row(user)
        row = (row_id, user, merchant, *row[2:])
        return Statement("dup_key", _insert_sql("orders", ORDER_COLUMNS, [row]))

    def bad_value(self) -> Statement:
        """A value out of range for DECIMAL(12,2): both must fail (strict mode)."""
        row = self._order_row(self._user())
        row = (gene_id(self._explicit_base(), row[0], row[1]), row[0], row[1], row[2],
               Decimal("12345678901.00"), *row[4:])
        return Statement("bad_value", _insert_sql("orders", ORDER_COLUMNS, [row]))

    # -- point reads -------------------------------------------------------------------------

    def sel_user(self) -> Statement:
        user = self._user_with_orders()
        cols = self.rng.choice(SELECT_LISTS)
        where = f"user_id = {self._user_key(user)}"
        if self.rng.random() < 0.3:
            where += f" AND status IN ({self._status()}, {self._status()})"
        if self.rng.random() < 0.6:
            order = self.rng.choice(ORDER_BYS)
            return Statement("sel_user", f"SELECT {cols} FROM orders WHERE {where} ORDER BY "
                             f"{order}{self._limit()}", ordered=True)
        return Statement("sel_user", f"SELECT {cols} FROM orders WHERE {where}")

    def sel_id(self) -> Statement:
        row_id, user, _ = self._order()  # type: ignore[misc]
        if self.rng.random() < 0.05:
            row_id += SHARDS  # an id that names the same shard but does not exist
        where = f"id = {row_id}"
        if self.rng.random() < 0.3:
            where += f" AND user_id = {user}"
        return Statement("sel_id", f"SELECT {self.rng.choice(SELECT_LISTS)} FROM orders "
                         f"WHERE {where}")

    def sel_in(self) -> Statement:
        users = self._users()
        cols = self.rng.choice(SELECT_LISTS)
        where = f"user_id IN ({', '.join(self._user_key(u) for u in users)})"
        if self.rng.random() < 0.3:
            where += f" AND total >= {lit(self._total())}"
        if self.rng.random() < 0.6:
            return Statement("sel_in", f"SELECT {cols} FROM orders WHERE {where} ORDER BY "
                             f"{self.rng.choice(ORDER_BYS)}{self._limit()}", ordered=True)
        return Statement("sel_in", f"SELECT {cols} FROM orders WHERE {where}")

    def sel_or(self) -> Statement:
        users = self._users(2, 3)
        where = " OR ".join(f"user_id = {u}" for u in users)
        if self.rng.random() < 0.5:
            return Statement("sel_or", f"SELECT {COLS} FROM orders WHERE {where} ORDER BY "
                             f"{self.rng.choice(ORDER_BYS)}{self._limit()}", ordered=True)
        if self.rng.random() < 0.5:
            where = f"({where}) AND status <> {self._status()}"
        return Statement("sel_or", f"SELECT id, user_id, status FROM orders WHERE {where}")

    def sel_id_in(self) -> Statement:
        ids = [self._order()[0] for _ in range(self.rng.randint(2, 6))]  # type: ignore[index]
        sql = f"SELECT {COLS} FROM orders WHERE id IN ({', '.join(map(str, ids))})"
        if self.rng.random() < 0.5:
            return Statement("sel_id_in", sql + " ORDER BY id DESC", ordered=True)
        return Statement("sel_id_in", sql)

    def agg_user(self) -> Statement:
        user = self._user_with_orders()
        if self.rng.random() < 0.5:
            sql = (f"SELECT status, COUNT(*), SUM(total), MAX(total), MIN(created_at) FROM "
                   f"orders WHERE user_id = {user} GROUP BY status ORDER BY status")
            return Statement("agg_user", sql, ordered=True)
        sql = (f"SELECT COUNT(*), SUM(total), AVG(total), MIN(total), MAX(updated_at) FROM "
               f"orders WHERE user_id = {user}")
        return Statement("agg_user", sql, ordered=True)

    def agg_in(self) -> Statement:
        users = ", ".join(map(str, self._users()))
        r = self.rng.random()
        if r < 0.4:
            sql = (f"SELECT user_id, COUNT(*) AS n, SUM(total) AS s FROM orders WHERE user_id "
                   f"IN ({users}) GROUP BY user_id ORDER BY user_id")
        elif r < 0.7:
            sql = (f"SELECT COUNT(*), SUM(total), AVG(total), MIN(total), MAX(total) FROM "
                   f"orders WHERE user_id IN ({users})")
        else:
            sql = (f"SELECT status, COUNT(*), AVG(total) FROM orders WHERE user_id IN ({users}) "
                   f"GROUP BY status HAVING COUNT(*) > {self.rng.randint(0, 3)} ORDER BY status")
        return Statement("agg_in", sql, ordered=True)

    def items_user(self) -> Statement:
        _, user, _ = self.items[self.rng.choice(list(self.items))]
        if self.rng.random() < 0.7:
            sql = (f"SELECT {ITEM_COLS} FROM order_items WHERE user_id = {user} "
                   f"ORDER BY order_id, id")
            return Statement("items_user", sql, ordered=True)
        sql = (f"SELECT sku, SUM(qty), COUNT(*) FROM order_items WHERE user_id = {user} "
               f"GROUP BY sku")
        return Statement("items_user", sql)

    def items_order(self) -> Statement:
        order_id, _, _ = self.items[self.rng.choice(list(self.items))]
        return Statement("items_order", f"SELECT {ITEM_COLS} FROM order_items WHERE order_id = "
                         f"{order_id}")

    def join_user(self) -> Statement:
        _, user, _ = self.items[self.rng.choice(list(self.items))]
        on = "i.order_id = o.id"
        if self.rng.random() < 0.3:
            on += " AND i.user_id = o.user_id"
        if self.rng.random() < 0.7:
            sql = (f"SELECT o.id, o.status, o.total, i.id AS item_id, i.sku, i.qty, i.price "
                   f"FROM orders o JOIN order_items i ON {on} WHERE o.user_id = {user} "
                   f"ORDER BY o.id, i.id")
            return Statement("join_user", sql, ordered=True)
        sql = (f"SELECT o.id, COUNT(*), SUM(i.qty * i.price) FROM orders o JOIN order_items i "
               f"ON {on} WHERE o.user_id = {user} GROUP BY o.id")
        return Statement("join_user", sql)

    def join_in(self) -> Statement:
        users = ", ".join(map(str, self._users(2, 5)))
        if self.rng.random() < 0.6:
            sql = (f"SELECT o.user_id, o.id, i.id, i.sku, i.qty FROM orders o JOIN order_items "
                   f"i ON i.order_id = o.id WHERE o.user_id IN ({users}) ORDER BY o.user_id, "
                   f"o.id, i.id{self._limit()}")
            return Statement("join_in", sql, ordered=True)
        sql = (f"SELECT o.user_id, COUNT(i.id), SUM(i.qty * i.price) FROM orders o JOIN "
               f"order_items i ON i.order_id = o.id WHERE o.user_id IN ({users}) "
               f"GROUP BY o.user_id ORDER BY o.user_id")
        return Statement("join_in", sql, ordered=True)

    # -- scatter reads -----------------------------------------------------------------------

    def _scatter(self, kind: str, sql: str, ordered: bool) -> Statement:
        return Statement(kind, sql, ordered=ordered, scatter=True)

    def sc_agg(self) -> Statement:
        where = self._range()
        if self.rng.random() < 0.4:
            where += f" AND status = {self._status()}"
        r = self.rng.random()
        if r < 0.5:
            sql = (f"SELECT COUNT(*), SUM(total), MIN(total), MAX(total), AVG(total) FROM "
                   f"orders WHERE {where}")
        elif r < 0.7:
            sql = (f"SELECT COUNT(*) AS n, COUNT(note), MIN(created_at), MAX(updated_at) FROM "
                   f"orders WHERE {where}")
        elif r < 0.85:
            sql = f"SELECT SUM(total) AS revenue, AVG(status) FROM orders WHERE {where}"
        else:
            sql = f"SELECT COUNT(*) FROM orders WHERE {where} AND note IS NULL"
        return self._scatter("sc_agg", sql, True)

    def sc_group_status(self) -> Statement:
        where = self._range()
        having = self.rng.choice(("", f" HAVING COUNT(*) > {self.rng.randint(1, 60)}",
                                  f" HAVING SUM(total) > {lit(self._total())}",
                                  " HAVING n >= 2 AND MAX(total) > 100"))
        sql = (f"SELECT status, COUNT(*) AS n, SUM(total), AVG(total), MIN(total), MAX(total) "
               f"FROM orders WHERE {where} GROUP BY status{having}")
        if self.rng.random() < 0.7:
            order = self.rng.choice(("status", "status DESC", "n DESC, status"))
            return self._scatter("sc_group_status", f"{sql} ORDER BY {order}", True)
        return self._scatter("sc_group_status", sql, False)

    def sc_group_user(self) -> Statement:
        where = self._range()
        having = self.rng.choice(("", f" HAVING SUM(total) > {lit(self._total())}",
                                  f" HAVING COUNT(*) >= {self.rng.randint(1, 40)}"))
        order = self.rng.choice(("user_id", "s DESC, user_id", "n, user_id DESC"))
        sql = (f"SELECT user_id, COUNT(*) AS n, SUM(total) AS s FROM orders WHERE {where} "
               f"GROUP BY user_id{having} ORDER BY {order}{self._limit()}")
        return self._scatter("sc_group_user", sql, True)

    def sc_order_limit(self) -> Statement:
        cols = self.rng.choice(SELECT_LISTS)
        where = self._range()
        if self.rng.random() < 0.3:
            where += f" AND status IN ({self._status()}, {self._status()})"
        sql = (f"SELECT {cols} FROM orders WHERE {where} ORDER BY "
               f"{self.rng.choice(ORDER_BYS)}{self._limit() or ' LIMIT 20'}")
        return self._scatter("sc_order_limit", sql, True)

    def sc_distinct(self) -> Statement:
        where = self._range()
        r = self.rng.random()
        if r < 0.4:
            return self._scatter("sc_distinct", f"SELECT DISTINCT status FROM orders WHERE "
                                 f"{where} ORDER BY status", True)
        if r < 0.7:
            return self._scatter("sc_distinct", f"SELECT DISTINCT status FROM orders WHERE "
                                 f"{where}", False)
        return self._scatter("sc_distinct", f"SELECT DISTINCT merchant_id, status FROM orders "
                             f"WHERE {where} ORDER BY merchant_id, status{self._limit()}", True)

    def sc_count_distinct(self) -> Statement:
        where = self._range()
        r = self.rng.random()
        if r < 0.4:
            sql = f"SELECT COUNT(DISTINCT user_id) FROM orders WHERE {where}"
        elif r < 0.7:
            sql = (f"SELECT COUNT(DISTINCT status), COUNT(DISTINCT merchant_id), COUNT(*) FROM "
                   f"orders WHERE {where}")
        else:
            sql = (f"SELECT status, COUNT(DISTINCT user_id) FROM orders WHERE {where} "
                   f"GROUP BY status ORDER BY status")
        return self._scatter("sc_count_distinct", sql, True)

    def sc_plain(self) -> Statement:
        where = f"{self._range()} AND status = {self._status()}"
        return self._scatter("sc_plain", f"SELECT id, user_id, total, note FROM orders "
                             f"WHERE {where}", False)

    def sc_items(self) -> Statement:
        r = self.rng.random()
        if r < 0.4:
            sql = (f"SELECT sku, SUM(qty), COUNT(*) FROM order_items WHERE {USER_RANGE} "
                   f"GROUP BY sku ORDER BY sku")
        elif r < 0.7:
            sql = (f"SELECT AVG(qty), AVG(price), SUM(price), COUNT(*) FROM order_items "
                   f"WHERE {USER_RANGE}")
        else:
            sql = (f"SELECT {ITEM_COLS} FROM order_items WHERE {USER_RANGE} ORDER BY price DESC, "
                   f"id{self._limit() or ' LIMIT 10'}")
        return self._scatter("sc_items", sql, True)

    def sc_join(self) -> Statement:
        if self.rng.random() < 0.6:
            sql = (f"SELECT o.status, COUNT(*), SUM(i.qty) FROM orders o JOIN order_items i "
                   f"ON i.order_id = o.id WHERE o.{USER_RANGE} GROUP BY o.status ORDER BY "
                   f"o.status")
        else:
            sql = (f"SELECT o.id, o.user_id, i.id, i.price FROM orders o JOIN order_items i ON "
                   f"i.order_id = o.id WHERE o.{USER_RANGE} ORDER BY i.price DESC, i.id LIMIT "
                   f"{self.rng.randint(1, 15)}")
        return self._scatter("sc_join", sql, True)

    def sc_empty(self) -> Statement:
        """Aggregates over no rows: one row of 0 and NULLs, or no group at all."""
        where = f"{USER_RANGE} AND status = 9"
        if self.rng.random() < 0.6:
            sql = (f"SELECT COUNT(*), SUM(total), AVG(total), MIN(total), MAX(note) FROM orders "
                   f"WHERE {where}")
        else:
            sql = f"SELECT status, COUNT(*) FROM orders WHERE {where} GROUP BY status"
        return self._scatter("sc_empty", sql, True)

    def sc_expr(self) -> Statement:
        where = self._range()
        sql = (f"SELECT id, total * 2 AS twice, status + 1 FROM orders WHERE {where} "
               f"ORDER BY twice DESC, id{self._limit() or ' LIMIT 7'}")
        return self._scatter("sc_expr", sql, True)

    # -- checks of routing and refusal, DAL only ---------------------------------------------

    def merchant_read(self) -> Statement:
        merchant = self.rng.choice(self.merchants)
        if self.rng.random() < 0.5:
            sql = f"SELECT {COLS} FROM orders WHERE merchant_id = {merchant}"
        else:
            other = self.rng.choice(self.merchants)
            sql = (f"SELECT id, status FROM orders WHERE merchant_id IN ({merchant}, {other}) "
                   f"ORDER BY id LIMIT 5")
        return Statement("merchant_read", sql, mode="route")

    def refuse(self) -> Statement:
        """Statements DAL must refuse. Each would change no row if it ran (status 9 never
        exists), so a DAL that ran one anyway would not spoil the comparison."""
        user = self._user()
        other = self._user()
        merchant = self.rng.choice(self.merchants)
        choices = [
            (f"UPDATE orders SET note = 'x' WHERE {USER_RANGE} AND status = 9", 1235),
            (f"DELETE FROM orders WHERE status = 9 AND {USER_RANGE}", 1235),
            (f"UPDATE orders SET user_id = {other} WHERE user_id = {user} AND status = 9", 1235),
            (f"UPDATE orders SET merchant_id = {merchant} WHERE user_id = {user} AND status = 9",
             1235),
            (f"UPDATE orders SET status = 1 WHERE merchant_id = {merchant} AND status = 9",
             1235),
            (f"DELETE FROM order_items WHERE merchant_id = {merchant} AND qty = -1", 1235),
        ]
        sql, code = self.rng.choice(choices)
        if self.rng.random() < 0.2:
            # an explicit id that contradicts its keys
            row = self._order_row(user)
            bad = gene_id(self._explicit_base(), user + 1, row[1])
            sql, code = _insert_sql("orders", ORDER_COLUMNS, [(bad, *row)]), None
        return Statement("refuse", sql, mode="refuse", expect_code=code)

    def err_unknown(self) -> Statement:
        """An unknown column: both must fail with the same error."""
        user = self._user()
        if self.rng.random() < 0.6:
            sql = f"SELECT id, no_such_column FROM orders WHERE user_id = {user}"
        else:
            sql = f"SELECT COUNT(no_such_column) FROM orders WHERE {USER_RANGE}"
        return Statement("err_unknown", sql)


def _insert_sql(table: str, columns: tuple[str, ...], rows: list[tuple]) -> str:
    values = ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


# Relative weights of the statement kinds (after the first 40 orders exist).
WEIGHTS: dict[str, float] = {
    # writes
    "ins_order": 12, "ins_order_multi": 4, "ins_order_explicit": 2, "ins_item": 5,
    "ins_item_gen": 3, "upd_user": 3, "upd_user_id": 2, "upd_id": 2, "upd_in": 1,
    "upd_items": 1.5, "del_id": 1, "del_user": 1, "del_items": 0.5, "dup_key": 0.3,
    "bad_value": 0.2,
    # point reads, IN lists, ORs, joins on a user key
    "sel_user": 7, "sel_id": 5, "sel_in": 5, "sel_or": 3, "sel_id_in": 2, "agg_user": 2,
    "agg_in": 2, "items_user": 2, "items_order": 1.5, "join_user": 3, "join_in": 2,
    # scatters, kept on this test's user range
    "sc_agg": 3, "sc_group_status": 3, "sc_group_user": 2.5, "sc_order_limit": 6,
    "sc_distinct": 2, "sc_count_distinct": 2, "sc_plain": 2, "sc_items": 1.5, "sc_join": 1.5,
    "sc_empty": 1, "sc_expr": 1,
    # routing and refusals, DAL only; errors on both
    "merchant_read": 1, "refuse": 1, "err_unknown": 0.5,
}
