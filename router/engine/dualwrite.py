"""`DualWrite`: one write to a migrated table on its authoritative side, mirrored by id.

Legacy authoritative (dual_legacy, shadow), in one legacy transaction of DAL's own:
``SELECT <id, keys> ... FOR UPDATE`` of the rows the statement touches (an INSERT: the gene
ids DAL gives its rows), the statement, the touched rows read again by id, then REPLACE (or
DELETE) of each on its user shard (and its merchant shard with ``merchant_copy: direct``;
otherwise `dal sync` copies it), then COMMIT. Shards authoritative (dual_sharded): the same per
shard, in a shard transaction, mirrored to legacy. The authoritative row lock is held while the
copy is written, so copies of one row never apply out of order. A failed mirror is recorded in
the repair log (before the authoritative side commits), never dropped: a repairer re-copies
the row's current state.

Inside a client transaction (BEGIN, or autocommit=0) the authoritative write runs in the
session's transaction instead (mode single: one shard when the shards are authoritative, as
the sharded path; mode xa: on the transaction's branch of each instance it reaches), and its
ids go to the outbox in that same transaction (`Cursor.defer_mirror`): after COMMIT (of every
branch in mode xa) the ids' current state is copied under the row lock as above; ROLLBACK
leaves nothing.
Outside one, the write commits on its own, in a transaction of DAL's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from router.engine.base import Bindings, Cursor, OwnTransaction, Primitive, ShardResult, Slots
from router.engine.insert import InsertSplit
from router.engine.migrated import resolve
from router.genes import merchant_shard_of_gene, user_shard_of_gene
from router.migration import LEGACY_AUTHORITATIVE, MigrationSpec
from router.sharded import ShardedPlan
from router.targets import NOT_SUPPORTED, Refusal, Target, key_value, target_of

TO_SHARDS, TO_LEGACY = "to_shards", "to_legacy"
Run = Callable[[bytes], Awaitable[ShardResult]]


def sql_value(value: bytes | None) -> bytes:
    """A text-protocol value as a SQL string literal (MariaDB converts it to the column type)."""
    if value is None:
        return b"NULL"
    escaped = (value.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\x00", b"\\0")
               .replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\x1a", b"\\Z"))
    return b"'" + escaped + b"'"


def _ids(values: Sequence[int]) -> bytes:
    return b", ".join(str(int(v)).encode() for v in values)


def _quote(name: str) -> bytes:
    return ("`" + name.replace("`", "``") + "`").encode()


class Copy:
    """Rows of one table read by id (``result``), written elsewhere as REPLACE/DELETE."""

    def __init__(self, table: str, result: ShardResult, key_columns: Sequence[str]) -> None:
        self.table = _quote(table)
        names = [c.name.decode() if isinstance(c.name, bytes) else c.name
                 for c in result.columns]
        self.columns = b"(" + b", ".join(_quote(n) for n in names) + b")"
        self.rows = result.rows
        self.id_at = names.index("id")
        self.key_at = [names.index(k) for k in key_columns]

    def replace(self, database: bytes, rows: Sequence[Sequence[bytes | None]]) -> bytes:
        """REPLACE INTO database.table (...) VALUES (...), ..."""
        values = b", ".join(b"(" + b", ".join(sql_value(v) for v in row) + b")" for row in rows)
        return (b"REPLACE INTO " + _quote(database.decode()) + b"." + self.table + b" "
                + self.columns + b" VALUES " + values)

    def delete(self, database: bytes, ids: Sequence[int]) -> bytes:
        """DELETE FROM database.table WHERE id IN (...)"""
        return (b"DELETE FROM " + _quote(database.decode()) + b"." + self.table
                + b" WHERE id IN (" + _ids(ids) + b")")

    def present(self) -> set[int]:
        """The ids read."""
        return {int(row[self.id_at]) for row in self.rows}  # type: ignore[arg-type]


class DualWrite(Primitive):
    """A write in a dual phase: the authoritative side, then the mirror by id."""

    def __init__(self, spec: MigrationSpec, sharded: ShardedPlan | None, statement: str) -> None:
        self.spec = spec
        self.sharded = sharded
        self.statement = statement
        self.legacy_first = spec.phase in LEGACY_AUTHORITATIVE
        self.insert = (InsertSplit(sharded, statement)
                       if sharded is not None and sharded.insert is not None else None)
        if spec.insert and (self.insert is None or (not self.insert.insert.generated
                                                     and spec.id_index is None)):
            raise ValueError("an INSERT into a migrated table must list its columns, and "
                             "leave out the id or give gene ids (DAL gives new rows gene ids "
                             "from phase dual_legacy on)")
        if not spec.insert and spec.select is None:
            raise ValueError("unsupported write")
        if not self.legacy_first and sharded is None:
            raise ValueError("the shards are authoritative and this write cannot be routed")

    def describe(self, slots: Slots | None = None) -> str:
        first, then = ("legacy", "the shards") if self.legacy_first else ("the shards", "legacy")
        return (f"DualWrite {self.statement.upper()} {self.spec.table}: {first} under the row "
                f"lock, mirrored by id to {then}; failed mirrors to the repair log")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.spawn(self.run(cursor, bindings), f"dual:{self.statement}")

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Write, mirror, answer; the latency is observed."""
        started = time.perf_counter()
        in_txn = cursor.transaction_holder() is not None
        if self.legacy_first:
            write = self._legacy_in_txn if in_txn else self._legacy_first
        else:
            write = self._shards_in_txn if in_txn else self._shards_first
        done = await write(cursor, bindings.slots)
        if done is None:  # refused by the transaction mode (the cursor answered)
            return
        affected, first_id = done
        cursor.count_migration(self.spec.db, "dual_write", time.perf_counter() - started)
        cursor.send_ok(affected, first_id)

    # -- legacy authoritative --------------------------------------------------------------

    async def _legacy_write(self, cursor: Cursor, run: Run, slots: Slots,
                            ) -> tuple[int, int, list[int], dict[int, tuple[int, ...]]]:
        """The write on legacy through ``run``, its touched rows locked first: (affected,
        first id, the ids touched, each locked row's keys)."""
        spec = self.spec
        legacy = spec.legacy_db
        if self.insert is not None:
            ids, sql, first_id = self._insert_rows(cursor, slots, legacy)
            keys: dict[int, tuple[int, ...]] = {}
        else:
            before = await run(spec.select.render(slots, legacy) + b" FOR UPDATE")  # type: ignore[union-attr]
            keys = {int(r[0]): tuple(int(v) for v in r[1:]) for r in before.rows}  # type: ignore[arg-type]
            ids, sql, first_id = sorted(keys), spec.legacy.render(slots, b""), 0
        result = await run(sql)
        return result.ok.affected_rows if result.ok else 0, first_id, ids, keys

    async def _legacy_first(self, cursor: Cursor, slots: Slots) -> tuple[int, int]:
        spec = self.spec
        txn = await cursor.own_transaction(spec.source_instance)
        try:
            affected, first_id, ids, keys = await self._legacy_write(cursor, txn.run, slots)
            if ids:
                current = await self._read(txn, spec.legacy_db, ids)
                await self._mirror_to_shards(cursor, current, ids, keys)
            await self._commit(cursor, txn, ids, TO_SHARDS)
        except BaseException:
            await txn.rollback()
            raise
        return affected, first_id

    async def _legacy_in_txn(self, cursor: Cursor, slots: Slots) -> tuple[int, int]:
        """In the client's transaction on legacy; the mirror after its COMMIT."""
        spec = self.spec
        instance = spec.source_instance
        affected, first_id, ids, keys = await self._legacy_write(
            cursor, partial(cursor.run_in_session, instance), slots)
        await cursor.defer_mirror(instance, spec.db, spec.table or "", ids, TO_SHARDS,
                                  partial(self._mirror_committed, instance, spec.legacy_db,
                                          ids, keys))
        return affected, first_id

    async def _mirror_committed(self, instance: str, database: bytes, ids: Sequence[int],
                                keys: dict[int, tuple[int, ...]], cursor: Cursor,
                                done: bytes) -> None:
        """After the client's COMMIT: the ids' current state on the authoritative side, read
        under its row lock in a transaction of DAL's, copied to the other side; ``done`` (the
        delete of their outbox entries) runs in that transaction."""
        txn = await cursor.own_transaction(instance)
        try:
            current = await self._read(txn, database, ids, b" FOR UPDATE")
            if self.legacy_first:
                await self._mirror_to_shards(cursor, current, ids, keys)
            else:
                await self._mirror_to_legacy(cursor, current, ids)
            await txn.run(done)
            await txn.commit()
        except BaseException:
            await txn.rollback()
            raise

    def _insert_rows(self, cursor: Cursor, slots: Slots,
                     database: bytes) -> tuple[list[int], bytes, int]:
        """The new gene ids, the INSERT for ``database`` and its first id."""
        made: list[int] = []

        def next_id(user: int, merchant: int) -> int:
            made.append(cursor.next_id(user, merchant))
            return made[-1]

        ins = self.insert
        assert ins is not None
        if not ins.insert.generated:
            made = [i for _, i in self._given_ids(cursor, slots)]
        by_shard, first_id = ins.split(cursor.config, slots, next_id)
        rows = [row for shard in sorted(by_shard) for row in by_shard[shard]]
        sql = (ins.insert.head.render(slots, database) + b", ".join(rows)  # type: ignore[arg-type]
               + ins.insert.tail.render(slots, b""))  # type: ignore[arg-type]
        return made, sql, first_id

    def _given_ids(self, cursor: Cursor, slots: Slots) -> list[tuple[int, int]]:
        """(user shard, id) of each row of an INSERT that gives its own ids; refused unless
        each is a gene id of its row's user and merchant above the highest legacy id (an old
        id routes only through the lookup, a plain number not at all)."""
        ins = self.insert.insert  # type: ignore[union-attr]
        at = self.spec.id_index
        assert at is not None
        shards = cursor.config.databases[self.spec.db].dimensions[
            self.sharded.routing.dimension].shards  # type: ignore[union-attr]
        limit = cursor.max_legacy_id(self.spec.db)
        out = []
        for row in ins.rows:
            cells = [cell.render(slots, b"") for cell in row]  # type: ignore[arg-type]
            given, user = key_value(cells[at]), key_value(cells[ins.user_index])
            merchant = (key_value(cells[ins.merchant_index])
                        if ins.merchant_index is not None else None)
            if given <= limit:
                raise Refusal(NOT_SUPPORTED, f"id {given} is refused during the migration of "
                              f"{self.spec.db}: it is at or below the highest legacy id "
                              f"({limit}), which only the legacy rows use; omit the id and DAL "
                              "generates one")
            if user_shard_of_gene(given, shards) != user % shards or (
                    merchant is not None
                    and merchant_shard_of_gene(given, shards) != merchant % shards):
                raise Refusal(NOT_SUPPORTED, f"id {given} is refused during the migration of "
                              f"{self.spec.db}: it is not a gene id of its row's user_id "
                              f"{user}" + ("" if merchant is None else
                                           f" and merchant_id {merchant}")
                              + f" (id % {shards} = user_id % {shards}, (id // {shards}) % "
                              f"{shards} = merchant_id % {shards}); omit the id and DAL "
                              "generates one")
            out.append((user % shards, given))
        return out

    async def _read(self, txn: OwnTransaction, database: bytes, ids: Sequence[int],
                    lock: bytes = b"") -> Copy:
        table = self.spec.table or ""
        result = await txn.run(b"SELECT * FROM " + _quote(database.decode()) + b"."
                               + _quote(table) + b" WHERE id IN (" + _ids(ids) + b")" + lock)
        return Copy(table, result, self.spec.columns[1:])

    async def _mirror_to_shards(self, cursor: Cursor, copy: Copy, ids: Sequence[int],
                                keys: dict[int, tuple[int, ...]]) -> None:
        """REPLACE the rows read on their shards, DELETE the ids gone; a failure goes to the
        repair log (it does not fail the client's write: legacy is authoritative)."""
        spec = self.spec
        try:
            for dimension, position in self._dimensions():
                await self._copy_to(cursor, dimension, position, copy, ids, keys)
        except Exception as exc:
            await cursor.record_repair(spec.db, spec.table or "", ids, TO_SHARDS, str(exc))
            return
        limit = cursor.max_legacy_id(spec.db)
        legacy_rows = [(int(r[copy.id_at]), int(r[copy.key_at[0]]),  # type: ignore[arg-type]
                        int(r[copy.key_at[-1]])) for r in copy.rows  # type: ignore[arg-type]
                       if int(r[copy.id_at]) <= limit]  # type: ignore[arg-type]
        if legacy_rows:
            await cursor.record_lookup(spec.db, spec.table or "", legacy_rows)

    def _dimensions(self) -> list[tuple[str, int]]:
        """(dimension, position of its key among the key columns) the mirror writes."""
        names = list(self.spec.dimensions)
        wanted = names if self.spec.direct_merchant else names[:1]
        return [(name, names.index(name)) for name in wanted]

    async def _copy_to(self, cursor: Cursor, dimension: str, position: int, copy: Copy,
                       ids: Sequence[int], keys: dict[int, tuple[int, ...]]) -> None:
        spec = self.spec
        shards = cursor.config.databases[spec.db].dimensions[dimension].shards
        rows: dict[int, list] = {}
        for row in copy.rows:
            rows.setdefault(int(row[copy.key_at[position]]) % shards, []).append(row)  # type: ignore[arg-type]
        gone: dict[int, list[int]] = {}
        present = copy.present()
        for i in ids:
            if i not in present and i in keys:
                gone.setdefault(keys[i][position] % shards, []).append(i)
        for shard in sorted(set(rows) | set(gone)):
            target = target_of(cursor.config, spec.db, dimension, shard, None)
            if shard in rows:
                await cursor.run_pooled(target.instance, copy.replace(target.database,
                                                                      rows[shard]))
            if shard in gone:
                await cursor.run_pooled(target.instance, copy.delete(target.database,
                                                                     gone[shard]))

    async def _commit(self, cursor: Cursor, txn: OwnTransaction, ids: Sequence[int],
                      direction: str) -> None:
        """Commit the authoritative side; if that fails, the mirror may hold what it does
        not: the ids go to the repair log, which copies the state that stays."""
        try:
            await txn.commit()
        except Exception as exc:
            if ids:
                await cursor.record_repair(self.spec.db, self.spec.table or "", ids, direction,
                                           f"commit failed: {exc}")
            raise

    # -- shards authoritative --------------------------------------------------------------

    async def _shards_first(self, cursor: Cursor, slots: Slots) -> tuple[int, int]:
        affected, first_id = 0, 0
        for target, sql, ids in await self._shard_parts(cursor, slots):
            txn = await cursor.own_transaction(target.instance)
            try:
                keys: list[int] = list(ids)
                if self.insert is None:
                    select = self.spec.select.render(slots, target.database, target.only)  # type: ignore[union-attr]
                    before = await txn.run(select + b" FOR UPDATE")
                    keys = sorted(int(r[0]) for r in before.rows)  # type: ignore[arg-type]
                result = await txn.run(sql)
                affected += result.ok.affected_rows if result.ok else 0
                if keys:
                    current = await self._read(txn, target.database, keys)
                    await self._mirror_to_legacy(cursor, current, keys)
                await self._commit(cursor, txn, keys, TO_LEGACY)
            except BaseException:
                await txn.rollback()
                raise
            if self.insert is not None and self.insert.insert.generated:
                first_id = first_id or (ids[0] if ids else 0)
        return affected, first_id

    async def _shards_in_txn(self, cursor: Cursor, slots: Slots) -> tuple[int, int] | None:
        """In the client's transaction on the shards it reaches (one in mode single, as the
        sharded path; each on its instance's branch in mode xa); the mirror to legacy after
        its COMMIT. None when the transaction mode refused it."""
        parts = await self._shard_parts(cursor, slots)
        if len(parts) > 1 and not cursor.in_xa():
            raise Refusal(NOT_SUPPORTED, f"a write to {self.spec.table} reaching {len(parts)} "
                          "shards is refused inside a transaction (transaction mode 'single'); "
                          "keep a transaction on one user")
        affected, first_id = 0, 0
        for target, sql, ids in parts:
            if not cursor.check_shard(target.database):
                return None
            keys: list[int] = list(ids)
            if self.insert is None:
                select = self.spec.select.render(slots, target.database, target.only)  # type: ignore[union-attr]
                before = await cursor.run_in_session(target.instance, select + b" FOR UPDATE")
                keys = sorted(int(r[0]) for r in before.rows)  # type: ignore[arg-type]
            result = await cursor.run_in_session(target.instance, sql)
            await cursor.defer_mirror(target.instance, self.spec.db, self.spec.table or "",
                                      keys, TO_LEGACY, partial(self._mirror_committed,
                                                               target.instance,
                                                               target.database, keys, {}))
            affected += result.ok.affected_rows if result.ok else 0
            first_id = first_id or (ids[0] if ids else 0)
        return affected, first_id

    async def _shard_parts(self, cursor: Cursor,
                           slots: Slots) -> list[tuple[Target, bytes, list[int]]]:
        """(target, statement, new ids) per shard the write reaches."""
        sharded = self.sharded
        assert sharded is not None
        if self.insert is not None:
            made: list[int] = []

            def next_id(user: int, merchant: int) -> int:
                made.append(cursor.next_id(user, merchant))
                return made[-1]

            if self.insert.insert.generated:
                by_shard, _ = self.insert.split(cursor.config, slots, next_id)
                ids_by_shard = _ids_by_shard(by_shard, made)
            else:
                ids_by_shard = {}
                for shard, given in self._given_ids(cursor, slots):
                    ids_by_shard.setdefault(shard, []).append(given)
                by_shard, _ = self.insert.split(cursor.config, slots, next_id)
            return [(target, sql, ids_by_shard.get(target.shard, []))
                    for target, sql in self.insert.statements(cursor.config, slots, by_shard)]
        found = await resolve(cursor, self.spec, sharded, slots)
        if sharded.limited and len(found) > 1:
            raise Refusal(NOT_SUPPORTED, f"UPDATE/DELETE with LIMIT reaching {len(found)} "
                          "shards is refused: name one user key (or order id)")
        return [(t, sharded.template.render(slots, t.database, t.only), [])  # type: ignore[arg-type]
                for t in found]

    async def _mirror_to_legacy(self, cursor: Cursor, copy: Copy, ids: Sequence[int]) -> None:
        spec = self.spec
        try:
            if copy.rows:
                await cursor.run_pooled(spec.source_instance,
                                        copy.replace(spec.legacy_db, copy.rows))
            gone = sorted(set(ids) - copy.present())
            if gone:
                await cursor.run_pooled(spec.source_instance, copy.delete(spec.legacy_db, gone))
        except Exception as exc:
            await cursor.record_repair(spec.db, spec.table or "", ids, TO_LEGACY, str(exc))


def _ids_by_shard(by_shard: dict[int, list[bytes]], made: list[int]) -> dict[int, list[int]]:
    """The generated ids of each shard's rows: each row's SQL tuple ends with its id."""
    out: dict[int, list[int]] = {}
    wanted = set(made)
    for shard, rows in by_shard.items():
        for row in rows:
            tail = row.rstrip(b")").rsplit(b",", 1)[-1].strip()
            value = int(tail) if tail.isdigit() else -1
            if value in wanted:
                out.setdefault(shard, []).append(value)
    return out
