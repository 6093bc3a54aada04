"""Runs a workload through DAL and against the unsharded reference, and compares.

Every compared statement must give the same result on both: the same column names and types
(pymysql's ``cursor.description`` name and type code), the same rows (in the same order when
the statement has a total ORDER BY, as multisets otherwise), the same affected-row count for a
write, or the same error code. The first difference fails with the statement, its index, the
seed and both results.
"""

from __future__ import annotations

import datetime
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pymysql

from tests.differential.workload import (
    HALF,
    ITEM_COLS,
    SHARDS,
    USER_BASE,
    USER_LAST,
    USER_RANGE,
    GeneratedInsert,
    Statement,
    Workload,
    gene_ok,
)

COLS = "id, user_id, merchant_id, status, total, note, created_at, updated_at"
REFUSED = 1235


class Mismatch(AssertionError):
    """DAL and the reference disagree."""


@dataclass
class Outcome:
    error: tuple[int, str] | None = None
    columns: tuple[tuple[str, int], ...] | None = None
    rows: list[tuple] | None = None
    affected: int | None = None
    lastrowid: int | None = None

    def describe(self, limit: int = 6) -> str:
        if self.error is not None:
            return f"error {self.error[0]}: {shorten(self.error[1], 300)}"
        if self.rows is None:
            return f"ok, {self.affected} affected, lastrowid {self.lastrowid}"
        shown = ", ".join(shorten(repr(r), 200) for r in self.rows[:limit])
        more = f", ... ({len(self.rows)} rows)" if len(self.rows) > limit else ""
        return f"columns {list(self.columns or ())}; {len(self.rows)} rows: [{shown}{more}]"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def execute(conn: pymysql.connections.Connection, sql: str) -> Outcome:
    with conn.cursor() as cur:
        try:
            affected = cur.execute(sql)
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
            message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            return Outcome(error=(code, message))
        if cur.description is None:
            return Outcome(affected=affected, lastrowid=cur.lastrowid)
        columns = tuple((d[0], d[1]) for d in cur.description)
        return Outcome(columns=columns, rows=list(cur.fetchall()))


def canon(value: object) -> object:
    """A value as the client sees it: a Decimal keeps its scale, an int is not a Decimal."""
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, datetime.datetime | datetime.date | datetime.timedelta):
        return (type(value).__name__, str(value))
    if value is None:
        return ("null",)
    return (type(value).__name__, value)


def canon_rows(rows: list[tuple], ordered: bool) -> list[tuple]:
    out = [tuple(canon(v) for v in row) for row in rows]
    return out if ordered else sorted(out, key=repr)


def difference(dal: Outcome, ref: Outcome, ordered: bool) -> str | None:
    """Why ``dal`` differs from ``ref``, or None."""
    if ref.error is not None or dal.error is not None:
        if ref.error is None:
            assert dal.error is not None
            if dal.error[0] == REFUSED:
                return "DAL refused (1235) a statement the workload should be able to run"
            return "DAL failed, the reference did not"
        if dal.error is None:
            return "the reference failed, DAL did not"
        if dal.error[0] != ref.error[0]:
            return f"error codes differ: DAL {dal.error[0]}, reference {ref.error[0]}"
        return None
    if (dal.rows is None) != (ref.rows is None):
        return "one returned rows, the other an OK"
    if ref.rows is None:
        if dal.affected != ref.affected:
            return f"affected rows differ: DAL {dal.affected}, reference {ref.affected}"
        return None
    if dal.columns != ref.columns:
        return (f"columns (name, type code) differ: DAL {list(dal.columns or ())}, reference "
                f"{list(ref.columns or ())}")
    assert dal.rows is not None
    if len(dal.rows) != len(ref.rows):
        return f"row counts differ: DAL {len(dal.rows)}, reference {len(ref.rows)}"
    mine, theirs = canon_rows(dal.rows, ordered), canon_rows(ref.rows, ordered)
    for n, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if a != b:
            where = f"row {n}" if ordered else f"row {n} of the sorted multisets"
            return (f"rows differ at {where}: DAL {shorten(repr(a), 300)}, reference "
                    f"{shorten(repr(b), 300)}")
    return None


def instance_of(shard: int) -> str:
    return "a" if shard < HALF else "b"


@dataclass
class Stats:
    kinds: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    scatters: int = 0
    errors_compared: int = 0
    rows_compared: int = 0
    elapsed: float = 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return (f"{sum(self.kinds.values())} statements in {self.elapsed:.1f} s "
                f"({dict(self.modes)}, {self.scatters} scatters, {self.errors_compared} "
                f"compared errors, {self.rows_compared} compared rows): {kinds}")


class Differential:
    """DAL, the reference and direct connections to each backend instance (for the shards)."""

    def __init__(self, dal: pymysql.connections.Connection,
                 ref: pymysql.connections.Connection,
                 instances: dict[str, pymysql.connections.Connection], seed: int,
                 on_mismatch=None) -> None:
        self.dal = dal
        self.ref = ref
        self.instances = instances
        self.seed = seed
        self.on_mismatch = on_mismatch
        self.stats = Stats()
        self.previous: tuple[Statement, Outcome | None] | None = None
        self._last_dal: Outcome | None = None

    def _dal(self, sql: str) -> Outcome:
        self._last_dal = execute(self.dal, sql)
        return self._last_dal

    def fail(self, stmt: Statement, why: str, dal: Outcome | None = None,
             ref: Outcome | None = None, sql: str | None = None) -> None:
        lines = [f"differential mismatch at statement #{stmt.index} ({stmt.kind}) of seed "
                 f"{self.seed}: {why}", f"  statement: {shorten(stmt.sql, 1500)}"]
        if sql is not None and sql != stmt.sql:
            lines.append(f"  reference statement: {shorten(sql, 1500)}")
        if dal is not None:
            lines.append(f"  DAL:       {dal.describe()}")
        if ref is not None:
            lines.append(f"  reference: {ref.describe()}")
        if self.previous is not None:
            before, outcome = self.previous
            lines.append(f"  the statement before, #{before.index} ({before.kind}): "
                         f"{shorten(before.sql, 300)}")
            if outcome is not None:
                lines.append(f"    DAL answered: {outcome.describe(2)}")
        message = "\n".join(lines)
        if self.on_mismatch is not None:
            self.on_mismatch(stmt, message)
            return
        raise Mismatch(message)

    # -- the workload ------------------------------------------------------------------------

    def run(self, workload: Workload) -> Stats:
        started = time.monotonic()
        while (stmt := workload.next()) is not None:
            self.stats.kinds[stmt.kind] += 1
            self.stats.modes[stmt.mode] += 1
            self.stats.scatters += stmt.scatter
            if stmt.mode == "refuse":
                self._refused(stmt)
            elif stmt.mode == "route":
                self._routed(stmt)
            elif stmt.generated is not None:
                self._generated(stmt, stmt.generated, workload)
            else:
                self._compared(stmt, workload)
            self.previous = (stmt, self._last_dal)
            self._last_dal = None
        self.stats.elapsed = time.monotonic() - started
        return self.stats

    def _compared(self, stmt: Statement, workload: Workload) -> None:
        dal = self._dal(stmt.sql)
        ref = execute(self.ref, stmt.sql)
        why = difference(dal, ref, stmt.ordered)
        if why:
            self.fail(stmt, why, dal, ref)
            return
        if ref.error is not None:
            self.stats.errors_compared += 1
            return
        self.stats.rows_compared += len(ref.rows or ())
        for row in stmt.inserted.get("orders", ()):
            workload.record_order(row["id"], row["user_id"], row["merchant_id"])
        for row in stmt.inserted.get("order_items", ()):
            workload.record_item(row["id"], row["order_id"], row["user_id"], row["merchant_id"])
        if stmt.refresh_users:
            self.refresh(workload, stmt.refresh_users)

    def refresh(self, workload: Workload, users: tuple[int, ...]) -> None:
        listed = ", ".join(map(str, users))
        orders = execute(self.ref, f"SELECT id, user_id, merchant_id FROM orders WHERE user_id "
                         f"IN ({listed})")
        items = execute(self.ref, f"SELECT id, order_id, user_id, merchant_id FROM order_items "
                        f"WHERE user_id IN ({listed})")
        assert orders.rows is not None and items.rows is not None
        workload.refresh(users, orders.rows, items.rows)

    def _generated(self, stmt: Statement, gen: GeneratedInsert, workload: Workload) -> None:
        """An INSERT without ids through DAL; the reference gets the rows with DAL's ids."""
        dal = self._dal(stmt.sql)
        if dal.error is not None:
            self.fail(stmt, "DAL failed an INSERT whose ids it generates", dal)
            return
        if dal.affected != len(gen.rows):
            self.fail(stmt, f"DAL reports {dal.affected} affected rows for {len(gen.rows)} "
                      "inserted", dal)
            return
        if len(gen.rows) == 1:
            ids = [dal.lastrowid or 0]
        else:
            found = self._find_ids(stmt, gen, workload)
            if found is None:
                return
            ids = found
            if dal.lastrowid != ids[0]:
                self.fail(stmt, f"lastrowid {dal.lastrowid} is not the first row's generated "
                          f"id {ids[0]} (ids {ids})", dal)
                return
        table = gen.table
        known = workload.orders if table == "orders" else workload.items
        for row, row_id in zip(gen.rows, ids, strict=True):
            user, merchant = gen.value(row, "user_id"), gen.value(row, "merchant_id")
            if not gene_ok(row_id, user, merchant) or row_id in known:  # type: ignore[arg-type]
                self.fail(stmt, f"generated id {row_id} does not carry the gene of user_id "
                          f"{user} and merchant_id {merchant}, or is not new", dal)
                return
        if len(set(ids)) != len(ids):
            self.fail(stmt, f"generated ids are not distinct: {ids}", dal)
            return
        ref_sql = gen.reference_sql(ids)
        ref = execute(self.ref, ref_sql)
        why = difference(dal, ref, False)
        if why:
            self.fail(stmt, why, dal, ref, ref_sql)
            return
        for row, row_id in zip(gen.rows, ids, strict=True):
            values = dict(zip(gen.columns, row, strict=True))
            if table == "orders":
                workload.record_order(row_id, values["user_id"], values["merchant_id"])
            else:
                workload.record_item(row_id, values["order_id"], values["user_id"],
                                     values["merchant_id"])

    def _find_ids(self, stmt: Statement, gen: GeneratedInsert,
                  workload: Workload) -> list[int] | None:
        """The ids DAL gave the rows of a multi-row INSERT, read directly from the shard each
        row's user_id names (rows are told apart by (user_id, created_at))."""
        users = sorted({gen.value(r, "user_id") for r in gen.rows})  # type: ignore[type-var]
        new: dict[tuple, list[int]] = {}
        for user in users:
            shard = user % SHARDS  # type: ignore[operator]
            rows = execute(self.instances[instance_of(shard)],
                           f"SELECT id, user_id, created_at FROM user_{shard:03d}.orders "
                           f"WHERE user_id = {user}")
            assert rows.rows is not None, rows.describe()
            for row_id, user_id, created in rows.rows:
                if row_id not in workload.orders:
                    new.setdefault((user_id, created), []).append(row_id)
        ids = []
        for row in gen.rows:
            key = (gen.value(row, "user_id"), gen.value(row, "created_at"))
            found = new.get(key, [])
            if len(found) != 1:
                self.fail(stmt, f"the row of user_id {key[0]} created_at {key[1]} is in its "
                          f"user shard {len(found)} times (ids {found}), not once")
                return None
            ids.append(found[0])
        return ids

    def _refused(self, stmt: Statement) -> None:
        dal = self._dal(stmt.sql)
        if dal.error is None:
            self.fail(stmt, "DAL ran a statement it must refuse", dal)
        elif stmt.expect_code is not None and dal.error[0] != stmt.expect_code:
            self.fail(stmt, f"DAL refused with {dal.error[0]}, not {stmt.expect_code}", dal)

    def _routed(self, stmt: Statement) -> None:
        dal = self._dal(stmt.sql)
        if dal.error is not None or dal.rows is None:
            self.fail(stmt, "a read keyed by merchant_id only failed (it must be routed to "
                      "the merchant copy)", dal)

    # -- after the workload ------------------------------------------------------------------

    def shard_rows(self, table: str) -> dict[int, list[tuple]]:
        """This test's rows of ``table`` in every user shard, read directly."""
        cols = COLS if table == "orders" else ITEM_COLS
        out = {}
        for shard in range(SHARDS):
            got = execute(self.instances[instance_of(shard)],
                          f"SELECT {cols} FROM user_{shard:03d}.{table} WHERE {USER_RANGE}")
            assert got.error is None, got.describe()
            out[shard] = got.rows or []
        return out

    def verify_shards(self) -> dict[str, int]:
        """Every row is in exactly the user shard its user_id names, and the union of the
        shards equals the reference row for row. Returns the row counts."""
        counts = {}
        for table in ("orders", "order_items"):
            cols = COLS if table == "orders" else ITEM_COLS
            by_shard = self.shard_rows(table)
            union: list[tuple] = []
            seen: dict[int, int] = {}
            for shard, rows in by_shard.items():
                for row in rows:
                    row_id, user = row[0], row[2] if table == "order_items" else row[1]
                    if user % SHARDS != shard:
                        raise Mismatch(f"seed {self.seed}: {table} row {row!r} is in user shard "
                                       f"{shard}, but its user_id names shard {user % SHARDS}")
                    if row_id in seen:
                        raise Mismatch(f"seed {self.seed}: {table} id {row_id} is in user shards "
                                       f"{seen[row_id]} and {shard}")
                    seen[row_id] = shard
                    union.append(row)
            ref = execute(self.ref, f"SELECT {cols} FROM {table}")
            assert ref.rows is not None, ref.describe()
            mine, theirs = canon_rows(union, False), canon_rows(ref.rows, False)
            if mine != theirs:
                mine_set, theirs_set = set(mine), set(theirs)
                only_shards = [r for r in mine if r not in theirs_set]
                only_ref = [r for r in theirs if r not in mine_set]
                raise Mismatch(
                    f"seed {self.seed}: the user shards' {table} ({len(mine)} rows) differ from "
                    f"the reference ({len(theirs)} rows); only in the shards: "
                    f"{shorten(repr(only_shards[:5]), 800)}; only in the reference: "
                    f"{shorten(repr(only_ref[:5]), 800)}")
            counts[table] = len(union)
        return counts

    def cleanup(self, workload: Workload) -> None:
        """Delete this run's rows through DAL by user_id, and from the reference; the
        affected counts must agree and the shards must be left without them."""
        users = ", ".join(map(str, workload.users))
        for table in ("order_items", "orders"):
            sql = f"DELETE FROM {table} WHERE user_id IN ({users})"
            dal, ref = execute(self.dal, sql), execute(self.ref, sql)
            why = difference(dal, ref, False)
            if why:
                raise Mismatch(f"seed {self.seed}: cleanup {sql!r}: {why}; DAL {dal.describe()}; "
                               f"reference {ref.describe()}")
        left = {t: sum(map(len, self.shard_rows(t).values())) for t in ("orders", "order_items")}
        if any(left.values()):
            raise Mismatch(f"seed {self.seed}: rows left in the user shards after the cleanup "
                           f"through DAL: {left}")


def purge(instances: dict[str, pymysql.connections.Connection],
          ref: pymysql.connections.Connection) -> None:
    """Remove rows of this test's user range everywhere, directly (left by an aborted run)."""
    for shard in range(SHARDS):
        conn = instances[instance_of(shard)]
        for table in ("order_items", "orders"):
            execute(conn, f"DELETE FROM user_{shard:03d}.{table} WHERE {USER_RANGE}")
    for table in ("order_items", "orders"):
        execute(ref, f"DELETE FROM {table} WHERE user_id BETWEEN {USER_BASE} AND {USER_LAST}")
