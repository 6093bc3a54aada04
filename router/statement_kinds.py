"""A parsed statement's plan, by its kind: USE, SET, SHOW, DESCRIBE, transactions, DDL, the
session's own functions, and reads and writes (routed to the default database, or planned per
shard for sharded, bound and broadcast tables)."""

from __future__ import annotations

import re
from dataclasses import replace

from sqlglot import exp

from config.model import TableKind
from router import errors, info_schema
from router.catalog import SHARDED_KINDS, Catalog
from router.mariadb_sql import mariadb_sql
from router.plan import LOCAL, Plan, refuse
from router.rules import tagged
from router.set_statement import RENAMED_VARIABLES, plan_set, untracked_set
from router.sharded import cte_reference, plan_sharded, shadowing_cte
from router.show import metadata_route, plan_show

DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
WRITES = (exp.Insert, exp.Update, exp.Delete)

_TRANSACTION_ONLY = re.compile(r"(?i)\s*(SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+(WORK\s+)?TO)\b")
# Functions whose value belongs to the client's session, not to whichever backend connection
# served it: answered by DAL from its own records.
_SESSION_FUNCTIONS = {"LAST_INSERT_ID": "last_insert_id", "CONNECTION_ID": "connection_id",
                      "ROW_COUNT": "row_count", "FOUND_ROWS": "found_rows",
                      "USER": "user", "SESSION_USER": "user", "SYSTEM_USER": "user",
                      "CURRENT_USER": "current_user"}
# (@@pseudo_thread_id stays the backend connection's thread id: which connection served the
# statement, to match with the backend's processlist.)
_SESSION_VARIABLES = {"identity": "last_insert_id", "last_insert_id": "last_insert_id",
                      "last_gtid": "last_gtid"}


def plan_statement(catalog: Catalog, tree: exp.Expression, text: str, schema: str | None,
                   admin: bool, key: bytes) -> Plan:
    """The plan of the statement parsed as ``tree`` from ``text``; ``key``: its fingerprint
    key, from which statements on sharded tables are planned (literals as slots)."""
    if isinstance(tree, exp.Use):
        return Plan(LOCAL, handler="use", args=(tree.this.name,), statement="use")
    if isinstance(tree, exp.Set):
        return plan_set(tree, text, catalog.default_route(schema, "set"))
    if isinstance(tree, exp.Show):
        return plan_show(catalog, tree, text, schema)
    if isinstance(tree, exp.Describe):
        table = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
        if table is not None:
            return metadata_route(catalog, tree, table, schema, "describe")
    if isinstance(tree, exp.Transaction):
        return Plan(LOCAL, handler="begin", args=(text.strip().rstrip(";"),),
                    statement="transaction")
    if isinstance(tree, exp.Commit | exp.Rollback) and not tree.args.get("savepoint"):
        return replace(catalog.default_route(schema, statement="transaction"), handler="end",
                       anywhere=True)
    if isinstance(tree, DDL):
        return _ddl(catalog, tree, schema, admin)
    if isinstance(tree, exp.Select) and (local := _session_functions(tree)) is not None:
        return local
    return _dml(catalog, tree, schema, key)


def plan_command(catalog: Catalog, words: list[str], text: str, schema: str | None,
                 pin: str | None) -> Plan:
    """A statement sqlglot parses only as an opaque command: routed as written to the default
    database (`Catalog.unparsed`), an untracked SET pinned or refused."""
    if words[:1] == ["SET"]:
        return untracked_set(words, catalog.default_route(schema, "set"))
    plan = catalog.unparsed(text, schema, None, pin)
    if words and words[0] == "PREPARE":
        plan = replace(plan, once=True)
    if _TRANSACTION_ONLY.match(text):
        plan = replace(plan, anywhere=True)
    return plan


def _dml(catalog: Catalog, tree: exp.Expression, schema: str | None, key: bytes) -> Plan:
    if (shadow := shadowing_cte(tree)) is not None:
        return refuse(*errors.NOT_SUPPORTED, f"the statement names '{shadow}' both as a table "
                      "and as a CTE (DAL would route the one and not the other); name the CTE "
                      "otherwise")
    statement = tree.key if isinstance(tree, (*WRITES, exp.Select)) else "other"
    write = isinstance(tree, WRITES)
    tables = []
    for table in tree.find_all(exp.Table):
        name = table.name
        if not name or cte_reference(table) or (not table.db and name.upper() == "DUAL"):
            continue
        resolved = catalog.resolve(table.db or None, name, schema)
        if isinstance(resolved, Plan):
            return resolved
        db, kind = resolved
        if kind in SHARDED_KINDS or (kind is TableKind.BROADCAST and write):
            names = tuple(t.name for t in tree.find_all(exp.Table) if t.name)  # rate limits
            return replace(plan_sharded(catalog.config, db, key, statement), tables=names)
        tables.append(name)
    plan = catalog.default_route(schema, statement=statement)
    logical = info_schema.rewrite(tree, catalog.config, plan.instance, schema,  # type: ignore[arg-type]
                                  catalog.visible)
    if logical is not None:
        tree = logical
    rewritten = _rewrite_session_functions(tree, schema)
    if rewritten is None and logical is not None:
        rewritten = mariadb_sql(tree)
    return replace(plan, sql=rewritten.encode("utf-8", "surrogateescape") if rewritten else None,
                   tables=tuple(tables), anywhere=not tables)


def _ddl(catalog: Catalog, tree: exp.Expression, schema: str | None, admin: bool) -> Plan:
    if not admin:
        return tagged(refuse(*errors.ACCESS_DENIED, "Access denied; you need (at least one "
                             "of) the DAL admin privilege(s) for this operation (DDL is for "
                             "admin users)"), "ddl")
    for table in tree.find_all(exp.Table):
        resolved = catalog.resolve(table.db or None, table.name, schema)
        if isinstance(resolved, Plan):
            return resolved
        if resolved[1] is not TableKind.UNSHARDED:
            return refuse(*errors.NOT_SUPPORTED, f"DDL on {resolved[1].value} table "
                          f"'{table.name}' must go through `dal schema apply`, which "
                          "reaches every shard")
    return catalog.default_route(schema, "ddl")


def _session_functions(tree: exp.Select) -> Plan | None:
    """``SELECT LAST_INSERT_ID(), CONNECTION_ID(), @@identity`` (nothing else: no FROM, no
    WHERE) as a local plan whose args are (column name, function) pairs."""
    if any(value for key, value in tree.args.items() if key != "expressions"):
        return None
    columns = []
    for item in tree.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        function = None
        if isinstance(node, exp.CurrentUser):
            function = "current_user"
        elif isinstance(node, exp.Anonymous) and not node.expressions:
            function = _SESSION_FUNCTIONS.get(node.name.upper())
        elif isinstance(node, exp.SessionParameter) and (
                node.text("kind") or "session").lower() in ("session", "local"):
            function = _SESSION_VARIABLES.get(node.name.lower())
        if function is None:
            return None
        name = item.alias if isinstance(item, exp.Alias) else node.sql(dialect="mysql")
        columns.append((name, function))
    return Plan(LOCAL, handler="session_functions", args=tuple(columns), statement="select")


def _rewrite_session_functions(tree: exp.Expression, schema: str | None) -> str | None:
    """Answer DATABASE()/SCHEMA() with the logical schema, and map MySQL 8 variable names
    that MariaDB 10.11 lacks. Returns the new SQL, or None when nothing changed."""
    changed = False

    def visit(node: exp.Expression) -> exp.Expression:
        nonlocal changed
        if isinstance(node, exp.CurrentSchema) or (
            isinstance(node, exp.Anonymous) and node.name.upper() in ("DATABASE", "SCHEMA")
            and not node.expressions
        ):
            changed = True
            value = exp.Literal.string(schema) if schema is not None else exp.Null()
            return _alias_if_top(node, value, "DATABASE()")
        if isinstance(node, exp.SessionParameter) and node.name.lower() in RENAMED_VARIABLES:
            changed = True
            kind = node.text("kind")
            shown = f"@@{kind + '.' if kind else ''}{node.name}"
            new = exp.SessionParameter(this=exp.var(RENAMED_VARIABLES[node.name.lower()]),
                                       kind=node.args.get("kind"))
            return _alias_if_top(node, new, shown)
        return node

    result = tree.transform(visit)
    return mariadb_sql(result) if changed else None


def _alias_if_top(node: exp.Expression, value: exp.Expression, name: str) -> exp.Expression:
    parent = node.parent
    if isinstance(parent, exp.Select) and node.arg_key == "expressions":
        return exp.alias_(value, name, quoted=True)
    return value
