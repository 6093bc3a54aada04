"""Functions whose value belongs to the client's session, written into statements as literals.

LAST_INSERT_ID(), ROW_COUNT() and FOUND_ROWS(): a pooled backend connection answers them for
whichever session used it last, and each shard of a scatter for its own last statement.
CONNECTION_ID(): the backend's thread id is not the session's id (the one KILL and SHOW
PROCESSLIST use); `KILL QUERY <CONNECTION_ID() + 0>` would name another session.
USER(), CURRENT_USER() and the like: the backend would name DAL's own backend account. DAL
writes the session's values into the statement before planning it (`WHERE id =
LAST_INSERT_ID()` then routes by that id). A statement that is nothing but these functions
(`SELECT LAST_INSERT_ID()`) is answered by DAL itself, with the column names MariaDB gives.
"""

from __future__ import annotations

import re

from router.sqltext import LINE_COMMENT, PLAIN_COMMENT, QUOTED_NAME, STRING_LITERALS

_NAMES = (rb"LAST_INSERT_ID|ROW_COUNT|FOUND_ROWS|CONNECTION_ID|CURRENT_USER|SESSION_USER|"
          rb"SYSTEM_USER|USER")
SESSION_FUNCTION = re.compile(rb"(?i)\b(?:" + _NAMES + rb")\s*\(\s*\)|\bCURRENT_USER\b")
# Strings, quoted names and plain comments, skipped (one pattern per string reading: with
# backslash escapes, and under NO_BACKSLASH_ESCAPES); executable comments are code.
_SKIPPED = tuple("|".join((strings, QUOTED_NAME, PLAIN_COMMENT, LINE_COMMENT)).encode()
                 for strings in STRING_LITERALS)
_SKIPPED_OR_CALL = tuple(re.compile(
    rb"(" + skipped + rb")|\b(" + _NAMES + rb")\s*\(\s*\)|\b(CURRENT_USER)\b", re.I | re.S)
    for skipped in _SKIPPED)
# Whitespace and plain comments before a statement's first word (`/* tag */ SELECT ...`).
_LEADING = rb"(?:\s+|" + f"{PLAIN_COMMENT}|{LINE_COMMENT}".encode() + rb")*"
_ITEM = (rb"(?:(?:" + _NAMES + rb")\s*\(\s*\)|@@(?:SESSION\.|LOCAL\.)?(?:IDENTITY|LAST_INSERT_ID|"
         rb"LAST_GTID)\b)"
         rb"(?:\s+(?:AS\s+)?[\w`'\"]+)?")
ONLY_SESSION_FUNCTIONS = re.compile(rb"(?is)" + _LEADING + rb"SELECT\s+" + _ITEM
                                    + rb"(?:\s*,\s*" + _ITEM + rb")*\s*;?\s*$")
# Statements whose session functions are rewritten: reads and writes. SHOW GRANTS FOR
# CURRENT_USER() and DEFINER = CURRENT_USER keep theirs.
_DATA_STATEMENT = re.compile(rb"(?is)" + _LEADING + rb"(?:\(\s*)*(SELECT|INSERT|UPDATE|DELETE|"
                             rb"REPLACE|DO|SET|CALL|WITH|VALUES)\b")


def rewrites(sql: bytes) -> bool:
    """True when ``sql`` calls a session function that DAL must answer inside it."""
    return (SESSION_FUNCTION.search(sql) is not None and _DATA_STATEMENT.match(sql) is not None
            and ONLY_SESSION_FUNCTIONS.match(sql) is None)


def substitute_session_functions(sql: bytes, values: dict[bytes, bytes | None],
                                 backslashes: bool = True) -> bytes:
    """``sql`` with each call outside strings, identifiers and plain comments replaced by
    ``values[NAME]`` (upper-case name, already a SQL literal); a None value leaves that
    function alone. ``backslashes``: a backslash escapes in strings (False under sql_mode
    NO_BACKSLASH_ESCAPES, where `'C:\'` ends at its second quote)."""

    def replace(match: re.Match[bytes]) -> bytes:
        name = match.group(2) or match.group(3)
        if name is None:  # a string, identifier or comment
            return match.group(0)
        value = values.get(name.upper())
        return match.group(0) if value is None else value

    return _SKIPPED_OR_CALL[0 if backslashes else 1].sub(replace, sql)


def connection_id_in(sql: bytes, connection_id: int, backslashes: bool = True) -> bytes:
    """A prepared statement's text with CONNECTION_ID() written as the session's id (constant
    for the session, unlike the values `substitute_session_functions` writes per execution);
    ``sql`` itself when it has none to write."""
    if not rewrites(sql):
        return sql
    return substitute_session_functions(sql, {b"CONNECTION_ID": str(connection_id).encode()},
                                        backslashes)


# A call of CONNECTION_ID() in code (not in a string, a quoted name or a plain comment), with
# spaces or comments inside and around its parentheses: `CONNECTION_ID(/**/)`.
_CONNECTION_ID_CALL = re.compile(
    "(" + "|".join((STRING_LITERALS[0], QUOTED_NAME, PLAIN_COMMENT, LINE_COMMENT))
    + r")|\bCONNECTION_ID(?:\s|/\*.*?\*/)*\((?:\s|/\*.*?\*/)*\)", re.I | re.S)


def calls_connection_id(text: str) -> bool:
    """True when ``text`` still calls CONNECTION_ID() (a spelling DAL did not rewrite)."""
    return any(match.group(1) is None for match in _CONNECTION_ID_CALL.finditer(text))
