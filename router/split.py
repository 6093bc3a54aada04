"""Split a multi-statement COM_QUERY into its statements (sans-IO, bytes in, bytes out).

A ``;`` ends a statement unless it is inside a quoted string ('...' or "...", with
backslash escapes and doubled quotes), a backquoted identifier, or a comment (``-- `` to end
of line, ``#`` to end of line, ``/* ... */``; MySQL's executable comments ``/*! ... */`` are
comments here too, so a ``;`` inside one does not split). There is no DELIMITER: that is a
command of the mysql client, never sent to the server. Pieces that hold only whitespace and
comments are dropped, so a trailing ``;`` adds nothing.
"""

from __future__ import annotations

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
            quote = c
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
            meaningful = True
            i += 1
        elif c == 0x23 or (c == 0x2D and sql[i:i + 2] == b"--"
                           and (i + 2 >= n or sql[i + 2] in _SPACE)):
            end = sql.find(b"\n", i)
            i = n if end < 0 else end + 1
        elif c == 0x2F and sql[i:i + 2] == b"/*":
            end = sql.find(b"*/", i + 2)
            if sql[i:i + 3] == b"/*!":  # executable comment: part of the statement
                meaningful = True
            i = n if end < 0 else end + 2
        elif c == 0x3B:  # ;
            if meaningful:
                out.append(sql[start:i].strip(_SPACE))
            start = i + 1
            meaningful = False
            i += 1
        else:
            if c not in _SPACE:
                meaningful = True
            i += 1
    if meaningful:
        out.append(sql[start:].strip(_SPACE))
    return out
