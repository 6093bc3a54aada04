"""Statement to plan: the plan cache in front, sqlglot analysis behind it on a miss.

The hot path of a repeated statement shape is `Router.plan` -> `PlanCache.get`: no sqlglot.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from config.model import Config, TableKind
from router import errors, express, info_schema, syntax
from router.access import (
    BAD_CHARSET,
    AccessPolicy,
    names_session_user,
    unsafe_charset_refusal,
    words_of,
)
from router.engine.build import rooted
from router.express import Express
from router.fingerprint import Fingerprint, fingerprint_in_modes
from router.mariadb_sql import mariadb_sql
from router.plan import LOCAL, ROUTE, SET, SHARDED, Plan, refuse
from router.plan_cache import PlanCache
from router.rules import check_rules, tagged
from router.sharded import plan_sharded
from router.sqltext import expand_executable, security_text

# MYSQL_VERSION_ID assumed for executable comments until the server learns the backend's.
DEFAULT_VERSION_ID = 101100

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys"})
DDL = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
WRITES = (exp.Insert, exp.Update, exp.Delete)

# Statements that leave state on the backend connection which DAL cannot replay yet.
_PIN_PATTERNS = [
    (re.compile(r"(?i)\bGET_LOCK\s*\("), "get_lock"),
    (re.compile(r"(?i)^\s*LOCK\s+TABLES?\b"), "lock_tables"),
    (re.compile(r"(?i)^\s*FLUSH\s+TABLES\s+WITH\s+READ\s+LOCK"), "lock_tables"),
    (re.compile(r"(?i)\bCREATE\s+TEMPORARY\s+TABLE\b"), "temporary_table"),
    (re.compile(r"(?i)\bSQL_CALC_FOUND_ROWS\b"), "found_rows"),
    (re.compile(r"(?i)@\w+\s*:=|\bINTO\s+@"), "user_variable"),
    (re.compile(r"(?i)^\s*(PREPARE|EXECUTE|DEALLOCATE)\b"), "text_prepare"),
    (re.compile(r"(?i)^\s*CALL\b"), "call"),
]
_OWN_CONNECTION = re.compile(r"(?i)\b(FOUND_ROWS|ROW_COUNT)\s*\(")
_COUNT_DIAGNOSTICS = re.compile(r"(?i)\s*SHOW\s+COUNT\s*\(\s*\*\s*\)\s+(WARNINGS|ERRORS)\s*;?\s*$")
_REPLACE = re.compile(r"(?i)^\s*REPLACE(?=\s)")
# MariaDB runs the inside of /*! ... */ and /*M! ... */ by its version; DAL's scanner and
# sqlglot would skip it as a comment, so statements are planned from their expansion.
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
_TABLE_STATUS = re.compile(r"(?is)\s*SHOW\s+TABLE\s+STATUS(?:\s+(?:FROM|IN)\s+"
                           r"(?:`(?:[^`]|``)+`|[\w$]+))?(\s.*?)?\s*;?\s*$")
_START_TRANSACTION = re.compile(r"(?is)\s*START\s+TRANSACTION\b")
_LOCK_TABLES = re.compile(r"(?is)\s*LOCK\s+TABLES?\s+(.*?)\s*;?\s*$")
_LOCK_ITEM = re.compile(r'(?is)\s*((?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)'
                        r"(?:\s+(?:AS\s+)?(?!READ\b|WRITE\b|LOW_PRIORITY\b)[\w$`]+)?\s+"
                        r"(READ(?:\s+LOCAL)?|(?:LOW_PRIORITY\s+)?WRITE(?:\s+CONCURRENT)?)\s*$")
_TRANSACTION_ONLY = re.compile(r"(?i)\s*(SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+(WORK\s+)?TO)\b")
_RENAMED_VARIABLES = {"transaction_isolation": "tx_isolation",
                      "transaction_read_only": "tx_read_only"}
_DEFAULT_CHARSET = "utf8mb4"
# Functions whose value belongs to the client's session, not to whichever backend connection
# served it: answered by DAL from its own records.
_SESSION_FUNCTIONS = {"LAST_INSERT_ID": "last_insert_id", "CONNECTION_ID": "connection_id",
                      "ROW_COUNT": "row_count", "FOUND_ROWS": "found_rows",
                      "USER": "user", "SESSION_USER": "user", "SYSTEM_USER": "user",
                      "CURRENT_USER": "current_user"}
_SESSION_VARIABLES = {"identity": "last_insert_id", "last_insert_id": "last_insert_id"}


class Router:
    """Plans statements for one config generation."""

    def __init__(self, config: Config, capacity: int = 5000) -> None:
        self.config = config
        self.rules = config.rules
        self.cache: PlanCache[Plan] = PlanCache(capacity)
        # Statement heads before a trailing integer -> their express route (router/express.py).
        self.express: dict[bytes, Express] = {}
        self._key = b""
        # The backend's MYSQL_VERSION_ID, for executable comments (set by dal/server.py).
        self.version_id = DEFAULT_VERSION_ID
        self.mariadb = True  # MySQL reads /*M! as a plain comment and runs 5.7+ versions
        self.parses = 0  # sqlglot calls, counted so that tests can assert the hot path skips it
        self.access = AccessPolicy([dim.prefix for cfg in config.databases.values()
                                    for dim in cfg.dimensions.values()])
        self._names = {
            db: {name: table.kind for name, table in cfg.tables.items()}
            for db, cfg in config.databases.items()
        }
        self._sharded_words = re.compile(
            r"(?i)\b(" + "|".join(
                re.escape(name) for cfg in config.databases.values()
                for name, table in cfg.tables.items() if table.kind is not TableKind.UNSHARDED
            ) + r")\b") if any(self._names.values()) else None

    def plan(self, sql: bytes, fp: Fingerprint, schema: str | None, admin: bool,
             modes: int = 0, original: bytes | None = None) -> Plan:
        """The plan for a statement, from the cache when its shape was seen before.

        ``modes`` are the session's lexer modes (router/sqltext.py): a statement read under
        NO_BACKSLASH_ESCAPES or ANSI_QUOTES is planned and cached apart. ``original``: the
        client's text when ``sql`` is its `expand` (the access check reads the original, every
        executable comment included, whatever its version)."""
        if original is not None:
            text = original.decode("utf-8", "surrogateescape")
            denial = self.access.check(text, modes, admin)
            if denial is not None:
                return rooted(tagged(refuse(*denial.error), denial.rule))
        key = (fp.key, schema, admin, modes) if modes else (fp.key, schema, admin)
        plan = self.cache.get(key)
        if plan is None:
            plan = rooted(self.analyse(sql, schema, admin, fp.key, modes))  # its tree, once
            # A rule's refusal depends on the shape alone: cached, so a hit skips the rules.
            # A statement with an executable comment is planned for its own text only: the
            # scanner's key cannot tell what the comment runs (or skips) from its literals.
            if not plan.once and not _has_executable(sql) and (
                    plan.passthrough or not fp.literals or plan.kind == SHARDED
                    or plan.rule is not None):
                self.cache.put(key, plan)
        return plan

    def set_rules(self, rules: object) -> None:
        """New statement rules (config.protection.RulesConfig); cached plans are dropped."""
        self.rules = rules  # type: ignore[assignment]
        self.cache.clear()
        self.express.clear()

    def expand(self, sql: bytes, modes: int = 0) -> bytes | None:
        """``sql`` with its executable comments resolved as the backend reads them (run or
        skipped by version, router/sqltext.py); None when it holds none."""
        if b"/*" not in sql or (b"/*!" not in sql and b"/*M!" not in sql):
            return None
        expanded = expand_executable(sql.decode("utf-8", "surrogateescape"), modes,
                                     self.version_id, self.mariadb)
        return None if expanded is None else expanded.encode("utf-8", "surrogateescape")

    def learn_express(self, sql: bytes, fp: Fingerprint, plan: Plan, schema: str | None,
                      admin: bool) -> None:
        """After the ordinary path ran ``sql`` with ``plan``: remember its head's express route
        (or that it has none) for the statements of its shape that follow."""
        if plan.once or _has_executable(sql):
            return
        express.learn(self.express, self.config, sql, fp, plan, schema, admin)

    def default_plan(self, schema: str | None) -> Plan:
        """A route to the backend that holds the session's default (unsharded) database."""
        return self._default_route(schema)

    def field_list_target(self, schema: str, table: str) -> Plan:
        """Where COM_FIELD_LIST for ``table`` is answered: the default database, or the first
        shard of the authoritative dimension for a sharded table."""
        cfg = self.config.databases.get(schema)
        kind = self._names.get(schema, {}).get(table)
        if cfg is None or kind not in (TableKind.SHARDED, TableKind.BOUND):
            return self._default_route(schema)
        shard_db = cfg.dimensions[cfg.authoritative].database(0)
        return Plan(ROUTE, instance=self.config.shard_instance(schema, cfg.authoritative, 0),
                    schema=shard_db)

    def logical_tables(self, db: str) -> dict[str, str]:
        """The tables the config names for ``db`` (sharded, bound, broadcast), as BASE TABLEs."""
        return {name: "BASE TABLE" for name, kind in self._names.get(db, {}).items()
                if kind is not TableKind.UNSHARDED}

    # -- analysis (cache misses only) --------------------------------------------------------

    def analyse(self, sql: bytes, schema: str | None, admin: bool,
                key: bytes | None = None, modes: int = 0) -> Plan:
        """Plan one statement with sqlglot. Never raises: a failure is a refusal plan.

        Statements on sharded tables are planned from the fingerprint ``key`` (literals as
        slots), so that the plan serves every statement of that shape."""
        self._key = key if key is not None else sql
        text = sql.decode("utf-8", "surrogateescape")
        code = security_text(text, modes)
        denial = self.access.check_code(code, text, modes, admin)
        words = words_of(code)
        if denial is None and _EXECUTABLE_COMMENT.search(text):
            read = expand_executable(text, modes, self.version_id, self.mariadb)
            if read is None:
                return _with(refuse(*errors.NOT_SUPPORTED, "DAL cannot read this executable "
                                    "comment (/*! ... */): it is unterminated"), once=True)
            # Checked again as the backend reads it, whether or not the plan can use that
            # reading: `/*!99999 SELECT */ SHUTDOWN` passed the check above as a SELECT.
            code = security_text(read, modes)
            denial = self.access.check_code(code, read, modes, admin)
            words = words_of(code)
            if denial is not None:
                return _with(tagged(refuse(*denial.error), denial.rule), once=True)
            if not self._serves_slots(text, read, modes):
                if words[:1] == ["SET"]:
                    return _untracked_set(words, self._default_route(schema, "set"))
                return self._unparsed(text, schema, "it holds an executable comment (/*! ... */) "
                                      "that holds literals, sent in a prepared statement or a "
                                      "multi-statement batch", _pin_reason(text))
            text = read
        if denial is not None:
            # PREPARE's verdict depends on its literal body: planned for this text only.
            return _with(tagged(refuse(*denial.error), denial.rule),
                         once=words[:1] == ["PREPARE"])
        local = _local_statement(words, text)
        if local is not None:
            return local
        self.parses += 1
        if (lock := _LOCK_TABLES.match(text)) is not None:
            return self._lock_tables(lock.group(1), text, schema)
        # REPLACE routes like INSERT; sqlglot's MySQL dialect only parses the latter.
        parsed = _REPLACE.sub("INSERT", text, count=1) if _REPLACE.match(text) else text
        try:
            trees = [t for t in sqlglot.parse(parsed, dialect="mysql") if t is not None]
        except (ParseError, TokenError) as exc:
            if _START_TRANSACTION.match(text):  # ... WITH CONSISTENT SNAPSHOT, READ ONLY
                return Plan(LOCAL, handler="begin", args=(text.strip().rstrip(";"),),
                            statement="transaction")
            position = syntax.error_position(parsed, exc)
            if position is not None and parsed is not text:
                position += len(text) - len(parsed)  # REPLACE is one longer than INSERT
            return self._syntax_error(text, schema, position)
        except Exception:  # sqlglot bugs must not crash a session
            log.warning("sqlglot failed on %r", text[:200], exc_info=True)
            return self._unparsed(text, schema, "its SQL parser failed (see the DAL log)")
        if len(trees) != 1:
            return self._unparsed(text, schema, "more than one statement")
        tree = trees[0]
        if isinstance(tree, exp.Select) and not tree.expressions:  # bare SELECT, SELECT FROM t
            head = re.match(r"\s*\w+\s*", text)
            return self._syntax_error(text, schema, head.end() if head else None)
        if count := _COUNT_DIAGNOSTICS.match(text):
            return _with(self._default_route(schema, "show"), diagnostics=True, anywhere=True,
                         args=(f"@@session.{count.group(1).lower()[:-1]}_count",))
        pin = _pin_reason(text)
        if isinstance(tree, exp.Command):
            if words[:1] == ["SET"]:
                return _untracked_set(words, self._default_route(schema, "set"))
            plan = self._unparsed(text, schema, None, pin)
            if words and words[0] == "PREPARE":
                plan = _with(plan, once=True)
            if _TRANSACTION_ONLY.match(text):
                plan = _with(plan, anywhere=True)
            return plan
        plan = check_rules(self.rules, tree, self._analyse_tree(tree, text, schema, admin), admin)
        if plan.handler != "session_functions" and names_session_user(code):
            return refuse(*errors.NOT_SUPPORTED, "DAL answers CURRENT_USER(), USER() and "
                          "SESSION_USER() only on their own (SELECT CURRENT_USER()); inside "
                          "another statement the backend would name DAL's own account")
        if parsed is not text and plan.sql is not None and plan.sql.startswith(b"INSERT"):
            plan = _with(plan, sql=b"REPLACE" + plan.sql[len(b"INSERT"):])
        if pin and plan.kind == ROUTE:
            plan = _with(plan, pin=pin)
        if plan.kind == ROUTE and (own := _OWN_CONNECTION.search(text)):
            plan = _with(plan, own_connection=f"{own.group(1).upper()}()", anywhere=True)
        return plan

    def _serves_slots(self, text: str, expanded: str, modes: int) -> bool:
        """For a statement that reached the planner unexpanded (prepared, or in a batch): True
        when a plan built from its ``expanded`` reading serves the caller's literal slots (no
        literal inside a run comment); that reading's key is then the one planned from."""
        before = fingerprint_in_modes(text.encode("utf-8", "surrogateescape"), modes)
        after = fingerprint_in_modes(expanded.encode("utf-8", "surrogateescape"), modes)
        if len(before.literals) != len(after.literals) or before.groups != after.groups:
            return False
        self._key = after.key
        return True

    def _lock_tables(self, items: str, text: str, schema: str | None) -> Plan:
        """LOCK TABLES: as it is on unsharded and broadcast tables (on the default database,
        pinning the session). A list that names a sharded or bound table takes READ locks only,
        and then locks nothing (no lock spans 120 shards; see README, "What you see through
        DAL"): answered OK, so that mariadb-dump proceeds."""
        sharded = []
        for item in _split_top_level(items):
            match = _LOCK_ITEM.match(item)
            if match is None:
                return self._unparsed(text, schema, "DAL reads LOCK TABLES <table> [[AS] alias] "
                                      "READ [LOCAL] | [LOW_PRIORITY] WRITE [CONCURRENT]",
                                      "lock_tables")
            name = match.group(1).replace("`", "")
            db, _, table = name.rpartition(".")
            resolved = self._resolve(db.strip() or None, table.strip(), schema)
            if isinstance(resolved, Plan):
                return resolved
            if resolved[1] in (TableKind.SHARDED, TableKind.BOUND):
                if not match.group(2).upper().startswith("READ"):
                    return refuse(*errors.NOT_SUPPORTED, f"LOCK TABLES ... WRITE on "
                                  f"{resolved[1].value} table '{table.strip()}' is refused: DAL "
                                  "cannot lock a table across its shards; use a transaction on "
                                  "one user's rows")
                sharded.append(table)
        if not sharded:
            return _with(self._default_route(schema, "lock"), pin="lock_tables")
        return Plan(LOCAL, handler="ok", statement="lock")

    def _analyse_tree(self, tree: exp.Expression, text: str, schema: str | None,
                      admin: bool) -> Plan:
        if isinstance(tree, exp.Use):
            return Plan(LOCAL, handler="use", args=(tree.this.name,), statement="use")
        if isinstance(tree, exp.Set):
            return self._set(tree, text, schema)
        if isinstance(tree, exp.Show):
            return self._show(tree, text, schema)
        if isinstance(tree, exp.Describe):
            table = tree.this if isinstance(tree.this, exp.Table) else tree.find(exp.Table)
            if table is not None:
                return self._metadata_for_table(tree, table, schema, "describe")
        if isinstance(tree, exp.Transaction):
            return Plan(LOCAL, handler="begin", args=(text.strip().rstrip(";"),),
                        statement="transaction")
        if isinstance(tree, exp.Commit | exp.Rollback) and not tree.args.get("savepoint"):
            return _with(self._default_route(schema, statement="transaction"), handler="end",
                         anywhere=True)
        if isinstance(tree, DDL):
            return self._ddl(tree, schema, admin)
        if isinstance(tree, exp.Select) and (local := _session_functions(tree)) is not None:
            return local
        return self._dml(tree, schema)

    def _dml(self, tree: exp.Expression, schema: str | None) -> Plan:
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        statement = tree.key if isinstance(tree, (*WRITES, exp.Select)) else "other"
        write = isinstance(tree, WRITES)
        tables = []
        for table in tree.find_all(exp.Table):
            name = table.name
            if not name or (not table.db and (name in ctes or name.upper() == "DUAL")):
                continue
            resolved = self._resolve(table.db or None, name, schema)
            if isinstance(resolved, Plan):
                return resolved
            db, kind = resolved
            if kind in (TableKind.SHARDED, TableKind.BOUND) or (
                    kind is TableKind.BROADCAST and write):
                names = tuple(t.name for t in tree.find_all(exp.Table) if t.name)  # rate limits
                return _with(plan_sharded(self.config, db, self._key, statement), tables=names)
            tables.append(name)
        plan = self._default_route(schema, statement=statement)
        logical = info_schema.rewrite(tree, self.config, plan.instance, schema)  # type: ignore[arg-type]
        if logical is not None:
            tree = logical
        rewritten = _rewrite_session_functions(tree, schema)
        if rewritten is None and logical is not None:
            rewritten = mariadb_sql(tree)
        return _with(plan, sql=rewritten.encode("utf-8", "surrogateescape") if rewritten else None,
                     tables=tuple(tables), anywhere=not tables)

    def _resolve(self, db: str | None, name: str,
                 schema: str | None) -> tuple[str, TableKind] | Plan:
        if db is None:
            if schema is None:
                return refuse(*errors.NO_DATABASE, "No database selected")
            db = schema
        if db.lower() in SYSTEM_SCHEMAS:
            return db, TableKind.UNSHARDED
        if db not in self.config.databases:
            return refuse(*errors.BAD_DB, f"Unknown database '{db}'")
        return db, self._names[db].get(name, TableKind.UNSHARDED)

    def _default_route(self, schema: str | None, statement: str = "other") -> Plan:
        if schema is not None and schema in self.config.databases:
            db = self.config.databases[schema]
            return Plan(ROUTE, instance=db.default_instance, schema=db.default_database,
                        statement=statement)
        first = next(iter(self.config.databases.values()))
        return Plan(ROUTE, instance=first.default_instance,
                    schema=schema if schema else first.default_database, statement=statement)

    def _unparsed(self, text: str, schema: str | None, reason: str | None,
                  pin: str | None = None) -> Plan:
        if self._sharded_words is not None and (match := self._sharded_words.search(text)):
            why = f": {reason}" if reason else ""
            return refuse(*errors.NOT_SUPPORTED, f"DAL cannot route this statement: it names "
                          f"sharded or broadcast table '{match.group(1)}' and DAL cannot "
                          f"analyse it{why}")
        if _INFORMATION_SCHEMA.search(text):  # only its logical view, which needs a parse
            return refuse(*errors.NOT_SUPPORTED, "DAL shows information_schema only through "
                          "statements it can parse (its logical view); this one it cannot")
        return _with(self._default_route(schema), pin=pin)

    def _syntax_error(self, text: str, schema: str | None, position: int | None) -> Plan:
        """A statement DAL cannot parse: on unsharded tables the backend answers (its own
        1064); on sharded or broadcast ones DAL answers MariaDB's 1064 itself."""
        if ((self._sharded_words is not None and self._sharded_words.search(text))
                or _INFORMATION_SCHEMA.search(text)):  # its logical view needs a parse
            return refuse(*syntax.PARSE_ERROR, syntax.message(text, position))
        return self._default_route(schema)

    def _set(self, tree: exp.Set, text: str, schema: str | None) -> Plan:
        """Session variables to record and replay. ``SET v = <expression>`` (Connector/J's
        ``sql_mode = CONCAT(@@sql_mode, ...)``) is evaluated once on a backend with the
        session's state (the plan's args: (name, expression) pairs) and replayed as a
        literal, so it does not pin; an expression over user variables or a subquery pins."""
        assignments: list[tuple[str, str]] = []
        evaluate: list[tuple[str, str]] = []
        for item in tree.expressions:
            kind = (item.text("kind") or "").upper()
            if kind == "NAMES" or kind == "CHARACTER SET":
                charset = item.this.name if item.this is not None else _DEFAULT_CHARSET
                if charset.upper() == "DEFAULT":
                    charset = _DEFAULT_CHARSET
                if unsafe := unsafe_charset_refusal(charset):
                    return refuse(*BAD_CHARSET, unsafe)
                collate = item.args.get("collate")
                value = f"NAMES {charset}" + (f" COLLATE {collate.name}" if collate else "")
                assignments.append(("names", value))
                continue
            target = item.this
            if kind in ("SESSION", "LOCAL"):  # SET SESSION v = x: the session's, as SET v = x
                kind = ""
            if not isinstance(target, exp.EQ) or kind:
                if "SQL_MODE" in text.upper():
                    return refuse(*errors.NOT_SUPPORTED, _UNTRACKED_SQL_MODE)
                return _with(self._default_route(schema, "set"), pin="set_other")
            var, value = target.this, target.expression
            literal = isinstance(value, exp.Literal | exp.Null | exp.Boolean | exp.Var)
            if isinstance(var, exp.Parameter) or not (literal or _evaluable(value)):
                if "SQL_MODE" in text.upper():
                    return refuse(*errors.NOT_SUPPORTED, _UNTRACKED_SQL_MODE)
                return _with(self._default_route(schema, "set"), pin="set_expression")
            if isinstance(var, exp.SessionParameter):
                if (var.text("kind") or "session").lower() not in ("session", "local"):
                    # router/access.py refuses global settings before this; never forwarded
                    return refuse(*errors.ACCESS_DENIED, "Access denied; you need (at least "
                                  "one of) the SUPER privilege(s) for this operation (DAL: "
                                  "global settings belong to the backend's DBA)")
                name = var.name
            elif isinstance(var, exp.Column) and not var.table:
                name = var.name
            else:
                return _with(self._default_route(schema, "set"), pin="set_other")
            name = _RENAMED_VARIABLES.get(name.lower(), name.lower())
            if name == "sql_mode" and literal and not (
                    isinstance(value, exp.Var) or (isinstance(value, exp.Literal)
                                                   and value.is_string)):
                return refuse(*errors.NOT_SUPPORTED, "DAL reads sql_mode from its names (SET "
                              "sql_mode = 'STRICT_TRANS_TABLES,...'), not from a number or NULL")
            if name == "character_set_client" and (
                    unsafe := unsafe_charset_refusal(value.name if literal else "")):
                return refuse(*BAD_CHARSET, unsafe)
            if literal:
                assignments.append((name, f"@@session.{name}={value.sql(dialect='mysql')}"))
            else:  # evaluated once by the session on a backend, then replayed as a literal
                assignments.append((name, ""))
                evaluate.append((name, mariadb_sql(value)))
        return Plan(SET, assignments=tuple(assignments), args=tuple(evaluate), statement="set")

    def _show(self, tree: exp.Show, text: str, schema: str | None) -> Plan:
        what = (tree.name or "").upper()
        like = tree.args.get("like")
        like_value = like.name if isinstance(like, exp.Literal) else None
        if what in ("WARNINGS", "ERRORS"):
            return _with(self._default_route(schema, "show"), diagnostics=True, args=("list",),
                         anywhere=True)
        if what in ("DATABASES", "SCHEMAS"):
            return Plan(LOCAL, handler="show_databases", args=(like_value,), statement="show")
        if what == "TABLES":
            db = self._shown_database(tree, schema)
            if isinstance(db, Plan):
                return db
            if tree.args.get("where") is not None:
                return refuse(*errors.NOT_SUPPORTED, "SHOW TABLES ... WHERE is not supported "
                              "by DAL; use LIKE")
            return Plan(LOCAL, handler="show_tables",
                        args=(db, bool(tree.args.get("full")), like_value), statement="show")
        if what == "TABLE STATUS":
            return self._table_status(tree, text, schema)
        target = tree.args.get("target")
        if what in ("CREATE TABLE", "COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS") and target:
            table = exp.Table(this=exp.to_identifier(target.name),
                              db=exp.to_identifier(tree.text("db")) if tree.text("db") else None)
            return self._metadata_for_table(tree, table, schema, "show")
        return self._default_route(schema, "show")

    def _shown_database(self, tree: exp.Show, schema: str | None) -> str | Plan:
        """The logical database a SHOW [FROM db] lists; else its plan (a system schema goes to
        the default backend) or refusal."""
        db = tree.text("db") or schema
        if db is None:
            return refuse(*errors.NO_DATABASE, "No database selected")
        if db not in self.config.databases:
            if db.lower() in SYSTEM_SCHEMAS:
                return self._default_route(schema, "show")
            return refuse(*errors.BAD_DB, f"Unknown database '{db}'")
        return db

    def _table_status(self, tree: exp.Show, text: str, schema: str | None) -> Plan:
        """SHOW TABLE STATUS [FROM db] [LIKE ... | WHERE ...] of a logical database: answered
        by DAL (dal/table_status.py) from its default database and, for sharded and bound
        tables, from the first shard of the authoritative dimension."""
        db = self._shown_database(tree, schema)
        if isinstance(db, Plan):
            return db
        match = _TABLE_STATUS.match(text)
        tail = (match.group(1) or "") if match else ""
        return Plan(LOCAL, handler="table_status", args=(db, tail), statement="show", once=True)

    def _metadata_for_table(self, tree: exp.Expression, table: exp.Table, schema: str | None,
                            statement: str) -> Plan:
        resolved = self._resolve(table.db or None, table.name, schema)
        if isinstance(resolved, Plan):
            return resolved
        db, kind = resolved
        if kind not in (TableKind.SHARDED, TableKind.BOUND):
            return self._default_route(schema, statement)
        cfg = self.config.databases[db]
        dim = cfg.dimensions[cfg.authoritative]
        shard_db = dim.database(0)
        instance = self.config.shard_instance(db, cfg.authoritative, 0)
        rewritten = tree.copy()
        if isinstance(rewritten, exp.Show):
            rewritten.set("db", exp.to_identifier(shard_db))
        else:
            for node in rewritten.find_all(exp.Table):
                node.set("db", exp.to_identifier(shard_db))
        return Plan(ROUTE, instance=instance, schema=None,
                    sql=mariadb_sql(rewritten).encode(), statement=statement)

    def _ddl(self, tree: exp.Expression, schema: str | None, admin: bool) -> Plan:
        if not admin:
            return tagged(refuse(*errors.ACCESS_DENIED, "Access denied; you need (at least one "
                                 "of) the DAL admin privilege(s) for this operation (DDL is for "
                                 "admin users)"), "ddl")
        for table in tree.find_all(exp.Table):
            resolved = self._resolve(table.db or None, table.name, schema)
            if isinstance(resolved, Plan):
                return resolved
            if resolved[1] is not TableKind.UNSHARDED:
                return refuse(*errors.NOT_SUPPORTED, f"DDL on {resolved[1].value} table "
                              f"'{table.name}' must go through `dal schema apply`, which "
                              "reaches every shard")
        return self._default_route(schema, "ddl")


_KILL = re.compile(r"(?i)^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(CONNECTION\s+|QUERY\s+(?:ID\s+)?)?"
                   r"(\d+)\s*;?\s*$")
_GRANTS_FOR = re.compile(r"""(?is)\bFOR\s+(?:`([^`]*)`|'([^']*)'|"([^"]*)"|([\w$]+))""")


def _local_statement(words: list[str], text: str) -> Plan | None:
    """KILL, SHOW PROCESSLIST and SHOW GRANTS: answered by DAL for its own sessions and users
    (a backend would answer for its threads and DAL's backend account)."""
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
    if rest[0] == "GRANTS":
        target = None
        if len(rest) > 1 and rest[1] == "FOR" and rest[2:3] != ["CURRENT_USER"]:
            found = _GRANTS_FOR.search(text)
            target = next((g for g in found.groups() if g is not None), None) if found else None
        return Plan(LOCAL, handler="grants", args=(target,), statement="show", once=True)
    return None


_UNTRACKED_SQL_MODE = ("DAL must know the session's sql_mode to read its statements: set it to "
                       "names (SET sql_mode = '...') or to an expression without user "
                       "variables or subqueries")
_LEXER_VARIABLES = frozenset({"SQL_MODE", "NAMES", "CHARACTER", "CHARSET",
                              "CHARACTER_SET_CLIENT"})
_INFORMATION_SCHEMA = re.compile(r"(?i)information_schema")


def _has_executable(sql: bytes) -> bool:
    return b"/*!" in sql or b"/*M!" in sql or b"/*m!" in sql


def _untracked_set(words: list[str], route: Plan) -> Plan:
    """A SET DAL cannot parse into replayable state: it runs on a connection pinned to the
    session (never back in the pool with state DAL does not know), unless it changes how the
    backend reads statements (sql_mode, the client character set), which DAL must know to
    check them: that is refused."""
    if _LEXER_VARIABLES.intersection(words):
        return refuse(*errors.NOT_SUPPORTED, "DAL cannot read this SET of sql_mode or the "
                      "character set (inside an executable comment or in a form it does not "
                      "parse); write it as SET sql_mode = '...' or SET NAMES <charset>")
    return _with(route, pin="set_other")


def _evaluable(value: exp.Expression) -> bool:
    """A SET value DAL may evaluate once elsewhere: no user variable (its value lives on the
    session's connections), no subquery, no assignment."""
    return not any(isinstance(node, exp.Parameter | exp.Select | exp.Subquery | exp.PropertyEQ)
                   for node in value.walk())


def _split_top_level(items: str) -> list[str]:
    """A LOCK TABLES list split at its commas (none sits inside a quoted name)."""
    parts, depth, start = [], False, 0
    for i, c in enumerate(items):
        if c == "`":
            depth = not depth
        elif c == "," and not depth:
            parts.append(items[start:i])
            start = i + 1
    parts.append(items[start:])
    return parts


def _pin_reason(text: str) -> str | None:
    """Why ``text`` pins its session to one backend connection (`_PIN_PATTERNS`), if it does."""
    return next((reason for pattern, reason in _PIN_PATTERNS if pattern.search(text)), None)


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
        elif isinstance(node, exp.SessionParameter):
            function = _SESSION_VARIABLES.get(node.name.lower())
        if function is None:
            return None
        name = item.alias if isinstance(item, exp.Alias) else node.sql(dialect="mysql")
        columns.append((name, function))
    return Plan(LOCAL, handler="session_functions", args=tuple(columns), statement="select")


def _with(plan: Plan, **changes: object) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)


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
        if isinstance(node, exp.SessionParameter) and node.name.lower() in _RENAMED_VARIABLES:
            changed = True
            kind = node.text("kind")
            shown = f"@@{kind + '.' if kind else ''}{node.name}"
            new = exp.SessionParameter(this=exp.var(_RENAMED_VARIABLES[node.name.lower()]),
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
