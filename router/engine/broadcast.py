"""`Broadcast`: a write to broadcast tables, applied to every copy: the default database and
every shard of every dimension. Every copy changes alike, so one copy's count is reported."""

from __future__ import annotations

from router.engine.base import ShardResult, Slots
from router.engine.scatter import Scatter


class Broadcast(Scatter):
    """A Scatter write over every copy (``routing.broadcast``), reporting one copy's count."""

    def describe(self, slots: Slots | None = None) -> str:
        return (f"Broadcast {self.statement.upper()} to every copy (the default database and "
                "every shard of each dimension); one copy's affected rows reported")

    def affected(self, results: list[ShardResult]) -> int:
        first = results[0].ok
        return first.affected_rows if first else 0
