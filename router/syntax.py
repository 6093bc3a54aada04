"""MariaDB's 1064 for a statement DAL itself cannot parse (its backends never see it).

MariaDB answers ``You have an error in your SQL syntax; check the manual that corresponds to
your MariaDB server version for the right syntax to use near '<tail>' at line <n>``, the tail
starting at the first token its parser could not place (at most 80 characters). sqlglot's
exception says where it stopped; its own wording (class names, columns) never reaches a client.
"""

from __future__ import annotations

from sqlglot.errors import ParseError

from router.errors import PARSE_ERROR as PARSE_ERROR  # ER_PARSE_ERROR, for the planner

_NEAR_MAX = 80  # MariaDB prints the tail with '%-.80s'


def message(text: str, position: int | None) -> str:
    """The 1064 text for ``text``, near ``position`` (None: the whole statement)."""
    if position is None:
        position = len(text) - len(text.lstrip())
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    near = text[position:][:_NEAR_MAX]
    return ("You have an error in your SQL syntax; check the manual that corresponds to your "
            f"MariaDB server version for the right syntax to use near '{near}' at line {line}")


def error_position(text: str, exc: Exception) -> int | None:
    """Where in ``text`` sqlglot's ``exc`` says parsing failed: the start of the token it could
    not place, or the end of ``text`` when it ran out of tokens; None when it does not say."""
    if not isinstance(exc, ParseError) or not exc.errors:
        return _unterminated_quote(text)
    first = exc.errors[0]
    line, col, highlight = first.get("line"), first.get("col"), first.get("highlight") or ""
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    offset = 0
    for _ in range(line - 1):
        newline = text.find("\n", offset)
        if newline < 0:
            return None
        offset = newline + 1
    end = offset + col  # sqlglot's col is where the highlighted token ends
    unexpected = str(first.get("description", "")).startswith("Invalid expression")
    if not first.get("end_context") and not unexpected:
        return len(text)  # it wanted more: MariaDB says near ''
    return max(0, end - len(highlight))


def _unterminated_quote(text: str) -> int | None:
    """Where a string or quoted identifier that never ends starts (sqlglot's TokenError does
    not say); None if there is none."""
    i, n = 0, len(text)
    while i < n:
        quote = text[i]
        if quote in "'\"`":
            j = i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == "\\" and quote != "`" else 1
            if j >= n:
                return i
            i = j
        i += 1
    return None
