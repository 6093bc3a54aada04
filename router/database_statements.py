"""CREATE DATABASE and DROP DATABASE (admin users, router/access.py): answered by DAL, which
keeps its own registry of the unsharded logical databases admin users create
(dal/created_databases.py). Read from the statement's words, before any parse; whether a name
may be created or dropped is decided when the statement runs (the registry changes)."""

from __future__ import annotations

import re

from router import errors
from router.plan import LOCAL, Plan, refuse

_STATEMENT = re.compile(
    r"(?is)\s*(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\s+(IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(?:`((?:[^`]|``)+)`|([\w$]+))(.*?)\s*;?\s*$")


def database_statement(words: list[str], text: str) -> Plan | None:
    """The local plan of CREATE/DROP DATABASE|SCHEMA: args (name, IF [NOT] EXISTS, the
    options after the name); None for another statement. ``words``: its
    `router.access.words_of`."""
    if len(words) < 2 or words[0] not in ("CREATE", "DROP") or words[1] not in ("DATABASE",
                                                                                 "SCHEMA"):
        return None
    match = _STATEMENT.match(text)
    if match is None:
        return refuse(*errors.NOT_SUPPORTED, f"DAL reads {words[0]} DATABASE <name> "
                      "[options] only; name one database")
    verb, exists, quoted, bare, options = match.groups()
    name = quoted.replace("``", "`") if quoted is not None else bare
    if verb.upper() == "DROP" and options.strip():
        return refuse(*errors.NOT_SUPPORTED, "DROP DATABASE takes one name")
    handler = "create_database" if verb.upper() == "CREATE" else "drop_database"
    return Plan(LOCAL, handler=handler, args=(name, exists is not None, options.strip()),
                statement="ddl", once=True)
