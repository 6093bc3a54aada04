"""The two ways a scatter merge says no."""

from __future__ import annotations


class ScatterUnsupported(Exception):
    """A statement DAL cannot merge exactly across shards; the message names the construct.

    Raised by `router.rewrite.plan_scatter` (once per statement shape), and by the merge
    primitives (router/engine/) only when a column's metadata shows something they cannot
    order (an ENUM or SET column in ORDER BY: MySQL orders those by member index, which the
    text protocol does not carry)."""


class MergeTooLarge(Exception):
    """The merge would hold more rows than the configured maximum (memory bound)."""
