"""Split a multi-statement COM_QUERY into its statements (sans-IO, bytes in, bytes out).

A ``;`` ends a statement unless it is inside a quoted string ('...' or "...", with
backslash escapes and doubled quotes), a backquoted identifier, or a comment (``-- `` to end
of line, ``#`` to end of line, ``/* ... */``; MySQL's executable comments ``/*! ... */`` are
comments here too, so a ``;`` inside one does not split). There is no DELIMITER: that is a
command of the mysql client, never sent to the server. Pieces that hold only whitespace and
comments are dropped, so a trailing ``;`` adds nothing.

Nor does a ``;`` inside a compound statement split, as MariaDB's parser reads one: the body of
CREATE PROCEDURE / FUNCTION / TRIGGER / EVENT (and ALTER EVENT ... DO), and the compound
statements MariaDB runs outside stored programs (BEGIN NOT ATOMIC, IF, CASE, LOOP, WHILE,
REPEAT, with labels). Such a statement ends at the first ``;`` after its outermost END
(`_compound_end`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_SPACE = b" \t\r\n\f\v"


def split_statements(sql: bytes) -> list[bytes]:
    """The statements of ``sql``, each without its terminating ``;`` and outer whitespace."""
    out: list[bytes] = []
    start = 0
    i = 0
    n = len(sql)
    meaningful = False  # the current piece has something besides whitespace and comments
    while i < n:
        c = sql[i]
        if c in b"'\"`":
            i = _skip_quoted(sql, i)
            meaningful = True
        elif c in b"#-/" and (after := _skip_comment(sql, i)) is not None:
            if sql[i:i + 3] == b"/*!":  # executable comment: part of the statement
                meaningful = True
            i = after
        elif c == 0x3B:  # ;
            if meaningful:
                out.append(sql[start:i].strip(_SPACE))
            start = i + 1
            meaningful = False
            i += 1
        else:
            if c not in _SPACE:
                if not meaningful and _may_be_compound(sql, i):
                    end = _compound_end(sql, i)
                    if end is not None:
                        i = end
                        meaningful = True
                        continue
                meaningful = True
            i += 1
    if meaningful:
        out.append(sql[start:].strip(_SPACE))
    return out


def _skip_comment(sql: bytes, i: int) -> int | None:
    """The index after the comment that starts at ``i`` (``-- ``, ``#`` to the end of the line,
    ``/* ... */``), or None when none starts there."""
    n = len(sql)
    c = sql[i]
    if c == 0x23 or (c == 0x2D and sql[i:i + 2] == b"--"
                     and (i + 2 >= n or sql[i + 2] in _SPACE)):
        end = sql.find(b"\n", i)
        return n if end < 0 else end + 1
    if c == 0x2F and sql[i:i + 2] == b"/*":
        end = sql.find(b"*/", i + 2)
        return n if end < 0 else end + 2
    return None


def _skip_quoted(sql: bytes, i: int) -> int:
    """The index after the quoted string or identifier that starts at ``i``."""
    quote = sql[i]
    n = len(sql)
    i += 1
    while i < n:
        d = sql[i]
        if d == 0x5C and quote != 0x60:  # backslash escape inside a string
            i += 2
            continue
        if d == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote
                i += 2
                continue
            break
        i += 1
    return i + 1


# -- compound statements ------------------------------------------------------------------------

_WORD = re.compile(rb"[A-Za-z0-9_$\x80-\xff]+")
_HEADS = frozenset({b"CREATE", b"ALTER", b"BEGIN", b"IF", b"CASE", b"LOOP", b"WHILE", b"REPEAT"})
_LABEL = re.compile(rb"[ \t\r\n\f\v]*:(?!=)")
_ROUTINES = frozenset({b"PROCEDURE", b"FUNCTION", b"TRIGGER", b"EVENT", b"PACKAGE"})
_BLOCKS = frozenset({b"BEGIN", b"IF", b"CASE", b"LOOP", b"WHILE", b"REPEAT"})
_END_KINDS = frozenset({b"IF", b"CASE", b"LOOP", b"WHILE", b"REPEAT"})
# Words after which a new statement of a body starts.
_STARTS = frozenset({b"BEGIN", b"DO", b"LOOP", b"REPEAT", b"ATOMIC"})

# kind ("w" word upper-cased, "s" quoted, "p" punctuation), text, start, end
Token = tuple[str, bytes, int, int]


def _tokens(sql: bytes, i: int) -> Iterator[Token]:
    """Tokens from ``i`` on, comments and whitespace skipped; stops at the end of ``sql``."""
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i += 1
        elif c in b"'\"`":
            j = _skip_quoted(sql, i)
            yield "s", sql[i:j], i, j
            i = j
        elif c in b"#-/" and (after := _skip_comment(sql, i)) is not None:
            i = after
        elif (m := _WORD.match(sql, i)) is not None:
            yield "w", m.group().upper(), i, m.end()
            i = m.end()
        elif c == 0x3A and sql[i + 1:i + 2] == b"=":
            yield "p", b":=", i, i + 2
            i += 2
        else:
            yield "p", sql[i:i + 1], i, i + 1
            i += 1


def _may_be_compound(sql: bytes, i: int) -> bool:
    """A cheap look at the statement's first word: a head of `_HEADS`, or a label."""
    if sql[i] == 0x60:
        end = _skip_quoted(sql, i)
    else:
        m = _WORD.match(sql, i)
        if m is None:
            return False
        if m.group().upper() in _HEADS:
            return True
        end = m.end()
    return _LABEL.match(sql, end) is not None


def _compound_end(sql: bytes, i: int) -> int | None:
    """Where the statement starting at ``i`` ends (the index of its terminating ``;``, or the
    end of ``sql``) when it holds a compound statement; None for any other statement."""
    toks = list(_head(sql, i))
    if not toks:
        return None
    words = [t[1] for t in toks if t[0] == "w"]
    first = toks[0][1] if toks[0][0] == "w" else b""
    label = len(toks) > 2 and toks[0][0] in "ws" and toks[1][1] == b":"
    if first in (b"CREATE", b"ALTER"):
        routine = _routine_kind(toks)
        if routine is None or (first == b"ALTER" and routine != b"EVENT"):
            return None
        return _scan_body(sql, i, header=True)
    if first == b"BEGIN":
        if words[1:3] != [b"NOT", b"ATOMIC"]:
            return None  # BEGIN [WORK]: a transaction
        return _scan_body(sql, i, header=False)
    if first in _BLOCKS - {b"BEGIN"} or (label and toks[2][1] in _BLOCKS):
        if first == b"REPEAT" and len(toks) > 1 and toks[1][1] == b"(":
            return None
        return _scan_body(sql, i, header=False)
    return None


def _head(sql: bytes, i: int, limit: int = 12) -> Iterator[Token]:
    """The first tokens of the statement at ``i`` (up to its first ``;``)."""
    for count, tok in enumerate(_tokens(sql, i)):
        if count >= limit or tok[1] == b";":
            return
        yield tok


def _routine_kind(toks: list[Token]) -> bytes | None:
    """PROCEDURE, FUNCTION, TRIGGER, EVENT or PACKAGE when ``toks`` (a CREATE or ALTER
    statement's head) creates a stored program: CREATE [OR REPLACE] [DEFINER = user]
    [AGGREGATE] <kind>."""
    k = 1
    if toks[k:k + 2] and [t[1] for t in toks[k:k + 2]] == [b"OR", b"REPLACE"]:
        k += 2
    if k < len(toks) and toks[k][1] == b"DEFINER":
        k += 1
        if k < len(toks) and toks[k][1] == b"=":
            k += 1
        # user: name, or name@host, or CURRENT_USER[()]
        while k < len(toks) and ((toks[k][0] in "ws" and toks[k][1] not in _ROUTINES
                                 and toks[k][1] != b"AGGREGATE")
                                 or toks[k][1] in (b"@", b"(", b")")):
            k += 1
    if k < len(toks) and toks[k][1] == b"AGGREGATE":
        k += 1
    if k < len(toks) and toks[k][0] == "w" and toks[k][1] in _ROUTINES:
        return toks[k][1]
    return None


def _is_function_call(toks: list[Token], k: int) -> bool:
    """Is the word at ``k`` a call, ``IF(a, b, c)`` / ``REPEAT(s, n)``: followed by a
    parenthesis whose top level holds a comma? (``IF (a > b) THEN`` is a statement.)"""
    if k + 1 >= len(toks) or toks[k + 1][1] != b"(":
        return False
    depth = 0
    for kind, text, _, _ in toks[k + 1:]:
        if kind != "p":
            continue
        if text == b"(":
            depth += 1
        elif text == b")":
            depth -= 1
            if depth == 0:
                return False
        elif text == b"," and depth == 1:
            return True
        elif text == b";":
            return False
    return False


def _scan_body(sql: bytes, i: int, header: bool) -> int:
    """The end of the compound statement at ``i``: its first ``;`` outside every block.

    ``header``: the statement starts with a CREATE ... header; its body begins at the first
    block word outside parentheses (``IF`` right after PROCEDURE/... is IF NOT EXISTS)."""
    return _Body(list(_tokens(sql, i)), header).end(len(sql))


class _Body:
    """`_scan_body`'s reading of a compound statement, token by token."""

    def __init__(self, toks: list[Token], header: bool) -> None:
        self.toks = toks
        self.header = header
        # Open blocks: BEGIN, IF, CASE (statement), CASEX (expression), ...
        self.stack: list[bytes] = []
        self.start = not header  # at the start of a statement of a body (IF is a statement)
        self.parens = 0
        self.prev, self.prev_kind = b"", ""

    def end(self, n: int) -> int:
        """The position of the ``;`` that ends the statement, else ``n`` (its end)."""
        for k, (kind, text, pos, _) in enumerate(self.toks):
            is_start, self.start = self.start, False
            if kind == "p":
                if self._punctuation(text):
                    return pos
                continue
            self.prev_kind = kind
            if kind == "w" and self.parens == 0 and self._word(k, text, is_start):
                continue
            self.prev = text
        return n

    def _punctuation(self, text: bytes) -> bool:
        """True at a ``;`` outside every block: the end of the statement."""
        if text == b"(":
            self.parens += 1
        elif text == b")":
            self.parens = max(0, self.parens - 1)
        elif text == b";":
            if not self.stack:
                return True
            self.start, self.parens = True, 0
        elif text == b":" and self.prev_kind in "ws":
            self.start = True  # after a label
        self.prev, self.prev_kind = text, "p"
        return False

    def _word(self, k: int, text: bytes, is_start: bool) -> bool:
        """A word outside parentheses; True for the END of END IF / END CASE / ..., whose
        next word is then not a block."""
        opens_body = self.header and not self.stack and self.prev not in _ROUTINES
        if text == b"END":
            if self._end(k):
                return True
        else:
            self._block_word(k, text, is_start or opens_body)
        if self.stack and self.header:
            self.header = False  # the body has begun
        return False

    def _end(self, k: int) -> bool:
        if self.stack:
            self.stack.pop()
        toks = self.toks
        nxt = toks[k + 1][1] if k + 1 < len(toks) else b""
        if nxt in _END_KINDS:  # END IF / END CASE / ...: the next word is not a block
            self.prev = b"END_" + nxt
            toks[k + 1] = ("x", nxt, toks[k + 1][2], toks[k + 1][3])
            return True
        if not self.stack and self.header:
            self.header = False
        return False

    def _block_word(self, k: int, text: bytes, opens: bool) -> None:
        """A word that may open a block or start a statement of the body; ``opens``: at the
        start of a statement, or where the body of a CREATE ... begins."""
        stack = self.stack
        if text == b"BEGIN" and (opens or stack):
            stack.append(b"BEGIN")
            self.start = True
        elif text == b"CASE":
            stack.append(b"CASE" if opens else b"CASEX")
        elif text in (b"IF", b"REPEAT") and opens:
            if not _is_function_call(self.toks, k):
                stack.append(text)
                self.start = text == b"REPEAT"
        elif text in (b"LOOP", b"WHILE") and (opens or stack):
            stack.append(text)
            self.start = text == b"LOOP"
        elif text in (b"THEN", b"ELSE"):
            self.start = bool(stack) and stack[-1] in (b"IF", b"CASE")
        elif text in _STARTS:
            self.start = True
