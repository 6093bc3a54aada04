"""Gene IDs and shard targeting, property-based: every value lands on the shard it names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import DEFAULT_CONFIG, load_config
from router.fingerprint import fingerprint
from router.genes import (
    EPOCH,
    LAST_TICK,
    PER_TICK,
    GeneGenerator,
    clock_tick,
    first_id_of_tick,
    merchant_shard_of_gene,
    tick_of_id,
    tick_time,
    user_shard_of_gene,
    worker_of_id,
)
from router.planner import Router
from router.targets import Refusal, key_value, targets

CONFIG = load_config(DEFAULT_CONFIG)
ids = st.integers(min_value=0, max_value=2**40)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@given(st.lists(st.tuples(ids, ids), min_size=1, max_size=50), st.integers(0, 31))
def test_generated_ids_carry_their_shards_and_increase(pairs: list[tuple[int, int]],
                                                      worker: int) -> None:
    gen = GeneGenerator(worker)
    previous = 0
    for user, merchant in pairs:
        new = gen.next_id(user, merchant)
        assert user_shard_of_gene(new) == user % 120
        assert merchant_shard_of_gene(new) == merchant % 120
        assert worker_of_id(new) == worker
        assert 0 < new < 2**63
        assert new // 14400 > previous // 14400  # time-ordered base, strictly increasing
        previous = new


def test_a_burst_borrows_the_next_millisecond_and_stays_unique() -> None:
    clock = FakeClock(1_800_000_000)
    gen = GeneGenerator(5, clock.time)
    made = [gen.next_id(7, 9) for _ in range(5000)]
    assert len(set(made)) == 5000
    assert made == sorted(made)
    assert gen.borrowed == (5000 - 1) // PER_TICK  # ms used ahead of the stopped clock
    other = GeneGenerator(6, clock.time)
    assert not set(made) & {other.next_id(7, 9) for _ in range(5000)}


def test_a_worker_sustains_32000_ids_per_second_without_running_ahead() -> None:
    clock = FakeClock(1_800_000_000)
    gen = GeneGenerator(5, clock.time)
    made = []
    for ms in range(2000):  # two seconds at the full rate: 32 ids in each millisecond
        clock.now = 1_800_000_000 + (ms + 0.5) / 1000
        made += [gen.next_id(1, 2) for _ in range(PER_TICK)]
    assert len(set(made)) == len(made) == 64000
    assert gen.borrowed == 0
    assert tick_of_id(made[-1]) <= clock_tick(clock.time)


def test_the_clock_stepped_back_an_hour_neither_repeats_nor_fails() -> None:
    clock = FakeClock(1_800_000_000)
    reserved: list[int] = []

    def reserve(tick: int) -> int:  # a persisted ceiling 50 ms ahead, as the lease does
        reserved.append(tick + 50)
        return tick + 50

    gen = GeneGenerator(5, clock.time, ceiling=0, reserve=reserve)
    before = []
    for _ in range(3000):
        before.append(gen.next_id(11, 12))
        clock.now += 0.0001
    clock.now -= 3600
    after = []
    for _ in range(3000):
        after.append(gen.next_id(11, 12))
        clock.now += 0.0001
    assert len(set(before + after)) == 6000
    assert min(after) > max(before)
    assert after == sorted(after)
    assert reserved == sorted(reserved) and len(reserved) >= 2
    assert gen.borrowed > 0


def test_a_restart_from_the_persisted_ceiling_issues_only_larger_ids() -> None:
    clock = FakeClock(1_800_000_000)
    first = GeneGenerator(7, clock.time, ceiling=0, reserve=lambda tick: tick + 30_000)
    burst = [first.next_id(3, 4) for _ in range(50_000)]  # runs ahead of the stopped clock
    restarted = GeneGenerator(7, clock.time, start=first.ceiling)
    more = [restarted.next_id(3, 4) for _ in range(50_000)]
    assert len(set(burst + more)) == 100_000
    assert min(more) > max(burst)


def test_ids_of_the_previous_layout_stay_below_and_keep_routing() -> None:
    """The layout before (31 bits of seconds, 10 of worker, 9 of sequence): its ids route by
    the same gene rule, and this layout's ids at the same instant are larger even when the old
    generator had borrowed a month ahead."""
    now = EPOCH + 340 * 86400  # early December 2026, when this layout ships
    old_base = ((now + 31 * 86400 - EPOCH) << 19 | 1023 << 9 | 511)
    old_id = old_base * 14400 + 17 * 120 + 42
    assert user_shard_of_gene(old_id) == 42 and merchant_shard_of_gene(old_id) == 17
    assert GeneGenerator(0, FakeClock(now).time).next_id(0, 0) > old_id


def test_the_layout_lasts_until_2045() -> None:
    assert first_id_of_tick(LAST_TICK) + (1 << 10) * 14400 - 1 < 2**63
    assert first_id_of_tick(LAST_TICK + 1) + (1 << 10) * 14400 - 1 >= 2**63
    assert tick_time(LAST_TICK).startswith("2045-10-27")
    gen = GeneGenerator(31, start=LAST_TICK, ceiling=0, reserve=lambda tick: tick + 10)
    gen._clock = lambda: 0.0
    for _ in range(PER_TICK):
        assert gen.next_id(119, 119) < 2**63
    with pytest.raises(OverflowError, match="exhausted"):
        gen.next_id(119, 119)


def plan_for(sql: bytes):
    router = Router(CONFIG)
    fp = fingerprint(sql)
    return router.plan(sql, fp, "trade", admin=False), fp.slots(sql)


@given(st.lists(ids, min_size=1, max_size=40))
@settings(max_examples=100)
def test_in_lists_reach_exactly_the_named_shards_with_their_own_values(users: list[int]) -> None:
    sql = b"SELECT * FROM orders WHERE user_id IN (" + b", ".join(
        str(u).encode() for u in users) + b") AND status = 1"
    plan, slots = plan_for(sql)
    found = targets(CONFIG, plan.sharded, slots)
    assert {t.shard for t in found} == {u % 120 for u in users}
    for t in found:
        sent = plan.sharded.template.render(slots, t.database, t.only).decode()
        assert sent.startswith(f"SELECT * FROM user_{t.shard:03d}.orders WHERE user_id IN (")
        values = sent.split("IN (")[1].split(")")[0].split(", ")
        assert sorted(int(v) for v in values) == sorted(u for u in users if u % 120 == t.shard)
        expected = "a" if t.shard < 60 else "b"
        assert t.instance == expected


@given(ids, ids)
def test_order_id_routes_by_its_gene_in_both_orders(user: int, merchant: int) -> None:
    order_id = GeneGenerator(1).next_id(user, merchant)
    for sql in (f"SELECT * FROM orders WHERE id = {order_id}".encode(),
                f"SELECT * FROM `orders` o WHERE {order_id} = o.id".encode()):
        plan, slots = plan_for(sql)
        (target,) = targets(CONFIG, plan.sharded, slots)
        assert target.shard == user % 120


def test_merchant_only_reads_use_the_merchant_copy() -> None:
    plan, slots = plan_for(b"SELECT * FROM orders WHERE merchant_id = 245 /* note */")
    (target,) = targets(CONFIG, plan.sharded, slots)
    assert target.database == b"merchant_005"


def test_scatter_writes_only_when_the_config_allows_them() -> None:
    sql = b"UPDATE orders SET status = 2 WHERE status = 1"
    plan, _ = plan_for(sql)
    assert plan.error[0] == 1235
    assert "allow_scatter_writes" in plan.error[2]
    db = CONFIG.databases["trade"].model_copy(update={"allow_scatter_writes": True})
    allowing = CONFIG.model_copy(update={"databases": {"trade": db}})
    router = Router(allowing)
    fp = fingerprint(sql)
    plan = router.plan(sql, fp, "trade", admin=False)
    found = targets(allowing, plan.sharded, fp.slots(sql))
    assert plan.sharded.write
    assert len(found) == 120
    sent = plan.sharded.template.render(fp.slots(sql), found[7].database, None)
    assert sent == b"UPDATE user_007.orders SET status = 2 WHERE status = 1"


def _forms(n: int) -> list[tuple[str, int]]:
    """Ways a client writes the integer ``n``, and the integer MariaDB compares a key column
    with: ``n`` itself, except for an unquoted exponent, which makes a DOUBLE (exact to 2^53)."""
    exact = [str(n), f"{n}.0", f"{n}.", hex(n), bin(n), f"b'{n:b}'", f"'{n}'", f"' {n}.00 '",
             f"'+{n}'", f"'{n}e0'", f"'{n}0e-1'", f'"{n}"']
    doubles = [f"{n}e0", f"{n}0e-1"]
    return [(form, n) for form in exact] + [(form, int(float(form))) for form in doubles]

@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_a_whole_number_routes_as_itself_however_it_is_written(n: int) -> None:
    for form, value in _forms(n):
        assert key_value(form.encode()) == value, form


@pytest.mark.parametrize("literal", [
    "5.5", "1e-1", "'5abc'", "'1_000'", "1_000", "X'10'", "'0x10'", "''", "1e400", "'-5'", "-5",
    "'5 6'",
    "1" * 5000, "'" + "1" * 5000 + "'", "1e99999999999999999999", "'0e99999999999999999999'",
])
def test_a_key_that_is_not_a_whole_number_is_refused(literal: str) -> None:
    # '1_000' is 1 to MariaDB (it stops at '_') but 1000 to Python's int(); 5.5 and '5abc' match
    # no integer key or are truncated with a warning; X'10' is a string (it matches id 0).
    with pytest.raises(Refusal) as refused:
        key_value(literal.encode())
    assert refused.value.code == 1105
