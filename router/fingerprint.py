"""The fast scanner: a statement's shape with literals replaced by ``?``, and the literals kept.

Two statements that differ only in literal values (numbers, strings, hex, IN lists of any
length) share a fingerprint, so the plan cache serves both without running sqlglot. Comments
and quoted identifiers are kept verbatim; table names are case-sensitive, so nothing is
lower-cased. Whitespace is not normalised: a statement written two ways gets two cache
entries, which costs memory, never correctness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    # Strings as unrolled loops ([^'\\]* runs, then an escape or a doubled quote): a regex
    # alternation per character takes seconds on a multi-megabyte literal.
    rb"""('[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|"[^"\\]*(?:(?:\\.|"")[^"\\]*)*")"""  # 1 string
    rb"""|(`(?:[^`]|``)*`)"""  # 2 quoted identifier
    rb"""|(/\*.*?\*/|--[ \t][^\n]*|--\n|\#[^\n]*)"""  # 3 comment
    rb"""|((?<![\w$.@])(?:0x[0-9a-fA-F]+|[xX]'[0-9a-fA-F]*'|[bB]'[01]*'"""
    rb"""|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w$]))""",  # 4 number/hex
    re.S,
)
_IN_LIST = re.compile(rb"(?i)(\bin\s*\()\s*\?(?:\s*,\s*\?)*\s*\)")


@dataclass(slots=True, frozen=True)
class Fingerprint:
    """A statement's shape (``key``) and where its literals are in the original text."""

    key: bytes
    literals: tuple[tuple[int, int], ...]

    def values(self, sql: bytes) -> list[bytes]:
        """The literal texts, in order, as written in ``sql``."""
        return [sql[a:b] for a, b in self.literals]


def fingerprint(sql: bytes) -> Fingerprint:
    """Scan a statement once; literal positions are offsets into ``sql``."""
    parts: list[bytes] = []
    spans: list[tuple[int, int]] = []
    last = 0
    for match in _TOKEN.finditer(sql):
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
    if b"?)" in key:
        key = _IN_LIST.sub(rb"\1?,...)", key)
    return Fingerprint(key, tuple(spans))


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
