"""SQL templates: a statement shape with holes for literal slots and for the shard database.

Built once per plan from the fingerprint key (sqlglot finds the table positions); rendered per
execution by joining byte strings, so the hot path never runs sqlglot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A part is bytes (verbatim), an int (a literal slot) or None (the shard database, with a dot).
Part = bytes | int | None

_SLOT = re.compile(r":_(\d+)")


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[Part, ...]

    def render(self, slots: list[list[bytes]], shard_db: bytes,
               only: dict[int, list[bytes]] | None = None) -> bytes:
        """The SQL for one shard. ``only`` narrows a slot's values (an IN list) to this shard's."""
        out = []
        qualifier = shard_db + b"."
        for part in self.parts:
            if part.__class__ is bytes:
                out.append(part)
            elif part is None:
                out.append(qualifier)
            else:
                values = only[part] if only is not None and part in only else slots[part]
                out.append(values[0] if len(values) == 1 else b", ".join(values))
        return b"".join(out)


def build_template(text: str, qualify: list[tuple[int, int]],
                   fixed: Sequence[tuple[int, int, str]] = ()) -> Template:
    """A template from analysis text (slots written ``:_N``) and the spans to replace by the
    shard database: (start, end) with end == start for an insertion before an unqualified
    table, or the span of an existing database qualifier including its dot. ``fixed`` spans
    are replaced by a given text instead (e.g. the default database of an unsharded table)."""
    cuts = sorted([(start, end, None) for start, end in qualify] + list(fixed))
    parts: list[Part] = []
    last = 0
    for start, end, replacement in cuts:
        _split_slots(text[last:start], parts)
        parts.append(None if replacement is None else replacement.encode())
        last = end
    _split_slots(text[last:], parts)
    return Template(tuple(parts))


def _split_slots(text: str, parts: list[Part]) -> None:
    last = 0
    for match in _SLOT.finditer(text):
        if match.start() > last:
            parts.append(text[last:match.start()].encode("utf-8", "surrogateescape"))
        parts.append(int(match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append(text[last:].encode("utf-8", "surrogateescape"))


def analysis_text(key: bytes) -> tuple[str, int] | None:
    """The fingerprint key with its ``?`` slots numbered ``:_0, :_1, ...`` for sqlglot, and the
    slot count; None if a ``?`` outside a slot (in a comment) makes numbering ambiguous."""
    text = key.decode("utf-8", "surrogateescape")
    pieces = text.split("?")
    if any(":_" in piece for piece in pieces):
        return None
    out = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        out.append(f":_{i}")
        out.append(piece)
    return "".join(out), len(pieces) - 1
