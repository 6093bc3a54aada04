"""Scatter-gather merging, as names the rewrite and the executor import.

The merge spec lives in `router.engine.spec` and the merge itself in the primitives
`router.engine.build` makes of a spec (Aggregate, Distinct, MergeSort, Limit, Project).
`merge` runs them over shard results already fetched; it stays while dal/executor.py calls it,
and is loaded on first use so that importing the spec names (router.rewrite does) does not
import the engine, which imports router.sharded, which plans scatters with router.rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence

from router.engine.spec import Aggregate, MergeSpec, Ref, SlotRef, SortKey, slot_int
from router.primitives.errors import MergeTooLarge, ScatterUnsupported
from router.rows.columns import ColumnDefinition

__all__ = ["Aggregate", "MergeSpec", "MergeTooLarge", "Ref", "ScatterUnsupported", "SlotRef",
           "SortKey", "merge", "slot_int"]

Row = list[bytes | None]


def merge(spec: MergeSpec, columns: list[ColumnDefinition], results: Sequence[Sequence[Row]],
          max_rows: int, slots: Sequence[Sequence[bytes]] | None = None,
          ) -> tuple[list[ColumnDefinition], list[Row]]:
    """`router.engine.build.merge_results`: the client's columns and rows for one scatter."""
    from router.engine.build import merge_results  # on first use: see the module's docstring

    return merge_results(spec, columns, results, max_rows, slots)
