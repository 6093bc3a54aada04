"""`Project`: the client's columns: hidden trailing columns dropped, and columns renamed to the
text the client wrote (``SELECT k+1`` is named ``k+1``, not the shard's ``k + 1``)."""

from __future__ import annotations

from dataclasses import replace

from router.engine import describe, spec
from router.engine.base import RowPrimitive, Rows, Slots
from router.engine.merging import Merge, Step, one_stream

Names = tuple[tuple[int, tuple[str | int, ...]], ...]


class Project(Merge):
    """Drop ``hidden`` trailing columns; rename by ``names`` (column, text or slot parts)."""

    def __init__(self, source: RowPrimitive, hidden: int, names: Names, slotted: bool) -> None:
        super().__init__(source)
        self.hidden = hidden
        self.names = names
        self.slotted = slotted

    def describe(self, slots: Slots | None = None) -> str:
        done = []
        if self.hidden:
            done.append(f"drop {self.hidden} hidden column{'s' if self.hidden > 1 else ''}")
        names = spec.bind_names(self.names, slots) if slots is not None else self.names
        done += [f"name {describe.column(i)} "
                 + repr("".join(p if isinstance(p, str) else f"<literal {p}>" for p in parts))
                 for i, parts in names]
        return "Project: " + "; ".join(done)

    def step(self, slots: Slots) -> Step:
        names = spec.bind_names(self.names, slots) if self.slotted else self.names
        hidden = self.hidden

        def run(rows: Rows, max_rows: int) -> Rows:
            visible = len(rows.columns) - hidden
            columns = rows.columns[:visible]
            if names:
                columns = list(columns)
                for index, parts in names:
                    name = "".join(str(p) for p in parts).encode("utf-8", "surrogateescape")
                    columns[index] = replace(columns[index], name=name)
            stream = one_stream(rows)
            if hidden:
                stream = (row[:visible] for row in stream)
            return Rows(columns, [stream])

        return run
