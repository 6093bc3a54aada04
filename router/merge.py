"""Scatter-gather merging, as names the rewrite and the executor import.

The merge spec lives in `router.engine.spec` and the merge itself in the primitives
`router.engine.build` makes of a spec (Aggregate, Distinct, MergeSort, Limit, Project).
`merge` runs them over shard results already fetched; it stays while dal/executor.py calls it.
"""

from __future__ import annotations

from router.engine.build import merge_results as merge
from router.engine.spec import Aggregate, MergeSpec, Ref, SlotRef, SortKey, slot_int
from router.primitives.errors import MergeTooLarge, ScatterUnsupported

__all__ = ["Aggregate", "MergeSpec", "MergeTooLarge", "Ref", "ScatterUnsupported", "SlotRef",
           "SortKey", "merge", "slot_int"]
