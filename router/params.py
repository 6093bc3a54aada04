"""Prepared statements meet the plan cache: a statement's ``?`` parameters are slots too.

The fingerprint of a prepared statement keeps its ``?`` markers as they are, so its key is
the statement with literals and parameters both written ``?``, and the planner numbers all of
them as slots. A `Shape` says, for each slot of the key, whether it holds literals written in
the statement or a parameter bound at execution. Routing then uses the same plans as text
statements: parameter values, written as SQL literals, fill their slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router.fingerprint import Fingerprint, fingerprint
from router.template import Template


@dataclass(frozen=True, slots=True)
class Shape:
    """A prepared statement's fingerprint, and per key slot: a parameter index (int) or the
    literal texts of the statement (a tuple, several for a collapsed IN list)."""

    fp: Fingerprint
    sources: tuple[int | tuple[bytes, ...], ...]
    params: int
    unbound: tuple[tuple[bytes, ...], ...] = ()  # slot values, every parameter written ``?``

    def slots(self, params: list[bytes]) -> list[list[bytes]]:
        """Slot values for a plan, with parameter ``i`` written as ``params[i]``."""
        return [[params[s]] if s.__class__ is int else list(s)  # type: ignore[arg-type]
                for s in self.sources]

    def render(self, template: Template, slots: list[list[bytes]], shard_db: bytes,
               only: dict[int, list[bytes]] | None = None) -> tuple[bytes, list[int]]:
        """The statement for one shard with parameters left as ``?``, and which parameter each
        ``?`` of it takes. A parameter whose slot is narrowed to this shard's values (an IN
        list) is written as its literal instead."""
        out = []
        order = []
        qualifier = shard_db + b"."
        sources = self.sources
        for part in template.parts:
            if part.__class__ is bytes:
                out.append(part)  # type: ignore[arg-type]
            elif part is None:
                out.append(qualifier)
            else:
                source = sources[part] if part < len(sources) else None  # type: ignore[operator]
                if source.__class__ is int and (only is None or part not in only):
                    out.append(b"?")
                    order.append(source)
                    continue
                values = only[part] if only is not None and part in only else slots[part]  # type: ignore[index]
                out.append(values[0] if len(values) == 1 else b", ".join(values))
        return b"".join(out), order  # type: ignore[return-value]


def shape_of(sql: bytes) -> Shape:
    """The shape of a statement with ``?`` parameter markers."""
    fp = fingerprint(sql)
    markers = param_positions(sql)
    holes = sorted([(start, i, False) for i, (start, _) in enumerate(fp.literals)]
                   + [(pos, i, True) for i, pos in enumerate(markers)])
    groups = dict(fp.groups)
    sources: list[int | tuple[bytes, ...]] = []
    skip = 0
    for _, index, is_param in holes:
        if is_param:
            sources.append(index)
        elif skip:
            skip -= 1
        elif index in groups:
            count = groups[index]
            sources.append(tuple(sql[a:b] for a, b in fp.literals[index:index + count]))
            skip = count - 1
        else:
            a, b = fp.literals[index]
            sources.append((sql[a:b],))
    unbound = tuple((b"?",) if s.__class__ is int else s for s in sources)
    return Shape(fp, tuple(sources), len(markers), unbound)  # type: ignore[arg-type]


def param_count(sql: bytes) -> int:
    """The number of ``?`` parameter markers outside strings, identifiers and comments."""
    return len(param_positions(sql))


_SKIP = re.compile(rb"""'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|"[^"\\]*(?:(?:\\.|"")[^"\\]*)*\""""
                   rb"""|`(?:[^`]|``)*`|/\*.*?\*/|--[ \t][^\n]*|--\n|\#[^\n]*|\?""", re.S)


def param_positions(sql: bytes) -> list[int]:
    """Offsets of the ``?`` parameter markers of a statement."""
    return [m.start() for m in _SKIP.finditer(sql) if m.group() == b"?"]


def fill_markers(sql: bytes, markers: list[int], values: list[bytes]) -> bytes:
    """``sql`` with the ``?`` at each of ``markers`` (`param_positions`) replaced, in order, by
    ``values`` (SQL literals)."""
    out, last = [], 0
    for at, value in zip(markers, values, strict=True):
        out += [sql[last:at], value]
        last = at + 1
    out.append(sql[last:])
    return b"".join(out)
