"""The logical databases a user with a `databases:` list may name (users.<name>.databases).

Read from a statement's `security_text` as the access policy reads it (router/access.py), by
the planner for restricted users only; the catalog's view (`Catalog.restricted`) refuses the
tables sqlglot resolves elsewhere, and information_schema's view lists only these databases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from router import errors
from router.access import Denial, words_of

# A name before a dot (db.table, db.table.column); between them, whitespace as MariaDB reads
# it (a latin1 client's byte 0xA0 too: decoded as \udca0 here).
_QUALIFIER = re.compile(r"(?<![\w$])([\w$]+)[\s\udca0]*\.(?!\d)")  # at word starts: linear
# SHOW and DESCRIBE name databases on their own (SHOW TABLES FROM db, SHOW CREATE DATABASE
# IF NOT EXISTS db): every word of theirs is taken for a name.
_NAMING_VERBS = frozenset({"SHOW", "DESCRIBE", "DESC", "EXPLAIN"})


def foreign_database(code: str, forbidden: Mapping[str, str]) -> Denial | None:
    """The refusal of a statement (its `security_text` ``code``) that names a logical
    database of ``forbidden`` (upper-cased name -> name): one its user's `databases:` list
    leaves out. Conservative: a table alias spelled like such a database is refused too.
    (USE is the session's check, with MariaDB's message; the statement a text PREPARE or
    SET STATEMENT carries is planned, and so checked, on its own: `Router._carried_refusal`.)"""
    words = words_of(code)
    names = _QUALIFIER.findall(code)
    if words[:1] and words[0] in _NAMING_VERBS:
        names += words
    for name in names:
        if name in forbidden:
            return Denial(*errors.DB_ACCESS_DENIED, f"Access denied to database "
                          f"'{forbidden[name]}': this user's databases (users.<name>.databases in "
                          "DAL's config) do not include it")
    return None
