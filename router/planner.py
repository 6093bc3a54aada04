"""Statement to plan: the plan cache in front, sqlglot analysis behind it on a miss.

The hot path of a repeated statement shape is `Router.plan` -> `PlanCache.get`: no sqlglot.
On a miss, `Router.analyse` reads the statement as the backend will (the access check,
executable comments expanded), answers what DAL answers from its words alone
(router/local_statements.py, router/lock_tables.py), parses it with sqlglot and plans the tree
by its kind (router/statement_kinds.py, with router/set_statement.py and router/show.py)
against the config's names (router/catalog.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from config.model import Config, TableKind
from router import errors, express, info_schema, syntax
from router.access import AccessPolicy, names_session_user, prepare_body, words_of
from router.catalog import SHARDED_KINDS, Catalog
from router.database_statements import database_statement
from router.engine.build import rooted
from router.express import Express
from router.fingerprint import Fingerprint, fingerprint_in_modes
from router.local_statements import local_statement
from router.lock_tables import plan_lock_tables
from router.migration import plan_migrated
from router.plan import LOCAL, MIGRATED, REFUSE, ROUTE, SET, SHARDED, Plan, refuse
from router.plan_cache import PlanCache
from router.rules import check_rules, tagged
from router.session_functions import calls_connection_id
from router.set_statement import untracked_set
from router.show import diagnostics_count, where_refusal
from router.sqltext import (
    NO_BACKSLASH_ESCAPES,
    expand_executable,
    security_text,
    statement_after_for,
)
from router.statement_kinds import plan_command, plan_statement
from router.user_databases import foreign_database

# MYSQL_VERSION_ID assumed for executable comments until the server learns the backend's.
DEFAULT_VERSION_ID = 101100

log = logging.getLogger(__name__)

# Statements that leave state on the backend connection which DAL cannot replay yet.
_PIN_PATTERNS = [
    (re.compile(r"(?i)\bGET_LOCK\s*\("), "get_lock"),
    (re.compile(r"(?i)^\s*LOCK\s+TABLES?\b"), "lock_tables"),
    (re.compile(r"(?i)^\s*FLUSH\s+TABLES\s+WITH\s+READ\s+LOCK"), "lock_tables"),
    (re.compile(r"(?i)\bCREATE\s+TEMPORARY\s+TABLE\b"), "temporary_table"),
    (re.compile(r"(?i)\bSQL_CALC_FOUND_ROWS\b"), "found_rows"),
    # Any := assigns a user variable (@a.b, @x$ and quoted names included), as INTO @v does.
    (re.compile(r"(?i):=|\bINTO\s*@|^\s*GET\s+(?:CURRENT\s+|STACKED\s+)?DIAGNOSTICS\b"),
     "user_variable"),
    (re.compile(r"(?i)^\s*(PREPARE|EXECUTE|DEALLOCATE)\b"), "text_prepare"),
    (re.compile(r"(?i)^\s*CALL\b"), "call"),
]
# LAST_INSERT_ID() DAL did not write as the session's value (a prepared statement's, or
# spelled with a comment inside): the connection's. LAST_INSERT_ID(expr) sets it: allowed.
_OWN_CONNECTION = re.compile(r"(?i)\b(FOUND_ROWS|ROW_COUNT)\s*\(|"
                             r"\b(LAST_INSERT_ID)\s*\(\s*\)|"
                             r"(@@(?:SESSION\.|LOCAL\.)?(?:LAST_INSERT_ID|IDENTITY|INSERT_ID|LAST_GTID)|"
                             r"\bGET\s+(?:CURRENT\s+|STACKED\s+)?DIAGNOSTICS|"
                             r"\bPREVIOUS\s+VALUE\s+FOR)\b|\b(LASTVAL|PREVIOUSVAL)\s*\(")
# sql_auto_is_null set to anything but a plain 0 (`0+1` is 1 too): the whole value is read.
_AUTO_IS_NULL = re.compile(r"\bSQL_AUTO_IS_NULL\s*:?=\s*(?=\S)"
                           r"(?!(?:0|OFF|FALSE|DEFAULT)\s*(?:[,;]|$|FOR\b))")
_REPLACE = re.compile(r"(?i)^\s*REPLACE(?=\s)")
# MariaDB runs the inside of /*! ... */ and /*M! ... */ by its version; DAL's scanner and
# sqlglot would skip it as a comment, so statements are planned from their expansion.
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!")
_START_TRANSACTION = re.compile(r"(?is)\s*START\s+TRANSACTION\b")
# information_schema tables of the logical view (router/info_schema.py), in security_text
_INFORMATION_SCHEMA_TABLE = re.compile(r"\bINFORMATION_SCHEMA\s*\.\s*(?:"
                                       + "|".join(info_schema.TABLES) + r")\b")
_SHAPED = (SHARDED, MIGRATED)  # plans made from the fingerprint key: cached with literals


class _Reading(NamedTuple):
    """A statement as the planner reads it: its text (executable comments expanded), that
    text's `security_text` and words, and the fingerprint key a plan for it is built from
    (None: literals inside a run executable comment, sent as written)."""

    text: str
    code: str
    words: list[str]
    key: bytes | None


class Router:
    """Plans statements for one config generation."""

    def __init__(self, config: Config, capacity: int = 5000) -> None:
        self.config = config
        self.rules = config.rules
        self.cache: PlanCache[Plan] = PlanCache(capacity)
        # Statement heads before a trailing integer -> their express route (router/express.py).
        self.express: dict[bytes, Express] = {}
        # The backend's MYSQL_VERSION_ID, for executable comments (set by dal/server.py).
        self.version_id = DEFAULT_VERSION_ID
        self.mariadb = True  # MySQL reads /*M! as a plain comment and runs 5.7+ versions
        self.parses = 0  # sqlglot calls, counted so that tests can assert the hot path skips it
        self.access = AccessPolicy([dim.prefix for cfg in config.databases.values()
                                    for dim in cfg.dimensions.values()])
        self.catalog = Catalog(config)
        # Live migrations (router/migration.py): which databases have one, and the phase of
        # each as DAL's phase watcher last applied it (`set_phase`).
        self.migrating = any(cfg.migration is not None for cfg in config.databases.values())
        self.phases: dict[str, str] = {}
        self.generation = 0  # cache drops (`databases_changed`)

    def plan(self, sql: bytes, fp: Fingerprint, schema: str | None, admin: bool,
             modes: int = 0, original: bytes | None = None,
             databases: frozenset[str] | None = None) -> Plan:
        """The plan for a statement, from the cache when its shape was seen before.

        ``modes`` are the session's lexer modes (router/sqltext.py): a statement read under
        NO_BACKSLASH_ESCAPES or ANSI_QUOTES is planned and cached apart. ``original``: the
        client's text when ``sql`` is its `expand` (the access check reads the original, every
        executable comment included, whatever its version). ``databases``: the logical
        databases of a user with a `databases:` list (a statement that names another is
        refused, 1044; planned and cached apart), None for every other user."""
        plan = self.original_refusal(original, modes, admin) if original is not None else None
        if plan is None:
            plan = self.cached(fp, schema, admin, modes, databases)
        if plan is None:
            plan = self.keep(sql, fp, schema, admin, modes, databases,
                             self.analysed(sql, fp, schema, admin, modes, databases))
        return plan

    def original_refusal(self, original: bytes, modes: int, admin: bool) -> Plan | None:
        """The access check's refusal of the client's text ``original`` (every executable
        comment in it included, whatever its version), else None. It only reads: the
        planner thread may run it."""
        denial = self.access.check(original.decode("utf-8", "surrogateescape"), modes, admin)
        return None if denial is None else rooted(tagged(refuse(*denial.error), denial.rule))

    def cached(self, fp: Fingerprint, schema: str | None, admin: bool, modes: int = 0,
               databases: frozenset[str] | None = None) -> Plan | None:
        """The cached plan of the statement's shape, else None (on the event loop only: the
        cache is not thread-safe). Arguments as for `plan`."""
        return self.cache.get(_cache_key(fp, schema, admin, modes, databases))

    def analysed(self, sql: bytes, fp: Fingerprint, schema: str | None, admin: bool,
                 modes: int = 0, databases: frozenset[str] | None = None) -> Plan:
        """A statement's plan made afresh, its tree built: it reads the router and changes
        nothing, so the planner thread (dal/session/planning.py) may run it. A statement
        nested deeper than Python's recursion limit is refused (1235), not failed."""
        try:
            return rooted(self.analyse(sql, schema, admin, fp.key, modes, databases))
        except RecursionError:
            return rooted(replace(refuse(*errors.NOT_SUPPORTED, "the statement nests deeper "
                                         "than DAL's SQL parser can follow (a long OR chain "
                                         "or deep parentheses): write a long OR chain of "
                                         "one column as IN (...), or split the statement"),
                                  once=True))

    def keep(self, sql: bytes, fp: Fingerprint, schema: str | None, admin: bool, modes: int,
             databases: frozenset[str] | None, plan: Plan) -> Plan:
        """``plan``, from `analysed`, kept in the plan cache when its shape can serve the
        statements that follow (on the event loop only: the cache is not thread-safe)."""
        # A rule's refusal depends on the shape alone: cached, so a hit skips the rules.
        # A statement with an executable comment is planned for its own text only: the
        # scanner's key cannot tell what the comment runs (or skips) from its literals.
        if not plan.once and not _has_executable(sql) and (
                plan.passthrough or not fp.literals or plan.kind in _SHAPED
                or plan.rule is not None):
            self.cache.put(_cache_key(fp, schema, admin, modes, databases), plan)
        return plan

    def set_phase(self, db: str, phase: str) -> None:
        """Plan ``db``'s migrated tables for ``phase`` from now on; cached plans are dropped,
        so that no tree of the old phase serves a statement after the switch."""
        if self.phases.get(db) != phase:
            self.phases[db] = phase
            self.databases_changed()

    def set_rules(self, rules: object) -> None:
        """New statement rules (config.protection.RulesConfig); cached plans are dropped."""
        self.rules = rules  # type: ignore[assignment]
        self.databases_changed()

    def databases_changed(self) -> None:
        """Drop every cached plan: the config's logical databases changed (an admin's
        CREATE/DROP DATABASE), or its rules, or a live migration's phase. ``generation``
        counts the drops: a plan made off the loop across one is made again
        (dal/session/planning.py)."""
        self.generation += 1
        self.cache.clear()
        self.express.clear()
        self.catalog.homes.clear()

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
        return self.catalog.default_route(schema)

    def field_list_target(self, schema: str, table: str) -> Plan:
        """Where COM_FIELD_LIST for ``table`` is answered: the default database, or the first
        shard of the authoritative dimension for a sharded table."""
        kind = self.catalog.kinds.get(schema, {}).get(table)
        if schema not in self.config.databases or kind not in SHARDED_KINDS:
            return self.catalog.default_route(schema)
        instance, shard_db = self.catalog.shard_zero(schema)
        return Plan(ROUTE, instance=instance, schema=shard_db)

    def logical_tables(self, db: str) -> dict[str, str]:
        """The tables the config names for ``db`` (sharded, bound, broadcast), as BASE TABLEs."""
        return {name: "BASE TABLE" for name, kind in self.catalog.kinds.get(db, {}).items()
                if kind is not TableKind.UNSHARDED}

    # -- analysis (cache misses only) --------------------------------------------------------

    def analyse(self, sql: bytes, schema: str | None, admin: bool,
                key: bytes | None = None, modes: int = 0,
                databases: frozenset[str] | None = None) -> Plan:
        """Plan one statement with sqlglot. Never raises: a failure is a refusal plan.

        Statements on sharded tables are planned from the fingerprint ``key`` (literals as
        slots), so that the plan serves every statement of that shape. ``databases``: as for
        `plan`."""
        reading = self._read(sql.decode("utf-8", "surrogateescape"), schema, admin, modes,
                             key if key is not None else sql)
        if isinstance(reading, Plan):
            return reading
        text, code, words, key = reading
        catalog = self.catalog
        if databases is not None:
            forbidden = {name.upper(): name for name in self.config.databases
                         if name not in databases}
            denial = foreign_database(code, forbidden)
            if denial is not None:
                return tagged(refuse(*denial.error), denial.rule)
            catalog = catalog.restricted(databases)
        carried = _carried_statement(text, words, modes)
        if carried is not None:
            refusal = self._carried_refusal(carried, schema, admin, modes, databases)
            if refusal is not None:
                return refusal
        if key is None:  # literals inside a run executable comment: sent as written
            return self._carried_refusal(
                ("an executable comment (/*! ... */) that holds literals, in a prepared "
                 "statement or a multi-statement batch,", text), schema, admin, modes,
                databases) or catalog.unparsed(
                    text, schema, "it holds an executable comment (/*! ... */) that holds "
                    "literals, sent in a prepared statement or a multi-statement batch",
                    _pin_reason(text, code))
        plan = self._plan_read(catalog, text, code, words, key, schema, admin, modes)
        if (plan.kind == ROUTE and plan.sql is None
                and _INFORMATION_SCHEMA_TABLE.search(code) is not None):
            # Sent as written, it would read the backend's whole information_schema (every
            # shard database, dal_meta) instead of the logical view (a pinned SET's subquery,
            # a SHOW ... WHERE).
            return refuse(*errors.NOT_SUPPORTED, "DAL shows information_schema only through "
                          "its logical view, in a SELECT of its own (SELECT ... FROM "
                          "information_schema.<table>); this statement would send it as "
                          "written")
        return plan

    def _carried_refusal(self, carried: tuple[str, str], schema: str | None, admin: bool,
                         modes: int, databases: frozenset[str] | None) -> Plan | None:
        """A statement that carries another (``carried``: what carries it, the carried text)
        is sent to the backend as written, carried statement and all: refused unless the
        carried one, planned on its own, would be sent as written too. USE, KILL, SHOW
        PROCESSLIST, a SET DAL tracks, information_schema, a sharded or broadcast table or
        a session function would otherwise reach the backend unseen by DAL."""
        what, inner = carried
        plan = self.analyse(inner.encode("utf-8", "surrogateescape"), schema, admin, None,
                            modes, databases)
        if plan.kind == REFUSE:  # for this text only: the carrier's key hides the statement
            return replace(plan, once=True)
        if plan.kind == ROUTE and plan.sql is None and plan.handler is None and not (
                plan.diagnostics):
            return None
        return replace(refuse(*errors.NOT_SUPPORTED, f"{what} is sent to the backend as "
                              "written, and DAL routes, rewrites, tracks or answers the "
                              "statement it carries itself (USE, KILL, SHOW PROCESSLIST, a "
                              "tracked SET, information_schema, a sharded or broadcast table, "
                              "a session function): send that statement on its own"),
                       once=True)

    def _plan_read(self, catalog: Catalog, text: str, code: str, words: list[str], key: bytes,
                   schema: str | None, admin: bool, modes: int) -> Plan:
        """`analyse` of a statement read and checked: DAL's own answers, else sqlglot."""
        if words[:1] == ["SHOW"] and (refusal := where_refusal(text)) is not None:
            return refusal  # parsed or not, its WHERE runs on a shared connection
        local = local_statement(words, text) or database_statement(words, text)
        if local is not None:
            return local
        self.parses += 1
        lock = plan_lock_tables(catalog, text, schema)
        if lock is not None:
            return lock
        # REPLACE routes like INSERT; sqlglot's MySQL dialect only parses the latter.
        parsed = _REPLACE.sub("INSERT", text, count=1) if _REPLACE.match(text) else text
        tree = self._parse(parsed, text, schema)
        if isinstance(tree, Plan):  # routed as written when sqlglot cannot read it: pinned too
            return _connection_needs(tree, text, code, _pin_reason(text, code))
        count = diagnostics_count(catalog, text, schema)
        if count is not None:
            return count
        pin = _pin_reason(text, code)
        if isinstance(tree, exp.Command):
            return _connection_needs(plan_command(catalog, words, text, schema, pin), text, code,
                                     pin)
        plan = check_rules(self.rules, tree,
                           plan_statement(catalog, tree, text, schema, admin, key), admin)
        if self.migrating:  # a live migration's tables (router/migration.py)
            plan = plan_migrated(self.config, tree, key, schema, plan, self.phases)
            if plan.kind == MIGRATED and modes:
                # The legacy side runs the statement, with the client's literals, on DAL's
                # own connections, which read text in the default sql_mode, as do the copies.
                return refuse(*errors.NOT_SUPPORTED, "statements on the tables of a live "
                              "migration run in the default sql_mode's reading: set sql_mode "
                              "without ANSI_QUOTES and NO_BACKSLASH_ESCAPES for them")
        if parsed is not text and plan.sql is not None and plan.sql.startswith(b"INSERT"):
            plan = replace(plan, sql=b"REPLACE" + plan.sql[len(b"INSERT"):])
        if (modes & NO_BACKSLASH_ESCAPES and "\\" in text
                and (plan.sql is not None or plan.kind in _SHAPED)):
            # sqlglot reads backslashes as escapes whatever the sql_mode: SQL built from its
            # tree would not be the text the checks read (`'\' AS a ', <code>, '\'` is two
            # strings around code to the backend, one string to sqlglot).
            return refuse(*errors.NOT_SUPPORTED, "DAL rewrites this statement (a sharded "
                          "table, information_schema, DATABASE()) and cannot under "
                          "NO_BACKSLASH_ESCAPES with a backslash in it: its parser reads "
                          "backslashes as escapes; send it without NO_BACKSLASH_ESCAPES")
        return _connection_needs(plan, text, code, pin)

    def _read(self, text: str, schema: str | None, admin: bool, modes: int,
              key: bytes) -> _Reading | Plan:
        """``text`` checked by the access policy and, with executable comments, read as the
        backend reads them; a refusal (or, for a reading DAL cannot plan from, a route)
        otherwise."""
        code = security_text(text, modes)
        denial = self.access.check_code(code, text, modes, admin)
        words = words_of(code)
        if denial is None and _EXECUTABLE_COMMENT.search(text):
            return self._read_executable(text, schema, admin, modes)
        if denial is not None:
            # PREPARE's verdict depends on its literal body: planned for this text only.
            return replace(tagged(refuse(*denial.error), denial.rule),
                           once=words[:1] == ["PREPARE"])
        return _Reading(text, code, words, key)

    def _read_executable(self, text: str, schema: str | None, admin: bool,
                         modes: int) -> _Reading | Plan:
        """A statement with executable comments, read and checked again as the backend reads
        it (run or skipped by version)."""
        read = expand_executable(text, modes, self.version_id, self.mariadb)
        if read is None:
            return replace(refuse(*errors.NOT_SUPPORTED, "DAL cannot read this executable "
                                  "comment (/*! ... */): it is unterminated"), once=True)
        # Checked again as the backend reads it, whether or not the plan can use that
        # reading: `/*!99999 SELECT */ SHUTDOWN` passed the check above as a SELECT.
        code = security_text(read, modes)
        denial = self.access.check_code(code, read, modes, admin)
        words = words_of(code)
        if denial is not None:
            return replace(tagged(refuse(*denial.error), denial.rule), once=True)
        key = _slots_key(text, read, modes)
        if key is None and words[:1] == ["SET"]:
            return untracked_set(words, self.catalog.default_route(schema, "set"))
        return _Reading(read, code, words, key)  # key None: planned for this text only

    def _parse(self, parsed: str, text: str, schema: str | None) -> exp.Expression | Plan:
        """The one statement sqlglot reads in ``parsed`` (``text``, REPLACE read as INSERT);
        else the plan of a statement it cannot read."""
        try:
            trees = [t for t in sqlglot.parse(parsed, dialect="mysql") if t is not None]
        except (ParseError, TokenError) as exc:
            if _START_TRANSACTION.match(text):  # ... WITH CONSISTENT SNAPSHOT, READ ONLY
                return Plan(LOCAL, handler="begin", args=(text.strip().rstrip(";"),),
                            statement="transaction")
            position = syntax.error_position(parsed, exc)
            if position is not None and parsed is not text:
                position += len(text) - len(parsed)  # REPLACE is one longer than INSERT
            return self.catalog.syntax_error(text, schema, position)
        except RecursionError:
            return self.catalog.unparsed(text, schema, "it nests deeper than its SQL parser "
                                         "follows (deep parentheses)")
        except Exception:  # sqlglot bugs must not crash a session
            log.warning("sqlglot failed on %r", text[:200], exc_info=True)
            return self.catalog.unparsed(text, schema, "its SQL parser failed (see the DAL log)")
        if len(trees) != 1:
            return self.catalog.unparsed(text, schema, "more than one statement")
        tree = trees[0]
        if isinstance(tree, exp.Select) and not tree.expressions:  # bare SELECT, SELECT FROM t
            head = re.match(r"\s*\w+\s*", text)
            return self.catalog.syntax_error(text, schema, head.end() if head else None)
        return tree


def _carried_statement(text: str, words: list[str], modes: int) -> tuple[str, str] | None:
    """(what carries it, the statement) for PREPARE name FROM '<statement>' and SET STATEMENT
    ... FOR <statement>; None for any other statement."""
    if words[:1] == ["PREPARE"]:
        body = prepare_body(text, modes)
        return None if body is None else ("PREPARE ... FROM '<statement>'", body)
    if words[:2] == ["SET", "STATEMENT"]:
        found = statement_after_for(text, modes)
        return None if found is None else ("SET STATEMENT ... FOR", text[found[1]:])
    return None


def _cache_key(fp: Fingerprint, schema: str | None, admin: bool, modes: int,
               databases: frozenset[str] | None) -> tuple:
    key = (fp.key, schema, admin, modes) if modes else (fp.key, schema, admin)
    return key if databases is None else (*key, databases)


def _slots_key(text: str, expanded: str, modes: int) -> bytes | None:
    """For a statement that reached the planner unexpanded (prepared, or in a batch): the key
    of its ``expanded`` reading, to plan from, when a plan built from it serves the caller's
    literal slots (no literal inside a run comment); else None."""
    before = fingerprint_in_modes(text.encode("utf-8", "surrogateescape"), modes)
    after = fingerprint_in_modes(expanded.encode("utf-8", "surrogateescape"), modes)
    if len(before.literals) != len(after.literals) or before.groups != after.groups:
        return None
    return after.key


def _connection_needs(plan: Plan, text: str, code: str, pin: str | None) -> Plan:
    """A route marked with what it needs of its backend connection: pinned to the session's
    (``pin``), or the session's own for FOUND_ROWS()/ROW_COUNT() (read in the text and in
    its security ``code``, where comments are spaces). A SET whose values DAL evaluates on a
    shared connection may not read or leave its state (a lock, an id)."""
    own = _OWN_CONNECTION.search(text) or _OWN_CONNECTION.search(code)
    if plan.handler != "session_functions" and plan.kind != REFUSE and names_session_user(code):
        return refuse(*errors.NOT_SUPPORTED, "DAL answers CURRENT_USER(), USER() and "
                      "SESSION_USER() only on their own (SELECT CURRENT_USER()); inside "
                      "another statement the backend would name DAL's own account")
    # CONNECTION_ID() where DAL did not write the session's id (a spelling it does not
    # rewrite, `CONNECTION_ID(/**/)`): the backend connection's thread id would answer.
    if (plan.handler != "session_functions" and plan.kind != REFUSE
            and "CONNECTION_ID" in code and calls_connection_id(text)):
        return refuse(*errors.NOT_SUPPORTED, "CONNECTION_ID() would give the backend "
                      "connection's thread id here: DAL writes the session's id into "
                      "statements that start with SELECT, INSERT, UPDATE, DELETE, REPLACE, DO, "
                      "SET, CALL, WITH or VALUES, with nothing inside the parentheses; or ask "
                      "SELECT CONNECTION_ID() on its own")
    if _AUTO_IS_NULL.search(code):
        return refuse(*errors.NOT_SUPPORTED, "sql_auto_is_null makes `WHERE id IS NULL` read "
                      "the backend connection's last insert, which on DAL's shared "
                      "connections is another session's: only 0 (OFF) is taken")
    if plan.kind == SET and plan.args and (pin or own):
        return refuse(*errors.NOT_SUPPORTED, "DAL evaluates this SET's values on a shared "
                      "backend connection, where GET_LOCK() would stay held and "
                      "@@last_insert_id, ROW_COUNT() or FOUND_ROWS() belong to another "
                      "session: compute the value in a SELECT first")
    if pin and plan.kind == ROUTE:
        plan = replace(plan, pin=pin)
    if own and plan.kind in _SHAPED:  # each shard's connection would answer for itself
        return refuse(*errors.NOT_SUPPORTED, "LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS() and "
                      "the like are written as the session's values into text statements; in "
                      "a prepared statement on a sharded table the shards' connections would "
                      "answer: pass the value as a parameter")
    if plan.kind == ROUTE and own:
        function = own.group(1) or own.group(2) or own.group(4)
        name = f"{function.upper()}()" if function else own.group(3).upper()
        plan = replace(plan, own_connection=name, anywhere=True)
    return plan


def _has_executable(sql: bytes) -> bool:
    return b"/*!" in sql or b"/*M!" in sql or b"/*m!" in sql


def _pin_reason(text: str, code: str) -> str | None:
    """Why ``text`` pins its session to one backend connection (`_PIN_PATTERNS`), if it does.

    Read in the text as sent and in its security ``code`` too, where comments are spaces:
    `@v /**/ :=`, `INTO /**/ @v` and `GET_LOCK/**/(` leave state on the connection as much as
    their plain spellings, and an unpinned connection goes back to the pool unreset."""
    return next((reason for pattern, reason in _PIN_PATTERNS
                 if pattern.search(text) or pattern.search(code)), None)
