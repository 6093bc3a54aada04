"""The logical databases a user with a `databases:` list may name (users.<name>.databases).

Read from a statement's `security_text` as the access policy reads it (router/access.py), by
the planner for restricted users only; the catalog's view (`Catalog.restricted`) refuses the
tables sqlglot resolves elsewhere, and information_schema's view lists only these databases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from router import errors
from router.access import FOR_CLAUSE, Denial, prepare_body, words_of
from router.sqltext import security_text

# A name before a dot (db.table, db.table.column); between them, whitespace as MariaDB reads
# it (a latin1 client's byte 0xA0 too: decoded as \udca0 here).
_QUALIFIER = re.compile(r"(?<![\w$])([\w$]+)[\s\udca0]*\.(?!\d)")  # at word starts: linear
# SHOW and DESCRIBE name databases on their own (SHOW TABLES FROM db, SHOW CREATE DATABASE
# IF NOT EXISTS db): every word of theirs is taken for a name.
_NAMING_VERBS = frozenset({"SHOW", "DESCRIBE", "DESC", "EXPLAIN"})


def foreign_database(code: str, sql: str, modes: int,
                     forbidden: Mapping[str, str]) -> Denial | None:
    """The refusal of a statement (its `security_text` ``code``; ``sql`` as sent) that names
    a logical database of ``forbidden`` (upper-cased name -> name): one its user's
    `databases:` list leaves out. Conservative: a table alias spelled like such a database
    is refused too. A text PREPARE's statement is read as if it were sent. (USE is the
    session's check, with MariaDB's message.)"""
    words = words_of(code)
    if words[:2] == ["SET", "STATEMENT"] and len(parts := FOR_CLAUSE.split(code, maxsplit=1)) == 2:
        # The statement after FOR (the policy refuses values in parentheses, so this FOR is
        # the one, and a PREPARE there, whose body this code blanks).
        denial = foreign_database(parts[1], parts[1], modes, forbidden)
        if denial is not None:
            return denial
    if words[:1] == ["PREPARE"]:
        body = prepare_body(sql, modes)
        if body is not None:
            return foreign_database(security_text(body, modes), body, modes, forbidden)
    names = _QUALIFIER.findall(code)
    if words[:1] and words[0] in _NAMING_VERBS:
        names += words
    for name in names:
        if name in forbidden:
            return Denial(*errors.DB_ACCESS_DENIED, f"Access denied to database "
                          f"'{forbidden[name]}': this user's databases (users.<name>.databases in "
                          "DAL's config) do not include it")
    return None
