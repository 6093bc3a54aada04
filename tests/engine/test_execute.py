"""The primitives' execute paths on real MariaDB, through a small cursor of this test's own.

`ShardCursor` is a plain implementation of the `Cursor` interface over one backend connection
per instance (pool.connection), autocommit, outside any transaction: enough to run a tree's
execute against the test instances and see what it answers. The session's cursor (dal.execute)
adds pins, transactions, limits and the wire; the full suite covers that once it is hooked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from config.model import Config
from pool.connection import BackendConnection, BackendError
from router.engine.base import Primitive, ShardFailure
from router.fingerprint import fingerprint
from router.genes import WORKERS, GeneGenerator
from router.plan import Plan
from router.planner import Router
from router.targets import Refusal, Target
from tests.dal_process import running_test_config


class Slots:
    def __init__(self, slots: list[list[bytes]]) -> None:
        self.slots = slots


class ShardCursor:
    """What a tree asked for and answered, on real backend connections."""

    def __init__(self, config: Config, conns: dict[str, BackendConnection]) -> None:
        self.config = config
        self.conns = conns
        self.max_merge_rows = 10_000
        self.answers: list[tuple] = []
        self.spawned: list[Coroutine[Any, Any, None]] = []
        self.rules: list[str] = []
        self.genes = GeneGenerator(WORKERS - 1)

    def route(self, plan: Plan, bindings: object) -> None:
        self.answers.append(("route", plan.instance))

    def route_shard(self, sharded: object, target: Target, bindings: Slots,
                    statement: str) -> None:
        sql = sharded.template.render(bindings.slots, target.database, target.only)  # type: ignore[attr-defined]
        self.answers.append(("route_shard", target.database, sql))

    def check_shard(self, database: bytes) -> bool:
        return True

    def guard_scatter(self, write: bool, insert: bool = False) -> None:
        pass

    def can_stream(self) -> bool:
        return False

    def spawn(self, coroutine: Coroutine[Any, Any, None], label: str) -> None:
        self.spawned.append(coroutine)

    async def fetch_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                           write: bool) -> list:
        out: list = []
        for target, sql in zip(targets, sqls, strict=True):
            try:
                out.append(await self.conns[target.instance].query(sql))
            except BackendError as exc:
                out.append(exc)
        return out

    async def stream_shards(self, targets: Sequence[Target], sqls: Sequence[bytes],
                            logical: bytes) -> None:
        raise AssertionError("this cursor does not stream")

    async def run_in_session(self, instance: str, sql: bytes) -> object:
        return await self.conns[instance].query(sql)

    def next_id(self, user: int, merchant: int) -> int:
        return self.genes.next_id(user, merchant)

    def count_rule(self, rule: str) -> None:
        self.rules.append(rule)

    def send_rows(self, columns: list, rows: Sequence, logical: bytes) -> None:
        self.answers.append(("rows", [c.name for c in columns], list(rows), logical))

    def send_ok(self, affected: int, last_insert_id: int = 0) -> None:
        self.answers.append(("ok", affected, last_insert_id))

    def send_error(self, code: int, sqlstate: str, message: str) -> None:
        self.answers.append(("error", code, message))

    async def finish(self) -> None:
        """Run what the tree spawned, as the session would."""
        while self.spawned:
            await self.spawned.pop(0)


@pytest.fixture(scope="module")
def config() -> Config:
    return running_test_config()


def run(config: Config, statements: list[str]) -> tuple[list[tuple], list[str]]:
    """Execute statements' trees; the answers, and the rules counted."""
    async def main() -> tuple[list[tuple], list[str]]:
        conns = {}
        for name, inst in config.instances.items():
            conns[name] = await BackendConnection.open(name, inst.host, inst.port, inst.user,
                                                       inst.password)
        cursor = ShardCursor(config, conns)
        router = Router(config)
        try:
            for sql in statements:
                raw = sql.encode()
                fp = fingerprint(raw)
                root = router.plan(raw, fp, "trade", False).root
                assert isinstance(root, Primitive)
                try:
                    root.execute(cursor, Slots(fp.slots(raw)))
                    await cursor.finish()
                except (Refusal, BackendError) as exc:
                    cursor.answers.append(("raised", type(exc).__name__, exc.code, str(exc)))
        finally:
            for conn in conns.values():
                conn.abort()
        return cursor.answers, cursor.rules

    return asyncio.run(main())


def test_a_tree_inserts_merges_writes_and_refuses(config: Config) -> None:
    base = random.randrange(10**9, 2 * 10**9) * 120
    users = [base + 1, base + 2, base + 63]  # shards 1 and 2 on a, 63 on b
    listed = ", ".join(map(str, users))
    answers, _ = run(config, [
        f"INSERT INTO orders (user_id, merchant_id, status, total, created_at, updated_at) "
        f"VALUES ({users[0]}, 5, 1, 10.50, '2024-01-01', NOW()), "
        f"({users[1]}, 6, 2, 3.25, '2024-01-03', NOW()), "
        f"({users[2]}, 7, 1, 1.00, '2024-01-02', NOW()), "
        f"({users[2]}, 7, 3, 2.00, '2024-01-04', NOW())",
        f"SELECT user_id, total FROM orders WHERE user_id IN ({listed}) "
        "ORDER BY created_at DESC LIMIT 1, 2",
        f"SELECT status, COUNT(*), SUM(total) FROM orders WHERE user_id IN ({listed}) "
        "GROUP BY status HAVING COUNT(*) > 1",
        f"SELECT DISTINCT merchant_id FROM orders WHERE user_id IN ({listed}) ORDER BY 1",
        f"SELECT id FROM orders WHERE user_id = {users[0]} ORDER BY id LIMIT 5",
        f"UPDATE orders SET note = 'x' WHERE user_id IN ({listed}) LIMIT 1",
        f"UPDATE orders SET note = 'x' WHERE user_id IN ({listed})",
        f"DELETE FROM orders WHERE user_id IN ({listed})",
    ])
    ok, first_id = answers[0][1], answers[0][2]
    assert ok == 4 and first_id % 120 == users[0] % 120
    assert answers[1] == ("rows", [b"user_id", b"total"],
                          [[str(users[1]).encode(), b"3.25"], [str(users[2]).encode(), b"1.00"]],
                          b"trade")
    assert answers[2] == ("rows", [b"status", b"COUNT(*)", b"SUM(total)"],
                          [[b"1", b"2", b"11.50"]], b"trade")
    assert answers[3] == ("rows", [b"merchant_id"], [[b"5"], [b"6"], [b"7"]], b"trade")
    kind, database, sql = answers[4]
    assert (kind, database) == ("route_shard", b"user_001")
    assert sql.startswith(b"SELECT id FROM user_001.orders WHERE user_id = ")
    assert answers[5][:3] == ("raised", "Refusal", 1235)
    assert "UPDATE/DELETE with LIMIT reaching 3 shards is refused" in answers[5][3]
    assert answers[6] == ("ok", 4, 0)
    assert answers[7] == ("ok", 4, 0)


def test_a_broadcast_reports_one_copy_and_errors_pass_through(config: Config) -> None:
    answers, rules = run(config, [
        "UPDATE regions SET name = name WHERE id = -1",
        "SELECT COUNT(*) FROM orders WHERE user_id IN (1, 2) AND id < 0",
        "SELECT no_such_column FROM orders WHERE user_id IN (1, 2)",
    ])
    assert answers[0] == ("ok", 0, 0)
    assert answers[1] == ("rows", [b"COUNT(*)"], [[b"0"]], b"trade")
    assert answers[2][:3] == ("raised", "BackendError", 1054)
    assert rules == []


def test_a_shard_failure_keeps_the_backend_code() -> None:
    class Failure(Exception):
        def __init__(self) -> None:
            self.code, self.sqlstate = 1969, "70100"
            self.message = "Query execution was interrupted"

    failure = ShardFailure(Failure(), "failed on user_001")  # type: ignore[arg-type]
    assert (failure.code, failure.sqlstate) == (1969, "70100")
    assert str(failure) == "Query execution was interrupted (failed on user_001)"
