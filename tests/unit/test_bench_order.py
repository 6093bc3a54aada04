"""The order of targets in `dal bench` rounds: direct first, every other target right after it
in turn (that place measured less CPU per query, so a fixed order would favour one build)."""

from tools.bench import round_order
from tools.bench_common import Target


def _targets(count: int) -> list[Target]:
    return [Target(f"t{i}", "127.0.0.1", 1000 + i, "u", "p", "db") for i in range(count)]


def test_direct_opens_every_round_and_the_others_take_turns_after_it() -> None:
    targets = _targets(4)
    rounds = [round_order(targets, turn) for turn in range(6)]
    assert all(order[0] is targets[0] for order in rounds)
    assert all(sorted(t.name for t in order) == [t.name for t in targets] for order in rounds)
    after_direct = [order[1].name for order in rounds]
    assert after_direct == ["t1", "t2", "t3", "t1", "t2", "t3"]


def test_direct_alone_and_one_other_target_keep_their_order() -> None:
    assert round_order(_targets(1), 3) == _targets(1)
    two = _targets(2)
    assert [round_order(two, turn) for turn in range(2)] == [two, two]
