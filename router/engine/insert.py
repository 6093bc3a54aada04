"""`InsertSplit`: an INSERT/REPLACE's rows grouped by user shard, one statement per shard.

Each row's user key picks its shard; an order id the row gives must carry that shard (and the
merchant's) in its gene, and one the row leaves out is generated (`Cursor.next_id`) and
appended. The shards' statements run one after another in the session (its transaction, if
any); the OK sums their affected rows and carries the first generated id as the last insert
id. A failure after some shards applied their rows says which.
"""

from __future__ import annotations

from collections.abc import Callable

from config.model import Config
from router.engine.base import (
    STATEMENT_TIMEOUT_CODE,
    BackendFailure,
    Bindings,
    Cursor,
    Primitive,
    ShardFailure,
    Slots,
)
from router.genes import merchant_shard_of_gene, user_shard_of_gene
from router.sharded import InsertPlan, ShardedPlan
from router.targets import BAD_VALUE, Refusal, Target, key_value, target_of


class InsertSplit(Primitive):
    """The rows of one INSERT, split by user shard."""

    def __init__(self, sharded: ShardedPlan, statement: str) -> None:
        assert sharded.insert is not None
        self.sharded = sharded
        self.insert: InsertPlan = sharded.insert
        self.statement = statement

    def describe(self, slots: Slots | None = None) -> str:
        generated = "; ids generated where omitted" if self.insert.generated else ""
        return (f"InsertSplit {self.statement.upper()}: rows grouped by "
                f"{self.sharded.routing.dimension} shard{generated}")

    def execute(self, cursor: Cursor, bindings: Bindings) -> None:
        cursor.spawn(self.run(cursor, bindings), f"insert:{self.statement}")

    def split(self, config: Config, slots: Slots, next_id: Callable[[int, int], int] | None,
              ) -> tuple[dict[int, list[bytes]], int]:
        """Per user shard, its rows as SQL tuples; and the first generated id (0: none).
        Without ``next_id`` (EXPLAIN DAL) a generated id is written ``<generated id>``."""
        ins = self.insert
        shards_of = config.databases[self.sharded.db].dimensions[
            self.sharded.routing.dimension].shards
        rows_by_shard: dict[int, list[bytes]] = {}
        first_id = 0
        for row in ins.rows:
            cells = [cell.render(slots, b"") for cell in row]  # type: ignore[arg-type]
            user = key_value(cells[ins.user_index])
            shard = user % shards_of
            merchant = (key_value(cells[ins.merchant_index])
                        if ins.merchant_index is not None else None)
            for index in ins.gene_indexes:
                _check_gene(key_value(cells[index]), shard, merchant, shards_of)
            if ins.generated and next_id is None:
                cells.append(b"<generated id>")
            elif ins.generated:
                new_id = next_id(user, merchant or 0)  # type: ignore[misc]
                cells.append(str(new_id).encode())
                first_id = first_id or new_id
            rows_by_shard.setdefault(shard, []).append(b"(" + b", ".join(cells) + b")")
        return rows_by_shard, first_id

    def statements(self, config: Config, slots: Slots,
                   rows_by_shard: dict[int, list[bytes]]) -> list[tuple[Target, bytes]]:
        """(target, statement) per shard, in shard order."""
        sharded, ins = self.sharded, self.insert
        tail = ins.tail.render(slots, b"")  # type: ignore[arg-type]
        out = []
        for shard in sorted(rows_by_shard):
            target = target_of(config, sharded.db, sharded.routing.dimension, shard, None)
            sql = (ins.head.render(slots, target.database)  # type: ignore[arg-type]
                   + b", ".join(rows_by_shard[shard]) + tail)
            out.append((target, sql))
        return out

    async def run(self, cursor: Cursor, bindings: Bindings) -> None:
        """Split, check the transaction rules, run each shard's part, answer the OK."""
        slots = bindings.slots
        rows_by_shard, first_id = self.split(cursor.config, slots, cursor.next_id)
        if len(rows_by_shard) > 1:
            cursor.guard_scatter(True, insert=True)
        else:
            sharded = self.sharded
            only = target_of(cursor.config, sharded.db, sharded.routing.dimension,
                             next(iter(rows_by_shard)), None)
            if not cursor.check_shard(only.database):
                return
        affected = 0
        done: list[int] = []
        for target, sql in self.statements(cursor.config, slots, rows_by_shard):
            shard = target.shard
            try:
                result = await cursor.run_in_session(target.instance, sql)
            except Exception as exc:
                if not isinstance(exc, BackendFailure):
                    raise
                if exc.code == STATEMENT_TIMEOUT_CODE:
                    cursor.count_rule("statement_timeout")
                if done:
                    raise ShardFailure(exc, f"shard {shard}; shards {done} already applied "
                                       "their rows") from None
                raise
            done.append(shard)
            affected += result.ok.affected_rows if result.ok else 0
            if not first_id and result.ok and result.ok.last_insert_id:
                first_id = result.ok.last_insert_id
        cursor.send_ok(affected, first_id)


def _check_gene(gene: int, shard: int, merchant: int | None, shards: int) -> None:
    """An order id the row gives must carry its user's shard and its merchant's."""
    if user_shard_of_gene(gene, shards) != shard or (
            merchant is not None and merchant_shard_of_gene(gene, shards) != merchant % shards):
        raise Refusal(BAD_VALUE, f"id {gene} contradicts its keys: an order id must satisfy "
                      f"id % {shards} = user_id % {shards} and (id // {shards}) % {shards} = "
                      f"merchant_id % {shards}; omit the id and DAL generates one")

