"""The fast scanner: a statement's shape with literals replaced by ``?``, and the literals kept.

Two statements that differ only in literal values (numbers, strings, hex, IN lists of any
length) share a fingerprint, so the plan cache serves both without running sqlglot. Comments
and quoted identifiers are kept verbatim; table names are case-sensitive, so nothing is
lower-cased. Whitespace is not normalised: a statement written two ways gets two cache
entries, which costs memory, never correctness.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_SINGLE = rb"""'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'"""
_DOUBLE = rb'"[^"\\]*(?:(?:\\.|"")[^"\\]*)*"'
_SINGLE_RAW = rb"'[^']*(?:''[^']*)*'"  # NO_BACKSLASH_ESCAPES: a backslash is a character
_DOUBLE_RAW = rb'"[^"]*(?:""[^"]*)*"'
# `--` starts a comment before any space or control character (MariaDB's lexer), or at the end.
_REST = (rb"""|(/\*.*?\*/|--(?:\n|[\x00-\x09\x0b-\x20\x7f][^\n]*|$)|\#[^\n]*)"""
         rb"""|((?<![\w$.@])(?:0x[0-9a-fA-F]+|[xX]'[0-9a-fA-F]*'|[bB]'[01]*'"""
         rb"""|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w$]))""")


def _token_regex(modes: int) -> re.Pattern[bytes]:
    """The scanner's token regex under the session's lexer modes (router/sqltext.py):
    NO_BACKSLASH_ESCAPES (bit 1) ends strings at the first lone quote, ANSI_QUOTES (bit 2)
    makes ``"x"`` a quoted identifier."""
    single, double = (_SINGLE_RAW, _DOUBLE_RAW) if modes & 1 else (_SINGLE, _DOUBLE)
    if modes & 2:
        return re.compile(b"(" + single + b")|(`(?:[^`]|``)*`|" + _DOUBLE_RAW + b")" + _REST,
                          re.S)
    return re.compile(b"(" + single + b"|" + double + b")|(`(?:[^`]|``)*`)" + _REST, re.S)


# Strings as unrolled loops ([^'\\]* runs, then an escape or a doubled quote): a regex
# alternation per character takes seconds on a multi-megabyte literal.
# Groups: 1 string, 2 quoted identifier, 3 comment, 4 number/hex.
_TOKEN = _token_regex(0)
_MODE_TOKENS = {modes: _token_regex(modes) for modes in (1, 2, 3)}
_IN_LIST = re.compile(rb"(?i)(\bin\s*\()\s*\?(?:\s*,\s*\?)*\s*\)")


@dataclass(slots=True, frozen=True)
class Fingerprint:
    """A statement's shape (``key``) and where its literals are in the original text.

    Each ``?`` of the key is a *slot*: one literal, or a whole IN list of literals (``groups``
    holds (first literal index, count) for each list), so that a plan built from the key serves
    every statement of that shape, whatever its IN lists' lengths.
    """

    key: bytes
    literals: tuple[tuple[int, int], ...]
    groups: tuple[tuple[int, int], ...] = ()

    def values(self, sql: bytes) -> list[bytes]:
        """The literal texts, in order, as written in ``sql``."""
        return [sql[a:b] for a, b in self.literals]

    def slots(self, sql: bytes) -> list[list[bytes]]:
        """The literal texts grouped by slot: one list per ``?`` of the key."""
        values = [sql[a:b] for a, b in self.literals]
        if not self.groups:
            return [[v] for v in values]
        out: list[list[bytes]] = []
        i = 0
        for first, count in self.groups:
            out.extend([v] for v in values[i:first])
            out.append(values[first:first + count])
            i = first + count
        out.extend([v] for v in values[i:])
        return out


_DIGITS = b"0123456789"
# Statements that end in a number (`WHERE id=42`, `LIMIT 10`), by the text before that number:
# the fingerprint of the rest, whose last literal is that number. Bounded; cleared when full.
_TAIL_CACHE: dict[bytes, Fingerprint] = {}
TAIL_CACHE_SIZE = 10000
# Heads longer than this are not remembered (here or by the express lane): each entry keeps its
# text, string literals included, and 10,000 heads of a 1 MB string would hold 10 GB.
MAX_HEAD = 4096
# A trailing literal the tail cache and the express lane take has fewer digits than this (a
# BIGINT UNSIGNED has 20); longer ones take the full path.
MAX_TRAILING_DIGITS = 20


def fingerprint(sql: bytes) -> Fingerprint:
    """Scan a statement once; literal positions are offsets into ``sql``.

    A statement that ends in digits is first looked up by the text before them: every
    statement with that text and any digits after it has the same shape, so the scan is
    skipped (it is the dominant cost of a point read's routing)."""
    head = sql.rstrip(_DIGITS)
    cut = len(head)
    if cut == len(sql):
        return _scan(sql)
    known = _TAIL_CACHE.get(head)
    if known is not None:
        return Fingerprint(known.key, (*known.literals, (cut, len(sql))), known.groups)
    fp = _scan(sql)
    if cut <= MAX_HEAD and trailing_literal(sql, fp) == cut:
        if len(_TAIL_CACHE) >= TAIL_CACHE_SIZE:
            _TAIL_CACHE.clear()
        _TAIL_CACHE[head] = Fingerprint(fp.key, fp.literals[:-1], fp.groups)
    return fp


def fingerprint_in_modes(sql: bytes, modes: int) -> Fingerprint:
    """`fingerprint` for a session whose sql_mode changes where literals end (``modes`` as in
    router/sqltext.py); 0 is the ordinary scanner. No tail cache: its heads were learnt
    under the ordinary reading."""
    if not modes:
        return fingerprint(sql)
    return _scan(sql, _MODE_TOKENS[modes & 3])


def trailing_literal(sql: bytes, fp: Fingerprint) -> int:
    """Where the integer literal that ends ``sql`` starts, when that literal is a slot of its
    own (not part of an IN list) of under 20 digits; else -1.

    Then every statement made of ``sql[:cut]`` and other digits has the same fingerprint: the
    character before the digits decides alone whether they are a literal."""
    literals = fp.literals
    if not literals:
        return -1
    cut, end = literals[-1]
    if (end != len(sql) or not cut or end - cut >= MAX_TRAILING_DIGITS or not sql[cut:].isdigit()
            or (fp.groups and sum(fp.groups[-1]) >= len(literals))):
        return -1
    return cut


def _scan(sql: bytes, token: re.Pattern[bytes] = _TOKEN) -> Fingerprint:
    parts: list[bytes] = []
    spans: list[tuple[int, int]] = []
    last = 0
    for match in token.finditer(sql):
        if match.lastindex in (1, 4):
            start, end = match.span()
            parts.append(sql[last:start])
            parts.append(b"?")
            spans.append((start, end))
            last = end
    if not spans:
        return Fingerprint(sql, ())
    parts.append(sql[last:])
    key = b"".join(parts)
    if b"?)" not in key:
        return Fingerprint(key, tuple(spans))
    return _collapse_in_lists(key, parts, tuple(spans))


def _collapse_in_lists(key: bytes, parts: list[bytes],
                       spans: tuple[tuple[int, int], ...]) -> Fingerprint:
    """Rewrite each ``IN (?, ?, ...)`` of the key as ``IN (?)``, remembering the list."""
    marks = []  # key offset of each literal's ?
    offset = 0
    for i in range(0, len(parts) - 1, 2):
        offset += len(parts[i])
        marks.append(offset)
        offset += 1
    groups = []
    out = []
    last = 0
    for match in _IN_LIST.finditer(key):
        first = bisect.bisect_left(marks, match.start())
        count = bisect.bisect_left(marks, match.end()) - first
        if count != match.group(0).count(b"?"):
            continue  # a ? inside a comment: leave this list alone
        groups.append((first, count))
        out.append(key[last:match.start()])
        out.append(match.group(1) + b"?)")
        last = match.end()
    if not groups:
        return Fingerprint(key, spans)
    out.append(key[last:])
    return Fingerprint(b"".join(out), spans, tuple(groups))


def unquote_string(literal: bytes) -> bytes:
    """The value of a quoted string literal as MySQL reads it (backslash escapes, doubled
    quotes)."""
    quote = literal[:1]
    body = literal[1:-1]
    if b"\\" not in body and quote * 2 not in body:
        return body
    out = bytearray()
    i = 0
    escapes = {ord("0"): b"\x00", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
               ord("b"): b"\b", ord("Z"): b"\x1a"}
    while i < len(body):
        c = body[i]
        if c == 0x5C and i + 1 < len(body):
            nxt = body[i + 1]
            out += escapes.get(nxt, bytes((nxt,)))
            i += 2
        elif body[i:i + 2] == quote * 2:
            out += quote
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)
