"""Create the shard databases, apply the schema to every shard, and find drift.

  dal schema apply             create what is missing, then compare every table with the file
  dal schema apply --dry-run   report what apply would create; create nothing
  dal schema check             compare only; a missing table or database counts as a problem

For each logical database of the config: its default database on its default instance, and
every shard database of every dimension (user_000..user_119, merchant_000..merchant_119) on
the instance its placement names. Each logical database has its own schema file: `schema:` in
its config section, relative to the config/ package directory, by default
config/schema/<logical database name>.sql (config/schema/trade.sql for `trade`); a logical
database whose file does not exist is an error. `--schema FILE` applies one file to every
logical database instead. A schema file holds CREATE TABLE statements only; each table goes
where its kind in that logical database's config says:

  sharded, bound   every shard database of every dimension
  broadcast        every shard database and the default database
  unsharded        the default database only, as is any table the config does not name

It logs in as the config's DBA account (`dba:`; docs/security.md), not as DAL's own.
A table that already exists is left as it is, so a second apply changes nothing. Drift: every
table's SHOW CREATE TABLE (AUTO_INCREMENT=N removed) is compared with a reference built from its
file in a scratch database `_dal_schema_ref` on each instance (not binlogged, dropped at the
end), and each difference is reported as `database.table: reason`. Two logical databases that
put a table of the same name, defined differently, into the same physical database are an error.

Exit status: 0 all good, 1 a database error, 2 a bad config or schema file, 4 drift (or, for
check, missing tables).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import pymysql
from dbutils.pooled_db import PooledDB

from config.loader import DEFAULT_CONFIG, ConfigError, load_config
from config.model import Config, Instance, LogicalDatabase, TableKind

SCHEMA_DIR = DEFAULT_CONFIG.parent  # `schema:` paths in the config are relative to config/
DEFAULT_SCHEMA = SCHEMA_DIR / "schema" / "trade.sql"  # the schema file of `trade`
REF_DATABASE = "_dal_schema_ref"
WORKERS = 8
DRIFT_EXIT = 4
DEFAULT_KINDS = (TableKind.BROADCAST, TableKind.UNSHARDED)  # kinds held in the default database
SHOWN_MAX = 30  # problems listed one per line before "... and N more"


class SchemaError(Exception):
    """The schema file cannot be used. The message names the file, the line and the problem."""


class SchemaDbError(Exception):
    """A database statement failed. The message names the instance and database."""


@dataclass(frozen=True)
class TableDef:
    """One CREATE TABLE statement of a schema file."""

    name: str
    sql: str
    line: int
    file: str = ""

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Target:
    """One physical database and the tables it must hold (names and definitions), in file order."""

    instance: str
    database: str
    tables: tuple[str, ...]
    defs: tuple[TableDef, ...] = ()


@dataclass(frozen=True)
class Drift:
    """A table that is missing or differs from the schema file."""

    database: str
    table: str
    reason: str

    def __str__(self) -> str:
        return f"{self.database}.{self.table}: {self.reason}"


@dataclass
class Report:
    """What apply or check found and did. In dry-run and check, `created` means missing."""

    mode: str
    databases: int = 0
    databases_created: list[str] = field(default_factory=list)
    tables_created: list[str] = field(default_factory=list)
    tables_present: int = 0
    drift: list[Drift] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No drift, and for check nothing missing."""
        return not self.drift and not (self.mode == "check" and self.tables_created)

    def summary(self) -> str:
        """The one-line result."""
        made = len(self.tables_created)
        dbs = f"{self.databases} databases"
        if self.mode == "apply":
            return (
                f"schema apply: {dbs} ({len(self.databases_created)} created), {made} tables "
                f"created, {self.tables_present} already present, {len(self.drift)} drifted"
            )
        if self.mode == "dry-run":
            return (
                f"schema apply --dry-run: {dbs}, would create {len(self.databases_created)} "
                f"databases and {made} tables, {self.tables_present} already present, "
                f"{len(self.drift)} drifted"
            )
        return (
            f"schema check: {dbs} ({len(self.databases_created)} missing), {made} tables "
            f"missing, {self.tables_present} present, {len(self.drift)} drifted"
        )


# ---- the schema file ------------------------------------------------------------------------

_CREATE = re.compile(
    r"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?P<temp>TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<first>`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?P<second>`(?:[^`]|``)+`|[\w$]+))?",
    re.IGNORECASE,
)


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split SQL on `;` outside quotes and comments; return (first line, statement) pairs.

    Comments are dropped, except MariaDB's executable `/*! ... */` ones, which are kept.
    """
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start_line = line = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if not buf and not ch.isspace() and ch != ";":
            start_line = line
        if ch in "'\"`":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if text[end] == "\\" and ch != "`" else 1
            buf.append(text[i : end + 1])
            line += text.count("\n", i, end + 1)
            i = end + 1
        elif ch == "#" or (text.startswith("--", i) and (i + 2 == n or text[i + 2].isspace())):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i) and not text.startswith("/*!", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            if buf:
                buf.append(" ")
            i = end
        elif ch == ";":
            _flush(buf, start_line, out)
            i += 1
        else:
            line += ch == "\n"
            if buf or not ch.isspace():
                buf.append(ch)
            i += 1
    _flush(buf, start_line, out)
    return out


def _flush(buf: list[str], line: int, out: list[tuple[int, str]]) -> None:
    stmt = "".join(buf).strip()
    if stmt:
        out.append((line, stmt))
    buf.clear()


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def parse_schema(path: str | Path) -> list[TableDef]:
    """The CREATE TABLE statements of a schema file; anything else is refused."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise SchemaError(f"{file}: cannot read: {exc.strerror}") from None
    tables: list[TableDef] = []
    for line, stmt in split_statements(text):
        where = f"{file}:{line}"
        match = _CREATE.match(stmt)
        if match is None:
            words = " ".join(stmt.split()[:3])
            raise SchemaError(f"{where}: expected a CREATE TABLE statement, got {words!r} ...")
        if match["replace"] or match["temp"]:
            raise SchemaError(f"{where}: CREATE OR REPLACE / TEMPORARY tables are not allowed")
        if match["second"]:
            raise SchemaError(
                f"{where}: table {match[0].split()[-1]} names a database; the schema is applied "
                "to every shard database, so give the bare table name"
            )
        name = _unquote(match["first"])
        if any(t.name == name for t in tables):
            raise SchemaError(f"{where}: table {name!r} is defined twice")
        tables.append(TableDef(name=name, sql=stmt, line=line, file=str(file)))
    if not tables:
        raise SchemaError(f"{file}: no CREATE TABLE statement found")
    return tables


# ---- which file, and where each table goes ---------------------------------------------------

# The tables of every logical database: one list for all (an explicit --schema file), or a
# mapping from logical database name to the tables of its own schema file.
Schemas = list[TableDef] | Mapping[str, list[TableDef]]


def schema_path(db_name: str, db: LogicalDatabase) -> Path:
    """The schema file of one logical database: its `schema:` (relative to config/), by default
    config/schema/<name>.sql."""
    return SCHEMA_DIR / (db.schema_file or f"schema/{db_name}.sql")


def load_schemas(
    config: Config, override: str | Path | None = None
) -> dict[str, list[TableDef]]:
    """Each logical database's tables: from `override` for all of them if given, else from each
    one's own schema file, which must exist. Each file is read once."""
    if override is not None:
        tables = parse_schema(override)
        return {db_name: tables for db_name in config.databases}
    parsed: dict[Path, list[TableDef]] = {}
    out: dict[str, list[TableDef]] = {}
    for db_name, db in config.databases.items():
        path = schema_path(db_name, db)
        if path not in parsed:
            if not path.is_file():
                how = (f"the `schema:` of databases.{db_name}" if db.schema_file
                       else f"the default for a logical database named {db_name!r}")
                raise SchemaError(
                    f"{path}: the schema file of logical database {db_name!r} ({how}) does not "
                    "exist; create it, or set `schema:` for this database in the config"
                )
            parsed[path] = parse_schema(path)
        out[db_name] = parsed[path]
    return out


def legacy_schema(db: LogicalDatabase) -> list[TableDef] | None:
    """The tables of a migration's legacy database, from config/schema/<source_database>.sql
    when that file exists (docs/migration.md)."""
    if db.migration is None:
        return None
    path = SCHEMA_DIR / f"schema/{db.migration.source_database}.sql"
    return parse_schema(path) if path.is_file() else None


def _per_database(config: Config, tables: Schemas) -> Mapping[str, list[TableDef]]:
    if isinstance(tables, list):
        return {db_name: tables for db_name in config.databases}
    return tables


def plan(config: Config, tables: Schemas) -> list[Target]:
    """Every physical database the config implies, with the tables each must hold.

    `tables`: one list applied to every logical database, or each logical database's own list.
    """
    per_db = _per_database(config, tables)
    wanted: dict[tuple[str, str], dict[str, TableDef]] = {}

    def add(instance: str, database: str, defs: list[TableDef]) -> None:
        have = wanted.setdefault((instance, database), {})
        for table in defs:
            other = have.setdefault(table.name, table)
            if other.sql != table.sql:
                raise SchemaError(
                    f"database {database} on instance {instance} would hold table "
                    f"{table.name!r} as defined at {other.where()} and, differently, at "
                    f"{table.where()}; give the logical databases distinct databases or tables"
                )

    for db_name, db in config.databases.items():
        defs = per_db[db_name]
        kinds = {
            t.name: db.tables[t.name].kind if t.name in db.tables else TableKind.UNSHARDED
            for t in defs
        }
        in_shards = [t for t in defs if kinds[t.name] is not TableKind.UNSHARDED]
        in_default = [t for t in defs if kinds[t.name] in DEFAULT_KINDS]
        add(db.default_instance, db.default_database, in_default)
        for dim_name, dim in db.dimensions.items():
            for shard in range(dim.shards):
                add(config.shard_instance(db_name, dim_name, shard), dim.database(shard), in_shards)
        legacy = legacy_schema(db)
        if legacy is not None and db.migration is not None:  # a live migration's source
            add(db.migration.source_instance, db.migration.source_database, legacy)
    return [
        Target(inst, name, tuple(defs), tuple(defs.values()))
        for (inst, name), defs in wanted.items()
    ]


def plan_warnings(config: Config, tables: Schemas) -> list[str]:
    """Tables the config names that the logical database's schema file does not define."""
    per_db = _per_database(config, tables)
    return [
        f"{db_name}: table {name!r} is in the config but not in the schema file"
        for db_name, db in config.databases.items()
        for name in db.tables
        if name not in {t.name for t in per_db[db_name]}
    ]


# ---- comparing definitions ------------------------------------------------------------------

_AUTO_INC = re.compile(r" AUTO_INCREMENT=\d+")
_INDEX = re.compile(
    r"(?P<kind>PRIMARY KEY|UNIQUE KEY|FULLTEXT KEY|SPATIAL KEY|KEY|CONSTRAINT|PERIOD FOR)"
    r"\s*(?:`(?P<name>(?:[^`]|``)+)`)?"
)


def normalise(create: str) -> str:
    """SHOW CREATE TABLE output without what legitimately varies (AUTO_INCREMENT=N)."""
    return _AUTO_INC.sub("", create).strip()


def _parts(create: str) -> dict[str, str]:
    """The lines of a SHOW CREATE TABLE body keyed by what they define, in order."""
    lines = create.splitlines()
    parts: dict[str, str] = {}
    for raw in lines[1:-1]:
        text = raw.strip().rstrip(",")
        if text.startswith("`"):
            name = re.match(r"`((?:[^`]|``)+)`", text)
            key = f"column {_unquote(name[0]) if name else text}"
        elif m := _INDEX.match(text):
            label = {"KEY": "index", "PRIMARY KEY": "primary key"}.get(m["kind"], m["kind"].lower())
            key = f"{label} {_unquote('`' + m['name'] + '`')}" if m["name"] else label
        else:
            key = text
        parts[key] = text
    if lines:
        parts["table options"] = lines[-1].strip()
    return parts


def describe_drift(want: str, got: str) -> str:
    """A short reason why two normalised definitions differ, e.g. ``column note differs``."""
    w, g = _parts(want), _parts(got)
    reasons = [f"{key} is missing" for key in w if key not in g]
    reasons += [f"{key} is extra" for key in g if key not in w]
    reasons += [
        f"table options differ ({g[key].lstrip(') ')})"
        if key == "table options"
        else f"{key} differs"
        for key in w
        if key in g and w[key] != g[key]
    ]
    if not reasons and list(w) != list(g):
        columns = [[key for key in parts if key.startswith("column ")] for parts in (w, g)]
        reasons.append(
            "column order differs" if columns[0] != columns[1] else "index order differs"
        )
    return "; ".join(reasons) or "definition differs"


# ---- database work --------------------------------------------------------------------------


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pool(inst: Instance, size: int) -> PooledDB:
    return PooledDB(
        creator=pymysql,
        maxconnections=size,
        blocking=True,
        host=inst.host,
        port=inst.port,
        user=inst.user,
        password=inst.password,
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=5,
    )


@contextmanager
def _cursor(pool: PooledDB, instance: str, what: str) -> Iterator[pymysql.cursors.Cursor]:
    """A cursor on a pooled connection; database errors name the instance and what was done."""
    conn = None
    try:
        conn = pool.connection()
        cur = conn.cursor()
        yield cur
        cur.close()
    except pymysql.err.MySQLError as exc:
        raise SchemaDbError(f"instance {instance}, {what}: {exc}") from None
    finally:
        if conn is not None:
            conn.close()


def _show_create(cur: pymysql.cursors.Cursor, database: str, table: str) -> str:
    cur.execute(f"SHOW CREATE TABLE {_q(database)}.{_q(table)}")
    return normalise(cur.fetchone()[1])


def reference(
    pool: PooledDB, instance: str, tables: list[TableDef]
) -> dict[tuple[str, str], str]:
    """Apply one file's tables to a scratch database; each table's normalised definition,
    keyed by (file, table name)."""
    with _cursor(pool, instance, f"building {REF_DATABASE}") as cur:
        unlogged = True
        try:
            cur.execute("SET SESSION sql_log_bin = 0")
        except pymysql.err.MySQLError:
            unlogged = False  # without the privilege the scratch database is binlogged; harmless
        cur.execute(f"DROP DATABASE IF EXISTS {_q(REF_DATABASE)}")
        cur.execute(f"CREATE DATABASE {_q(REF_DATABASE)}")
        try:
            cur.execute(f"USE {_q(REF_DATABASE)}")
            refs = {}
            for table in tables:
                try:
                    cur.execute(table.sql)
                except pymysql.err.MySQLError as exc:
                    raise SchemaError(
                        f"schema line {table.line} (table {table.name}) refused by "
                        f"instance {instance}: {exc}"
                    ) from None
                refs[table.file, table.name] = _show_create(cur, REF_DATABASE, table.name)
            return refs
        finally:
            cur.execute(f"DROP DATABASE IF EXISTS {_q(REF_DATABASE)}")
            if unlogged:
                cur.execute("SET SESSION sql_log_bin = 1")


@dataclass
class _Result:
    database_created: bool = False
    created: list[str] = field(default_factory=list)
    present: int = 0
    drift: list[Drift] = field(default_factory=list)


def sync_database(
    pool: PooledDB, target: Target, refs: dict[tuple[str, str], str], create: bool
) -> _Result:
    """Create the database and its missing tables (if `create`), then compare every table."""
    db = target.database
    result = _Result()
    with _cursor(pool, target.instance, f"database {db}") as cur:
        exists = cur.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db,)
        )
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (db,)
        )
        present = {row[0] for row in cur.fetchall()}
        if not exists:
            result.database_created = True
            if create:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {_q(db)}")
        if create and not present.issuperset(target.tables):
            cur.execute(f"USE {_q(db)}")
        for table in target.defs:
            name = table.name
            if name in present:
                result.present += 1
            else:
                result.created.append(f"{db}.{name}")
                if not create:
                    continue
                cur.execute(table.sql)
            got = _show_create(cur, db, name)
            want = refs[table.file, name]
            if got != want:
                result.drift.append(Drift(db, name, describe_drift(want, got)))
    return result


def _interleave(targets: list[Target]) -> list[Target]:
    """Alternate instances so that the workers keep every instance busy."""
    by_instance: dict[str, list[Target]] = {}
    for target in targets:
        by_instance.setdefault(target.instance, []).append(target)
    return [t for group in zip_longest(*by_instance.values()) for t in group if t is not None]


def run_targets(
    config: Config,
    tables: Schemas,
    mode: str,
    advance: Callable[[], None] = lambda: None,
) -> Report:
    """Apply (mode "apply") or only compare ("dry-run", "check") every planned database."""
    targets = _interleave(plan(config, tables))
    report = Report(mode=mode, databases=len(targets), warnings=plan_warnings(config, tables))
    files: dict[str, list[TableDef]] = {}  # each schema file's full table list, for references
    for defs in _per_database(config, tables).values():
        for table in defs:
            files.setdefault(table.file, defs)
    needed: dict[str, set[str]] = {}  # instance -> the schema files its targets use
    for target in targets:
        needed.setdefault(target.instance, set()).update(t.file for t in target.defs)
    instances = sorted({t.instance for t in targets})
    dba = config.dba  # creating databases is the DBA account's job, not DAL's (docs/security.md)
    pools = {name: _pool(config.instances[name].login_as(dba.user, dba.password), WORKERS)
             for name in instances}
    try:
        refs: dict[str, dict[tuple[str, str], str]] = {}
        for name in instances:
            refs[name] = {}
            for file in sorted(needed[name]):
                refs[name].update(reference(pools[name], name, files[file]))

        def work(target: Target) -> _Result:
            try:
                return sync_database(
                    pools[target.instance], target, refs[target.instance], mode == "apply"
                )
            finally:
                advance()

        with ThreadPoolExecutor(max_workers=WORKERS) as executor:
            results = list(executor.map(work, targets))
    finally:
        for pool in pools.values():
            pool.close()
    for target, result in zip(targets, results, strict=True):
        if result.database_created:
            report.databases_created.append(target.database)
        report.tables_created += result.created
        report.tables_present += result.present
        report.drift += result.drift
    report.drift.sort(key=lambda d: (d.database, d.table))
    return report


def _execute(
    config: Config, schema_file: str | Path | None, mode: str, progress: bool
) -> Report:
    tables = load_schemas(config, schema_file)
    if not (progress and sys.stdout.isatty()):
        return run_targets(config, tables, mode)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task(f"schema {mode}: databases", total=len(plan(config, tables)))
        return run_targets(config, tables, mode, lambda: bar.advance(task))


def apply(
    config: Config,
    schema_file: str | Path | None = None,
    progress: bool = True,
    dry_run: bool = False,
) -> Report:
    """Create every missing database and table, then report drift. Idempotent.

    `schema_file`: one file for every logical database; by default each one's own file.
    """
    return _execute(config, schema_file, "dry-run" if dry_run else "apply", progress)


def check(
    config: Config, schema_file: str | Path | None = None, progress: bool = True
) -> Report:
    """Compare every database with its schema file; create nothing."""
    return _execute(config, schema_file, "check", progress)


# ---- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `dal schema` arguments."""
    parser.add_argument("action", choices=["apply", "check"], help="apply, or only compare")
    parser.add_argument(
        "--schema",
        metavar="FILE",
        help="apply this one file of CREATE TABLE statements to every logical database "
        "(default: each logical database's own file: `schema:` in its config section, relative "
        "to config/, else config/schema/<logical database name>.sql)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with apply: say what it would create, create nothing",
    )


def ensure_migration_tables(config: Config) -> None:
    """The migration control tables in dal_meta on the default instance, when a database of
    the config has a migration (dal/migration/control.py)."""
    if not any(db.migration is not None for db in config.databases.values()):
        return
    from dal.migration import control

    first = next(iter(config.databases.values()))
    dba = config.instances[first.default_instance].login_as(config.dba.user,
                                                             config.dba.password)
    conn = control.connect(dba)
    try:
        with conn.cursor() as cur:
            control.ensure_tables(cur)
    finally:
        conn.close()


def _print_list(label: str, items: list[str]) -> None:
    for item in items[:SHOWN_MAX]:
        print(f"{label}: {item}")
    if len(items) > SHOWN_MAX:
        print(f"{label}: ... and {len(items) - SHOWN_MAX} more")


def run(args: argparse.Namespace) -> int:
    """Run `dal schema`; see the module docstring for the exit status."""
    try:
        config = load_config(args.config)
        if args.action == "check":
            report = check(config, args.schema)
        else:
            report = apply(config, args.schema, dry_run=args.dry_run)
            if not args.dry_run:
                ensure_migration_tables(config)
    except (ConfigError, SchemaError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except SchemaDbError as exc:
        print(f"dal schema {args.action}: {exc}", file=sys.stderr)
        return 1
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.mode != "apply":
        _print_list("missing", report.tables_created)
    _print_list("drift", [str(d) for d in report.drift])
    print(report.summary())
    return 0 if report.ok else DRIFT_EXIT
