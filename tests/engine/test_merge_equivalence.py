"""The tree of merge primitives against router.merge.merge() as it was (the pipeline the
primitives replace): same columns, same rows, same refusals, for random specs and results."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from router.engine.build import merge_results
from router.merge import merge
from router.primitives.sort import row_key
from tests.engine.test_merge_model import aggregated_case, plain_case
from tests.router.helpers import text

WORDS = ["a", "A", "b", "B ", "é", "e", None]


def outcome(run: object) -> tuple:
    try:
        columns, rows = run()  # type: ignore[operator]
    except Exception as exc:  # the same refusal, word for word
        return ("raised", type(exc).__name__, str(exc))
    return ("ok", [c.encode() for c in columns], rows)


@st.composite
def variant(draw: st.DrawFn) -> tuple:
    """A model case, perhaps with a text column (collations), renamed columns, a small
    max_rows (the merge's bound) and shard streams re-sorted by the merge's own key."""
    spec, columns, results, slots, _ = draw(st.one_of(plain_case(), aggregated_case()))
    columns = list(columns)
    if not spec.aggregated and draw(st.booleans()):
        columns[1] = text("k2", binary_collation=draw(st.booleans()))
        results = [[[row[0], None if (w := draw(st.sampled_from(WORDS))) is None else w.encode(),
                     row[2]] for row in shard] for shard in results]
        if spec.order:
            bound = spec.bind(slots)
            key = row_key(columns, [(int(k.column), k.desc) for k in bound.order])
            results = [sorted(shard, key=key) for shard in results]
    if draw(st.booleans()):
        slots = [*slots, [b"7"]]
        spec = replace(spec, names=((0, ("x+", len(slots) - 1)),), slotted=True)
    max_rows = draw(st.sampled_from([2, 5, 10_000]))
    return spec, columns, results, slots, max_rows


@given(variant())
@settings(max_examples=500, deadline=None)
def test_tree_equals_the_old_merge(case: tuple) -> None:
    spec, columns, results, slots, max_rows = case
    copies = [[list(row) for row in shard] for shard in results]  # the merge may fill rows in
    tree = outcome(lambda: merge_results(spec, columns, results, max_rows, slots))
    old = outcome(lambda: merge(spec, columns, copies, max_rows, slots=slots))
    assert tree == old
