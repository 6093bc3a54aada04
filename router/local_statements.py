"""KILL, SHOW PROCESSLIST, SHOW GRANTS and SHOW [SESSION] VARIABLES: answered by DAL for its
own sessions and users (a backend would answer for its threads, DAL's backend account and the
pooled connection's session). Read from the statement's words, before any parse."""

from __future__ import annotations

import re

from router import errors
from router.plan import LOCAL, Plan, refuse

_KILL = re.compile(r"(?i)^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(CONNECTION\s+|QUERY\s+(?:ID\s+)?)?"
                   r"(\d+)\s*;?\s*$")
_GRANTS_FOR = re.compile(r"""(?is)\bFOR\s+(?:`([^`]*)`|'([^']*)'|"([^"]*)"|([\w$]+))""")


def local_statement(words: list[str], text: str) -> Plan | None:
    """The local plan of a KILL, SHOW PROCESSLIST, SHOW GRANTS or SHOW [SESSION|LOCAL]
    VARIABLES; None for another statement.
    ``words``: the statement's `router.access.words_of`."""
    if not words:
        return None
    if words[0] == "KILL":
        match = _KILL.match(text)
        if match is None:
            return refuse(*errors.NOT_SUPPORTED, "DAL runs KILL [CONNECTION|QUERY] <id> for "
                          "its own connection ids only (SHOW PROCESSLIST lists them)")
        query = bool(match.group(1)) and match.group(1).upper().startswith("QUERY")
        return Plan(LOCAL, handler="kill", args=(int(match.group(2)), query), statement="kill",
                    once=True)
    rest = [w for w in words[1:] if w != "FULL"]
    if words[0] != "SHOW" or not rest:
        return None
    if rest[0] == "PROCESSLIST" and len(rest) == 1:
        return Plan(LOCAL, handler="processlist", args=("FULL" in words,), statement="show")
    if rest[0] == "VARIABLES" or rest[:2] in (["SESSION", "VARIABLES"], ["LOCAL", "VARIABLES"]):
        return Plan(LOCAL, handler="session_variables", args=(text,), statement="show",
                    once=True)
    if rest[0] == "GRANTS":
        target = None
        if len(rest) > 1 and rest[1] == "FOR" and rest[2:3] != ["CURRENT_USER"]:
            found = _GRANTS_FOR.search(text)
            target = next((g for g in found.groups() if g is not None), None) if found else None
        return Plan(LOCAL, handler="grants", args=(target,), statement="show", once=True)
    return None
