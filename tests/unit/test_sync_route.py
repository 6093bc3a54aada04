"""Routing of binlog row images to the merchant copy, and the batching of their statements."""

from __future__ import annotations

from pathlib import Path

from config.loader import load_config
from router.genes import GeneGenerator
from tools.sync_apply import Delete, DeleteWhere, Upsert, collapse
from tools.sync_follow import Change, route, truncate_ops
from tools.sync_route import Routes

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config" / "test.yaml")
ROUTES = Routes(CONFIG)


def order(id_: int, user: int, merchant: int, total: str = "1.00") -> dict:
    return {"id": id_, "user_id": user, "merchant_id": merchant, "total": total}


def test_sources_and_targets_follow_the_placement() -> None:
    sources = ROUTES.sources()
    assert sorted(sources) == ["a", "b"]
    assert sources["a"][0] == "user_000" and sources["b"][-1] == "user_119"
    assert len(sources["a"]) == len(sources["b"]) == 60
    assert ROUTES.targets == {"a", "b"}
    assert ROUTES.table("user_017", "orders") is not None
    assert ROUTES.table("user_017", "regions") is None       # broadcast: not copied
    assert ROUTES.table("merchant_017", "orders") is None    # a copy is never a source


def test_insert_goes_to_the_merchant_shard_on_its_instance() -> None:
    ops = route(ROUTES, Change("user_005", "orders", ("id",), None, order(9, 5, 245)))
    assert ops == [Upsert("a", "merchant_005", "orders", (9,), ("id", "user_id", "merchant_id",
                                                                 "total"), (9, 5, 245, "1.00"))]
    ops = route(ROUTES, Change("user_005", "orders", ("id",), None, order(9, 5, 119)))
    assert ops[0].instance == "b" and ops[0].database == "merchant_119"


def test_update_of_merchant_id_moves_the_row_and_delete_removes_it() -> None:
    before, after = order(9, 5, 245), order(9, 5, 246)
    ops = route(ROUTES, Change("user_005", "orders", ("id",), before, after))
    assert ops == [Delete("a", "merchant_005", "orders", (9,), ("id",)),
                   Upsert("a", "merchant_006", "orders", (9,), tuple(after),
                          tuple(after.values()))]
    same = route(ROUTES, Change("user_005", "orders", ("id",), before, order(9, 5, 245, "2")))
    assert [type(op) for op in same] == [Upsert]
    gone = route(ROUTES, Change("user_005", "orders", ("id",), before, None))
    assert gone == [Delete("a", "merchant_005", "orders", (9,), ("id",))]


def test_a_row_without_merchant_id_routes_by_its_gene() -> None:
    genes = GeneGenerator(0)
    item, parent = genes.next_id(5, 77), genes.next_id(5, 77)  # item ids carry the gene too
    copy = ROUTES.table("user_005", "order_items").copies[0]
    assert copy.shard({"id": item, "order_id": parent}) == 77
    assert copy.shard({"id": item, "order_id": parent, "merchant_id": 78}) == 78
    assert copy.shard_sql(["id", "order_id"]) == "(`id` DIV 120) % 120"
    assert copy.shard_sql(["id", "merchant_id"]) == "`merchant_id` % 120"


def test_only_the_last_operation_per_row_is_sent() -> None:
    first = Upsert("a", "merchant_005", "orders", (9,), ("id",), (9,))
    gone = Delete("a", "merchant_005", "orders", (9,), ("id",))
    other = Upsert("a", "merchant_005", "orders", (10,), ("id",), (10,))
    wipe = DeleteWhere("a", "merchant_005", "orders", "`user_id` % 120 = 5")
    assert collapse([first, other, gone]) == [gone, other]
    assert collapse([gone, first]) == [first]
    assert collapse([first, wipe]) == [wipe, first]


def test_truncate_of_a_source_shard_empties_its_rows_from_every_copy_shard() -> None:
    ops = truncate_ops(ROUTES, "trade", "TRUNCATE TABLE `user_017`.`orders`")
    assert len(ops) == 120
    assert {op.where for op in ops} == {"`user_id` % 120 = 17"}
    assert {op.instance for op in ops if op.database == "merchant_100"} == {"b"}
    assert truncate_ops(ROUTES, "user_017", "truncate order_items")[0].table == "order_items"
    assert truncate_ops(ROUTES, "trade", "TRUNCATE merchants") == []
