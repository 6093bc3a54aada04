"""information_schema as the logical view: logical databases, never shard databases.

A statement that reads one of the tables below gets each reference replaced by a derived
table over the real one: only the rows of the logical databases' default databases and of one
shard database per logical database (for its sharded, bound and broadcast tables) are kept,
and every schema column names the logical database. ORMs' reflection and `mariadb-dump` read
the tables they know, under the names they know.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp, parse_one

from config.model import Config, TableKind

INFO = "information_schema"


@dataclass(frozen=True, slots=True)
class _Table:
    columns: tuple[str, ...]
    schemas: tuple[str, ...]  # columns that name a database
    name: str | None  # the column that names the table (None: default databases only)


def _t(columns: str, schemas: str, name: str | None) -> _Table:
    return _Table(tuple(columns.split()), tuple(schemas.split()), name)


# MariaDB 10.11's columns, in order (SELECT * keeps its shape).
TABLES = {
    "SCHEMATA": _t("CATALOG_NAME SCHEMA_NAME DEFAULT_CHARACTER_SET_NAME DEFAULT_COLLATION_NAME "
                   "SQL_PATH SCHEMA_COMMENT", "SCHEMA_NAME", None),
    "TABLES": _t("TABLE_CATALOG TABLE_SCHEMA TABLE_NAME TABLE_TYPE ENGINE VERSION ROW_FORMAT "
                 "TABLE_ROWS AVG_ROW_LENGTH DATA_LENGTH MAX_DATA_LENGTH INDEX_LENGTH DATA_FREE "
                 "AUTO_INCREMENT CREATE_TIME UPDATE_TIME CHECK_TIME TABLE_COLLATION CHECKSUM "
                 "CREATE_OPTIONS TABLE_COMMENT MAX_INDEX_LENGTH TEMPORARY", "TABLE_SCHEMA",
                 "TABLE_NAME"),
    "COLUMNS": _t("TABLE_CATALOG TABLE_SCHEMA TABLE_NAME COLUMN_NAME ORDINAL_POSITION "
                  "COLUMN_DEFAULT IS_NULLABLE DATA_TYPE CHARACTER_MAXIMUM_LENGTH "
                  "CHARACTER_OCTET_LENGTH NUMERIC_PRECISION NUMERIC_SCALE DATETIME_PRECISION "
                  "CHARACTER_SET_NAME COLLATION_NAME COLUMN_TYPE COLUMN_KEY EXTRA PRIVILEGES "
                  "COLUMN_COMMENT IS_GENERATED GENERATION_EXPRESSION", "TABLE_SCHEMA",
                  "TABLE_NAME"),
    "STATISTICS": _t("TABLE_CATALOG TABLE_SCHEMA TABLE_NAME NON_UNIQUE INDEX_SCHEMA INDEX_NAME "
                     "SEQ_IN_INDEX COLUMN_NAME COLLATION CARDINALITY SUB_PART PACKED NULLABLE "
                     "INDEX_TYPE COMMENT INDEX_COMMENT IGNORED", "TABLE_SCHEMA INDEX_SCHEMA",
                     "TABLE_NAME"),
    "KEY_COLUMN_USAGE": _t("CONSTRAINT_CATALOG CONSTRAINT_SCHEMA CONSTRAINT_NAME TABLE_CATALOG "
                           "TABLE_SCHEMA TABLE_NAME COLUMN_NAME ORDINAL_POSITION "
                           "POSITION_IN_UNIQUE_CONSTRAINT REFERENCED_TABLE_SCHEMA "
                           "REFERENCED_TABLE_NAME REFERENCED_COLUMN_NAME",
                           "CONSTRAINT_SCHEMA TABLE_SCHEMA REFERENCED_TABLE_SCHEMA",
                           "TABLE_NAME"),
    "TABLE_CONSTRAINTS": _t("CONSTRAINT_CATALOG CONSTRAINT_SCHEMA CONSTRAINT_NAME TABLE_SCHEMA "
                            "TABLE_NAME CONSTRAINT_TYPE", "CONSTRAINT_SCHEMA TABLE_SCHEMA",
                            "TABLE_NAME"),
    "REFERENTIAL_CONSTRAINTS": _t("CONSTRAINT_CATALOG CONSTRAINT_SCHEMA CONSTRAINT_NAME "
                                  "UNIQUE_CONSTRAINT_CATALOG UNIQUE_CONSTRAINT_SCHEMA "
                                  "UNIQUE_CONSTRAINT_NAME MATCH_OPTION UPDATE_RULE DELETE_RULE "
                                  "TABLE_NAME REFERENCED_TABLE_NAME",
                                  "CONSTRAINT_SCHEMA UNIQUE_CONSTRAINT_SCHEMA", "TABLE_NAME"),
    "CHECK_CONSTRAINTS": _t("CONSTRAINT_CATALOG CONSTRAINT_SCHEMA TABLE_NAME CONSTRAINT_NAME "
                            "LEVEL CHECK_CLAUSE", "CONSTRAINT_SCHEMA", "TABLE_NAME"),
    "VIEWS": _t("TABLE_CATALOG TABLE_SCHEMA TABLE_NAME VIEW_DEFINITION CHECK_OPTION "
                "IS_UPDATABLE DEFINER SECURITY_TYPE CHARACTER_SET_CLIENT COLLATION_CONNECTION "
                "ALGORITHM", "TABLE_SCHEMA", "TABLE_NAME"),
    "ROUTINES": _t("SPECIFIC_NAME ROUTINE_CATALOG ROUTINE_SCHEMA ROUTINE_NAME ROUTINE_TYPE "
                   "DATA_TYPE CHARACTER_MAXIMUM_LENGTH CHARACTER_OCTET_LENGTH NUMERIC_PRECISION "
                   "NUMERIC_SCALE DATETIME_PRECISION CHARACTER_SET_NAME COLLATION_NAME "
                   "DTD_IDENTIFIER ROUTINE_BODY ROUTINE_DEFINITION EXTERNAL_NAME "
                   "EXTERNAL_LANGUAGE PARAMETER_STYLE IS_DETERMINISTIC SQL_DATA_ACCESS SQL_PATH "
                   "SECURITY_TYPE CREATED LAST_ALTERED SQL_MODE ROUTINE_COMMENT DEFINER "
                   "CHARACTER_SET_CLIENT COLLATION_CONNECTION DATABASE_COLLATION",
                   "ROUTINE_SCHEMA", None),
    "PARAMETERS": _t("SPECIFIC_CATALOG SPECIFIC_SCHEMA SPECIFIC_NAME ORDINAL_POSITION "
                     "PARAMETER_MODE PARAMETER_NAME DATA_TYPE CHARACTER_MAXIMUM_LENGTH "
                     "CHARACTER_OCTET_LENGTH NUMERIC_PRECISION NUMERIC_SCALE DATETIME_PRECISION "
                     "CHARACTER_SET_NAME COLLATION_NAME DTD_IDENTIFIER ROUTINE_TYPE",
                     "SPECIFIC_SCHEMA", None),
    "TRIGGERS": _t("TRIGGER_CATALOG TRIGGER_SCHEMA TRIGGER_NAME EVENT_MANIPULATION "
                   "EVENT_OBJECT_CATALOG EVENT_OBJECT_SCHEMA EVENT_OBJECT_TABLE ACTION_ORDER "
                   "ACTION_CONDITION ACTION_STATEMENT ACTION_ORIENTATION ACTION_TIMING "
                   "ACTION_REFERENCE_OLD_TABLE ACTION_REFERENCE_NEW_TABLE "
                   "ACTION_REFERENCE_OLD_ROW ACTION_REFERENCE_NEW_ROW CREATED SQL_MODE DEFINER "
                   "CHARACTER_SET_CLIENT COLLATION_CONNECTION DATABASE_COLLATION",
                   "TRIGGER_SCHEMA EVENT_OBJECT_SCHEMA", "EVENT_OBJECT_TABLE"),
    "PARTITIONS": _t("TABLE_CATALOG TABLE_SCHEMA TABLE_NAME PARTITION_NAME SUBPARTITION_NAME "
                     "PARTITION_ORDINAL_POSITION SUBPARTITION_ORDINAL_POSITION PARTITION_METHOD "
                     "SUBPARTITION_METHOD PARTITION_EXPRESSION SUBPARTITION_EXPRESSION "
                     "PARTITION_DESCRIPTION TABLE_ROWS AVG_ROW_LENGTH DATA_LENGTH "
                     "MAX_DATA_LENGTH INDEX_LENGTH DATA_FREE CREATE_TIME UPDATE_TIME CHECK_TIME "
                     "CHECKSUM PARTITION_COMMENT NODEGROUP TABLESPACE_NAME", "TABLE_SCHEMA",
                     "TABLE_NAME"),
}


@dataclass(frozen=True, slots=True)
class _Source:
    physical: str  # a database on the instance
    logical: str   # the logical database it shows as
    tables: tuple[str, ...] | None  # only these tables (a shard database); None: all


def sources(config: Config, instance: str,
            visible: frozenset[str] | None = None) -> list[_Source]:
    """The physical databases on ``instance`` that make up the logical view (of the logical
    databases in ``visible``; None: all)."""
    out = []
    for name, db in config.databases.items():
        if visible is not None and name not in visible:
            continue
        if db.default_instance == instance:
            out.append(_Source(db.default_database, name, None))
        # Broadcast tables are read from the default database's copy: not listed twice.
        sharded = tuple(t for t, cfg in db.tables.items()
                        if cfg.kind in (TableKind.SHARDED, TableKind.BOUND))
        if not sharded:
            continue
        dim = db.dimensions[db.authoritative]
        shard = next((n for n in range(dim.shards)
                      if config.shard_instance(name, db.authoritative, n) == instance), None)
        if shard is not None:
            out.append(_Source(dim.database(shard), name, sharded))
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def derived_sql(table: str, found: list[_Source]) -> str:
    """The SELECT that stands in for ``information_schema.<table>``."""
    spec = TABLES[table]
    key = spec.schemas[0]
    cases = " ".join(f"WHEN {_quote(s.physical)} THEN {_quote(s.logical)}" for s in found)
    columns = [f"CASE {c} WHEN {_quote(INFO)} THEN {c} {cases} ELSE NULL END AS {c}"
               if c in spec.schemas else c for c in spec.columns]
    keep = [f"{key} = {_quote(INFO)}"]
    for source in found:
        if source.tables is None:  # a default database: all of it
            keep.append(f"{key} = {_quote(source.physical)}")
        elif spec.name is not None:  # a shard database: its sharded tables only (SCHEMATA,
            tables = ", ".join(_quote(t) for t in source.tables)  # ROUTINES: none of it)
            keep.append(f"({key} = {_quote(source.physical)} AND {spec.name} IN ({tables}))")
    return (f"SELECT {', '.join(columns)} FROM {INFO}.{table} WHERE " + " OR ".join(keep))


def rewrite(tree: exp.Expression, config: Config, instance: str, schema: str | None,
            visible: frozenset[str] | None = None) -> exp.Expression | None:
    """``tree`` with every information_schema table it reads replaced by the logical view
    (of the logical databases in ``visible``; None: all); None when it reads none."""
    found: list[_Source] | None = None
    changed = False

    def visit(node: exp.Expression) -> exp.Expression:
        nonlocal found, changed
        # Every table the client names, parenthesized or not (`FROM (information_schema.tables)`
        # is a Subquery around it to sqlglot); not the view's own inner table.
        if not isinstance(node, exp.Table) or node.meta.get("logical_view"):
            return node
        db = (node.db or (schema or "")).lower()
        name = node.name.upper()
        if db != INFO or name not in TABLES:
            return node
        if found is None:
            found = sources(config, instance, visible)
        changed = True
        inner = parse_one(derived_sql(name, found), dialect="mysql")
        for table in inner.find_all(exp.Table):
            table.meta["logical_view"] = True
        return exp.Subquery(this=inner, alias=exp.TableAlias(
            this=exp.to_identifier(node.alias or node.name)))

    result = tree.transform(visit)
    return result if changed else None
