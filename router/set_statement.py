"""SET: the session variables DAL records and replays on whichever backend connection serves
the session, or the reason the SET pins the session to one connection, or its refusal."""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from router import errors
from router.access import (
    BAD_CHARSET,
    READING_VARIABLES,
    unsafe_charset_refusal,
    variable_names,
    words_of,
)
from router.mariadb_sql import mariadb_sql
from router.plan import SET, Plan, refuse
from router.sqltext import ANSI_QUOTES, security_text

# MySQL 8 names of variables that MariaDB 10.11 knows by their older names.
RENAMED_VARIABLES = {"transaction_isolation": "tx_isolation",
                     "transaction_read_only": "tx_read_only"}
_DEFAULT_CHARSET = "utf8mb4"
_UNTRACKED_SQL_MODE = ("DAL must know the session's sql_mode to read its statements: set it to "
                       "names (SET sql_mode = '...') or to an expression without user "
                       "variables or subqueries")

# Session variables MariaDB cannot set back to DEFAULT, so that a pooled connection cannot be
# handed on without them: LAST_INSERT_ID()'s are DAL's own (refused), the others pin.
_OWN_IDS = frozenset({"last_insert_id", "identity"})
_NO_DEFAULT = frozenset({"rand_seed1", "rand_seed2"})

# One assignment: (variable, its replayed `@@session.v=literal` or "" when evaluated, and the
# expression the session evaluates once on a backend, if any).
_Assignment = tuple[str, str, str | None]


def plan_set(tree: exp.Set, text: str, route: Plan) -> Plan:
    """Session variables to record and replay. ``SET v = <expression>`` (Connector/J's
    ``sql_mode = CONCAT(@@sql_mode, ...)``) is evaluated once on a backend with the
    session's state (the plan's args: (name, expression) pairs) and replayed as a
    literal, so it does not pin; an expression over user variables or a subquery pins.
    ``route``: to the session's default database, for a SET that pins."""
    assignments: list[tuple[str, str]] = []
    evaluate: list[tuple[str, str]] = []
    for item in tree.expressions:  # whatever an earlier item would do (pin, refuse)
        var = item.this.this if isinstance(item.this, exp.EQ) else None
        if isinstance(var, exp.SessionParameter | exp.Column) and var.name.lower() in _OWN_IDS:
            return refuse(*errors.NOT_SUPPORTED, "DAL keeps LAST_INSERT_ID() itself, from the "
                          "ids of the session's own inserts: SET "
                          f"{var.name.lower()} would set a backend connection's instead; use "
                          "the id your INSERT returned")
    for item in tree.expressions:
        planned = _assignment(item, text, route)
        if isinstance(planned, Plan):
            return planned
        name, value, expression = planned
        assignments.append((name, value))
        if expression is not None:
            evaluate.append((name, expression))
    return Plan(SET, assignments=tuple(assignments), args=tuple(evaluate), statement="set")


def untracked_set(words: list[str], route: Plan) -> Plan:
    """A SET DAL cannot parse into replayable state: it runs on a connection pinned to the
    session (never back in the pool with state DAL does not know), unless it changes how the
    backend reads statements (sql_mode, the client character set), which DAL must know to
    check them: that is refused."""
    if not READING_VARIABLES.isdisjoint(variable_names(words)):
        return refuse(*errors.NOT_SUPPORTED, "DAL cannot read this SET of sql_mode or the "
                      "character set (inside an executable comment or in a form it does not "
                      "parse); write it as SET sql_mode = '...' or SET NAMES <charset>")
    return replace(route, pin="set_other")


def _assignment(item: exp.Expression, text: str, route: Plan) -> _Assignment | Plan:
    """One item of a SET, or the plan of the whole SET when the item pins or is refused."""
    kind = (item.text("kind") or "").upper()
    if kind == "NAMES" or kind == "CHARACTER SET":
        return _names(item)
    target = item.this
    if kind in ("SESSION", "LOCAL"):  # SET SESSION v = x: the session's, as SET v = x
        kind = ""
    if not isinstance(target, exp.EQ) or kind:
        return _pinned(text, route, "set_other")
    var, value = target.this, target.expression
    literal = isinstance(value, exp.Literal | exp.Null | exp.Boolean | exp.Var)
    if isinstance(var, exp.Parameter) or not (literal or _evaluable(value)):
        return _pinned(text, route, "set_expression")
    name = _variable(var, route)
    if isinstance(name, Plan):
        return name
    name = RENAMED_VARIABLES.get(name.lower(), name.lower())
    if name in _NO_DEFAULT:  # no `=DEFAULT` puts it back: kept on the session's connection
        return _pinned(text, route, "set_other")
    if name == "sql_mode" and literal and not (
            isinstance(value, exp.Var) or (isinstance(value, exp.Literal) and value.is_string)):
        return refuse(*errors.NOT_SUPPORTED, "DAL reads sql_mode from its names (SET "
                      "sql_mode = 'STRICT_TRANS_TABLES,...'), not from a number or NULL")
    if name == "character_set_client" and not (
            isinstance(value, exp.Var) or (isinstance(value, exp.Literal) and value.is_string)):
        return refuse(*BAD_CHARSET, "DAL takes SET character_set_client = <character set "
                      "name> only, not an expression or a number (it must know how to read the "
                      "next statement)")
    if name == "character_set_client" and (unsafe := unsafe_charset_refusal(value.name)):
        return refuse(*BAD_CHARSET, unsafe)
    if literal:  # without the comments sqlglot keeps: `'ANSI_QUOTES' /*x*/` is ANSI_QUOTES
        return name, f"@@session.{name}={value.sql(dialect='mysql', comments=False)}", None
    # evaluated once by the session on a backend, then replayed as a literal
    return name, "", mariadb_sql(value)


def _names(item: exp.Expression) -> _Assignment | Plan:
    """SET NAMES / CHARACTER SET <charset> [COLLATE <collation>]."""
    charset = item.this.name if item.this is not None else _DEFAULT_CHARSET
    if charset.upper() == "DEFAULT":
        charset = _DEFAULT_CHARSET
    if unsafe := unsafe_charset_refusal(charset):
        return refuse(*BAD_CHARSET, unsafe)
    collate = item.args.get("collate")
    return "names", f"NAMES {charset}" + (f" COLLATE {collate.name}" if collate else ""), None


def _variable(var: exp.Expression, route: Plan) -> str | Plan:
    """The session variable a SET item assigns; a refusal for a global one, a pinned route for
    anything else."""
    if isinstance(var, exp.SessionParameter):
        if (var.text("kind") or "session").lower() not in ("session", "local"):
            # router/access.py refuses global settings before this; never forwarded
            return refuse(*errors.ACCESS_DENIED, "Access denied; you need (at least "
                          "one of) the SUPER privilege(s) for this operation (DAL: "
                          "global settings belong to the backend's DBA)")
        return var.name
    if isinstance(var, exp.Column) and not var.table:
        return var.name
    return replace(route, pin="set_other")


def _pinned(text: str, route: Plan, pin: str) -> Plan:
    """A SET DAL does not replay: pinned to the session's connection and sent as written,
    unless any of its items sets sql_mode or the character set, which DAL must know to read
    the next statement (refused: `SET @a = 1, character_set_client = 'gbk'` would reach the
    backend whole)."""
    words = variable_names([word for modes in (0, ANSI_QUOTES)  # "x": a name?
                            for word in words_of(security_text(text, modes))])
    if "SQL_MODE" in words:
        return refuse(*errors.NOT_SUPPORTED, _UNTRACKED_SQL_MODE)
    if not words.isdisjoint(READING_VARIABLES):
        return refuse(*BAD_CHARSET, "DAL takes SET NAMES, character_set_client, "
                      "character_set_connection or collation_connection only in a SET of its "
                      "own, not beside a user variable or an expression it cannot replay (it "
                      "must know how the backend reads the next statement)")
    return replace(route, pin=pin)


def _evaluable(value: exp.Expression) -> bool:
    """A SET value DAL may evaluate once elsewhere: no user variable (its value lives on the
    session's connections), no subquery, no assignment."""
    return not any(isinstance(node, exp.Parameter | exp.Select | exp.Subquery | exp.PropertyEQ)
                   for node in value.walk())
