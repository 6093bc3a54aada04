"""Statement text as MariaDB's lexer reads it, for the access check (router/access.py).

Two SQL modes change where a string or an identifier ends: NO_BACKSLASH_ESCAPES (a backslash
is an ordinary character inside a string) and ANSI_QUOTES (``"x"`` is an identifier, not a
string). Executable comments (``/*! ... */``, ``/*!50000 ... */``, ``/*M!100100 ... */``) are
code to MariaDB when their version is at or below the server's.

`security_text` gives the words of a statement with every string literal blanked, plain
comments dropped and the body of *every* executable comment kept, whatever its version: an
access decision must never depend on a version number DAL might read differently from the
backend, so a forbidden word inside any executable comment refuses the statement.
"""

from __future__ import annotations

NO_BACKSLASH_ESCAPES = 1
ANSI_QUOTES = 2

# Pieces of regular expressions (str; ``.encode()`` them for bytes) for scanners that skip what
# is not code: a string literal with backslash escapes, and one under NO_BACKSLASH_ESCAPES
# (either quote: under ANSI_QUOTES a "..." is a name, skipped alike); a quoted name; a `--` or
# `#` comment (MariaDB's `--` needs a space or control character after it); a plain /* */
# comment (an executable one is code).
STRING_LITERALS = (r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'|" r'"[^"\\]*(?:(?:\\.|"")[^"\\]*)*"',
                   r"'[^']*(?:''[^']*)*'|" r'"[^"]*(?:""[^"]*)*"')
QUOTED_NAME = r"`(?:[^`]|``)*`"
LINE_COMMENT = r"--[\x00-\x20][^\n]*|\#[^\n]*"
PLAIN_COMMENT = r"/\*(?![!M]).*?\*/"

# sql_mode names that switch ANSI_QUOTES on (MariaDB's combination modes include it).
_ANSI_QUOTE_MODES = frozenset({"ANSI_QUOTES", "ANSI", "DB2", "MAXDB", "MSSQL", "ORACLE",
                               "POSTGRESQL"})


def modes_of(sql_mode: str) -> int:
    """The lexer-relevant bits of an ``sql_mode`` value (a comma-separated list of names)."""
    names = {part.strip().upper() for part in sql_mode.strip("'\"").split(",")}
    bits = NO_BACKSLASH_ESCAPES if "NO_BACKSLASH_ESCAPES" in names else 0
    return bits | (ANSI_QUOTES if names & _ANSI_QUOTE_MODES else 0)


def _comment_dash(c: str) -> bool:
    """After ``--``: MariaDB starts a comment at any space or control character."""
    return c <= " " or c == "\x7f"


def string_end(text: str, start: int, quote: str, modes: int) -> int:
    """The index just past the string literal opened at ``start``; len(text) if unterminated."""
    i = start + 1
    n = len(text)
    escapes = not modes & NO_BACKSLASH_ESCAPES
    while i < n:
        c = text[i]
        if c == "\\" and escapes:
            i += 2
        elif c == quote:
            if i + 1 < n and text[i + 1] == quote:  # a doubled quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _quoted_end(text: str, i: int, c: str, modes: int) -> int:
    """Past the string or quoted name that ``c`` (``text[i]``) opens; 0 when it opens none."""
    if c == "'" or (c == '"' and not modes & ANSI_QUOTES):
        return string_end(text, i, c, modes)
    if c == "`" or c == '"':
        return string_end(text, i, c, NO_BACKSLASH_ESCAPES)  # quoted names: no escapes
    return 0


def statement_after_for(text: str, modes: int) -> tuple[int, int] | None:
    """For ``SET STATEMENT v = x, ... FOR <statement>``: where the FOR that ends the values
    starts and where the statement after it starts, read as MariaDB reads it (a FOR inside a
    string, a quoted name, a comment or parentheses is not it); None without one."""
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        quoted = _quoted_end(text, i, c, modes)
        if quoted:
            i = quoted
        elif text.startswith("/*", i) and _executable_head(text, i) < 0:
            end = _comment_end(text, i + 2, False)
            i = n if end < 0 else end
        elif c == "#" or (text.startswith("--", i) and (i + 2 >= n or _comment_dash(text[i + 2]))):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c in "()":
            depth += 1 if c == "(" else -1
            i += 1
        elif (depth == 0 and text[i:i + 3].upper() == "FOR" and (i == 0 or not _word(text[i - 1]))
              and (i + 3 >= n or not _word(text[i + 3]))):
            return i, i + 3
        else:
            i += 1
    return None


def _word(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _executable_head(text: str, i: int) -> int:
    """For ``/*!`` or ``/*M!`` at ``i``: the index where the executable body starts (after an
    optional 5- or 6-digit version); -1 when this is a plain comment."""
    if text.startswith("/*!", i):
        j = i + 3
    elif text.startswith("/*M!", i):
        j = i + 4
    else:
        return -1
    digits = 0
    while digits < 6 and j + digits < len(text) and text[j + digits].isdigit():
        digits += 1
    return j + digits if digits >= 5 else j


def security_text(sql: str, modes: int) -> str:
    """The statement's code, upper-cased: strings as ``''``, quoted identifiers unquoted,
    plain comments as one space, every executable comment's body kept (its ``*/`` dropped)."""
    out: list[str] = []
    i = 0
    n = len(sql)
    in_executable = 0  # open executable comments whose */ is still to come
    ansi = modes & ANSI_QUOTES
    while i < n:
        c = sql[i]
        if c == "'" or (c == '"' and not ansi):
            i = string_end(sql, i, c, modes)
            out.append(" '' ")
        elif c == "`" or (c == '"' and ansi):
            end = string_end(sql, i, c, NO_BACKSLASH_ESCAPES)  # no escapes in identifiers
            out.append(" " + sql[i + 1:end - 1].replace(c * 2, c) + " ")
            i = end
        elif c == "/" and sql.startswith("/*", i):
            body = _executable_head(sql, i)
            if body >= 0:
                in_executable += 1
                out.append(" ")
                i = body
            else:
                end = sql.find("*/", i + 2)
                i = n if end < 0 else end + 2
                out.append(" ")
        elif c == "*" and in_executable and sql.startswith("*/", i):
            in_executable -= 1
            out.append(" ")
            i += 2
        elif c == "#" or (c == "-" and sql.startswith("--", i)
                          and (i + 2 >= n or _comment_dash(sql[i + 2]))):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            out.append(" ")
        elif c == "-" and sql.startswith("--", i) and sql[i + 2] >= "\x80":
            # A comment or not by the client character set's idea of a space (latin1's 0xA0
            # is one, utf8mb4's é is not): marked, and refused (router/access.py).
            out.append(AMBIGUOUS_DASH)
            i += 2
        else:
            j = i + 1
            while j < n and sql[j] not in "'\"`/*#-":
                j += 1
            out.append(sql[i:j])
            i = j
    # A byte that is not UTF-8 (decoded as \udc80-\udcff) may be a space in the client's
    # character set (latin1's 0xA0, cp866's 0xFF): read as one, so that `db<it>.t` is a
    # qualified name to the checks, as to MariaDB.
    return "".join(out).upper().translate(_UNDECODED_AS_SPACE)


_UNDECODED_AS_SPACE = {0xDC80 + b: " " for b in range(0x80)}
# Where ``--`` is followed by a character that only the client character set says is a space
# or not (outside ASCII): DAL cannot tell a comment from code there.
AMBIGUOUS_DASH = " \x00-- "


# MariaDB's sql_lex.cc: a versioned comment in the MySQL 5.7+ range runs only in its M! form
# (MySQL syntax MariaDB may not understand).
_MYSQL_RANGE = range(50700, 100000)


def version_id(version: str) -> int:
    """MYSQL_VERSION_ID of a server version string: ``10.11.19-MariaDB-log`` -> 101119."""
    numbers = version.removeprefix("5.5.5-").split("-", 1)[0].split(".")
    try:
        major, minor, patch = (int(part) for part in [*numbers, "0", "0"][:3])
    except ValueError:
        return 0
    return major * 10000 + minor * 100 + patch


def _comment_end(text: str, start: int, nested: bool) -> int:
    """Where a skipped comment whose body starts at ``start`` ends (past its ``*/``), as
    MariaDB's consume_comment reads it: quotes mean nothing, and a comment skipped for its
    version may hold one level of ``/* */`` inside; -1 when unterminated."""
    i = start
    n = len(text)
    while i < n:
        if nested and text.startswith("/*", i):
            inner = _comment_end(text, i + 2, False)
            if inner < 0:
                return -1
            i = inner
        elif text.startswith("*/", i):
            return i + 2
        else:
            i += 1
    return -1


def expand_executable(text: str, modes: int, server_version: int,
                      mariadb: bool = True) -> str | None:
    """The statement as a server of ``server_version`` (a MYSQL_VERSION_ID) reads it, with its
    executable comments resolved; None when it holds none, or one is unterminated.

    As MariaDB's lexer does: ``/*!`` and ``/*M!`` with an optional version of 5 or 6 digits;
    the body is code when the version is at or below the server's, except that a MySQL-range
    version (50700..99999) runs only in the ``M!`` form; otherwise the comment is skipped
    (with one level of ``/* */`` inside). A run body keeps strings, quoted identifiers and
    plain comments as they are. For a MySQL server (``mariadb`` false) ``/*M!`` is a plain
    comment and no range is excluded. Markers become one space each."""
    if "/*!" not in text and (not mariadb or "/*M!" not in text):
        return None
    out: list[str] = []
    i = last = 0
    n = len(text)
    open_body = False  # inside a run executable comment whose */ is still to come
    while i < n:
        c = text[i]
        quoted = _quoted_end(text, i, c, modes)
        if quoted:
            i = quoted
        elif c == "/" and text.startswith("/*", i):
            body = _executable_head(text, i) if mariadb or text[i + 2] == "!" else -1
            if body < 0:  # a plain comment, kept as it is
                end = _comment_end(text, i + 2, False)
                if end < 0:
                    return None
                i = end
                continue
            maria = text[i + 2] == "M"
            digits = body - (i + (4 if maria else 3))
            version = int(text[body - digits:body]) if digits else 0
            out.append(text[last:i])
            if digits == 0 or (version <= server_version and (
                    maria or not mariadb or version not in _MYSQL_RANGE)):
                out.append(" ")
                open_body = True
                i = last = body
            else:
                end = _comment_end(text, body, True)
                if end < 0:
                    return None
                out.append(" ")
                i = last = end
        elif c == "*" and open_body and text.startswith("*/", i):
            out.append(text[last:i])
            out.append(" ")
            open_body = False
            i = last = i + 2
        elif c == "#" or (c == "-" and text.startswith("--", i)
                          and (i + 2 >= n or _comment_dash(text[i + 2]))):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        else:
            i += 1
    if open_body:
        return None
    out.append(text[last:])
    return "".join(out)
