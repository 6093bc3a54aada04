"""Column names of a scatter read: an unaliased expression keeps the text the client wrote,
as MariaDB names it (literals in it may be fingerprint slots, filled in at execution)."""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from router.rewrite.builder import Builder
from router.rewrite.nodes import named_by_value

_SELECT_MODIFIERS = frozenset({
    "ALL", "DISTINCT", "DISTINCTROW", "HIGH_PRIORITY", "STRAIGHT_JOIN", "SQL_SMALL_RESULT",
    "SQL_BIG_RESULT", "SQL_BUFFER_RESULT", "SQL_CACHE", "SQL_NO_CACHE", "SQL_CALC_FOUND_ROWS",
})
_SLOT = re.compile(r":_(\d+)")


def name_columns(b: Builder) -> None:
    """Unaliased expressions are named by the client's text, as MariaDB names them."""
    if b.text is None:
        return
    spans = _select_spans(b.text)
    if spans is None or len(spans) != len(b.items):
        return
    for i, (item, (start, end)) in enumerate(zip(b.items, spans, strict=True)):
        if isinstance(item, exp.Alias) or named_by_value(item):
            continue
        if b.star is not None and b.star < i:
            continue
        written = b.text[start:end]
        if written == item.sql(dialect="mysql"):
            continue
        parts = _split_slots(written)
        b.slotted = b.slotted or any(isinstance(p, int) for p in parts)
        b.names.append((i, parts))


def _split_slots(text: str) -> tuple[str | int, ...]:
    """Text with ``:_N`` slots as (text, slot number, text, ...)."""
    parts: list[str | int] = []
    last = 0
    for match in _SLOT.finditer(text):
        if match.start() > last:
            parts.append(text[last:match.start()])
        parts.append(int(match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return tuple(parts)


def _select_spans(text: str) -> list[tuple[int, int]] | None:
    """(start, end) of each select item in ``text``, from the MySQL tokenizer."""
    try:
        tokens = Dialect.get_or_raise("mysql").tokenize(text)
    except Exception:
        return None
    i = next((n for n, t in enumerate(tokens) if t.token_type == TokenType.SELECT), None)
    if i is None:
        return None
    i += 1
    while i < len(tokens) and tokens[i].text.upper() in _SELECT_MODIFIERS:
        i += 1
    spans: list[tuple[int, int]] = []
    depth = 0
    start = i
    for j in range(i, len(tokens)):
        kind = tokens[j].token_type
        if kind in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth -= 1
        elif depth == 0 and (kind == TokenType.COMMA or kind == TokenType.FROM):
            if j == start:
                return None
            spans.append((tokens[start].start, tokens[j - 1].end + 1))
            start = j + 1
            if kind == TokenType.FROM:
                return spans
    return None
