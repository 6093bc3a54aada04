"""SHOW and DESCRIBE: answered by DAL for the logical databases (databases, tables, table
status), read from the first shard for a sharded table's metadata, else routed to the default
database; SHOW WARNINGS/ERRORS and their counts go to the previous statement's connection."""

from __future__ import annotations

import re
from dataclasses import replace

from sqlglot import exp

from router import errors
from router.catalog import SHARDED_KINDS, SYSTEM_SCHEMAS, Catalog
from router.mariadb_sql import mariadb_sql
from router.plan import LOCAL, ROUTE, Plan, refuse
from router.sqltext import ANSI_QUOTES, NO_BACKSLASH_ESCAPES, security_text

_COUNT_DIAGNOSTICS = re.compile(r"(?i)\s*SHOW\s+COUNT\s*\(\s*\*\s*\)\s+(WARNINGS|ERRORS)\s*;?\s*$")
_ROUTINE_STATUS = re.compile(r"(?is)\s*SHOW\s+(PROCEDURE|FUNCTION)\s+STATUS(\s.*?)?\s*;?\s*$")
_TABLE_STATUS = re.compile(r"(?is)\s*SHOW\s+TABLE\s+STATUS(?:\s+(?:FROM|IN)\s+"
                           r"(?:`(?:[^`]|``)+`|[\w$]+))?(\s.*?)?\s*;?\s*$")


# In a SHOW's WHERE, which runs on a pooled connection: a call (but IN, NOT, ... before a
# parenthesis), a subquery, a variable or an assignment would run there for the session.
_TAIL_CODE = re.compile(r"\bSELECT\b|@|:=|\bVALUE\s+FOR\b|"
                        r"\b(?!(?:IN|NOT|AND|OR|XOR|WHERE|LIKE)\b)[A-Z_$][\w$]*\s*\(")
_WHERE = re.compile(r"\bWHERE\b")
_READINGS = (0, ANSI_QUOTES, NO_BACKSLASH_ESCAPES, ANSI_QUOTES | NO_BACKSLASH_ESCAPES)


def where_refusal(text: str) -> Plan | None:
    """The refusal of a SHOW whose WHERE would do more than compare the rows' columns with
    literals, read every way the session's sql_mode may read it (its code: strings and
    comments out, so a WHERE or a quote inside a comment is none); None otherwise. Parsed or
    not, a SHOW's filter runs on a shared backend connection."""
    for modes in _READINGS:
        code = security_text(text, modes)
        where = _WHERE.search(code)
        if where is not None and _TAIL_CODE.search(code, where.end()):
            return refuse(*errors.NOT_SUPPORTED, "DAL runs a SHOW's WHERE on a shared backend "
                          "connection: it may compare the columns with literals (=, <>, "
                          "LIKE, IN, AND, OR, NOT), without functions, subqueries or "
                          "variables")
    return None


def diagnostics_count(catalog: Catalog, text: str, schema: str | None) -> Plan | None:
    """SHOW COUNT(*) WARNINGS|ERRORS, read as @@session.warning_count / error_count on the
    connection that ran the previous statement; None for any other statement."""
    count = _COUNT_DIAGNOSTICS.match(text)
    if count is None:
        return None
    return replace(catalog.default_route(schema, "show"), diagnostics=True, anywhere=True,
                   args=(f"@@session.{count.group(1).lower()[:-1]}_count",))


def plan_show(catalog: Catalog, tree: exp.Show, text: str, schema: str | None) -> Plan:
    """The plan of a parsed SHOW statement."""
    what = (tree.name or "").upper()
    like = tree.args.get("like")
    like_value = like.name if isinstance(like, exp.Literal) else None
    if what in ("WARNINGS", "ERRORS"):
        return replace(catalog.default_route(schema, "show"), diagnostics=True, args=("list",),
                       anywhere=True)
    if what in ("DATABASES", "SCHEMAS"):
        return Plan(LOCAL, handler="show_databases", args=(like_value,), statement="show")
    if what == "TABLES":
        db = _shown_database(catalog, tree, schema)
        if isinstance(db, Plan):
            return db
        if tree.args.get("where") is not None:
            return refuse(*errors.NOT_SUPPORTED, "SHOW TABLES ... WHERE is not supported "
                          "by DAL; use LIKE")
        return Plan(LOCAL, handler="show_tables",
                    args=(db, bool(tree.args.get("full")), like_value), statement="show")
    if what == "TABLE STATUS":
        return _table_status(catalog, tree, text, schema)
    if what in ("PROCEDURE STATUS", "FUNCTION STATUS"):
        # The backend lists every database DAL's account sees (shards, dal_meta, sys):
        # DAL keeps the logical databases' rows (dal/table_status.py).
        match = _ROUTINE_STATUS.match(text)
        if match is not None:
            tail = match.group(2) or ""
            return Plan(LOCAL, handler="routine_status",
                        args=(match.group(1).upper(), tail), statement="show", once=True)
    target = tree.args.get("target")
    if what in ("CREATE TABLE", "COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS") and target:
        table = exp.Table(this=exp.to_identifier(target.name),
                          db=exp.to_identifier(tree.text("db")) if tree.text("db") else None)
        return metadata_route(catalog, tree, table, schema, "show")
    return catalog.default_route(schema, "show")


def metadata_route(catalog: Catalog, tree: exp.Expression, table: exp.Table,
                   schema: str | None, statement: str) -> Plan:
    """SHOW ... / DESCRIBE of ``table``: a sharded or bound table's is read from the first
    shard of the authoritative dimension (the statement rewritten to name it); another
    table's from the default database."""
    resolved = catalog.resolve(table.db or None, table.name, schema)
    if isinstance(resolved, Plan):
        return resolved
    db, kind = resolved
    if kind not in SHARDED_KINDS:
        return catalog.default_route(schema, statement)
    instance, shard_db = catalog.shard_zero(db)
    rewritten = tree.copy()
    if isinstance(rewritten, exp.Show):
        rewritten.set("db", exp.to_identifier(shard_db))
    else:
        for node in rewritten.find_all(exp.Table):
            node.set("db", exp.to_identifier(shard_db))
    return Plan(ROUTE, instance=instance, schema=None,
                sql=mariadb_sql(rewritten).encode(), statement=statement)


def _shown_database(catalog: Catalog, tree: exp.Show, schema: str | None) -> str | Plan:
    """The logical database a SHOW [FROM db] lists; else its plan (a system schema goes to
    the default backend) or refusal."""
    db = tree.text("db") or schema
    if db is None:
        return refuse(*errors.NO_DATABASE, "No database selected")
    if db not in catalog.config.databases:
        if db.lower() in SYSTEM_SCHEMAS:
            return catalog.default_route(schema, "show")
        return refuse(*errors.BAD_DB, f"Unknown database '{db}'")
    return catalog.denied(db) or db


def _table_status(catalog: Catalog, tree: exp.Show, text: str, schema: str | None) -> Plan:
    """SHOW TABLE STATUS [FROM db] [LIKE ... | WHERE ...] of a logical database: answered
    by DAL (dal/table_status.py) from its default database and, for sharded and bound
    tables, from the first shard of the authoritative dimension."""
    db = _shown_database(catalog, tree, schema)
    if isinstance(db, Plan):
        return db
    match = _TABLE_STATUS.match(text)
    tail = (match.group(1) or "") if match else ""
    return Plan(LOCAL, handler="table_status", args=(db, tail), statement="show", once=True)
