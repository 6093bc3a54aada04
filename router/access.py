"""Who may run what: each role's statement allowlist (DESIGN.md, "Security model").

Decided from the statement as MariaDB reads it (router/sqltext.py: strings blanked, every
executable comment's body included, the session's NO_BACKSLASH_ESCAPES/ANSI_QUOTES applied),
before any routing. A statement class that is not on a role's list is refused; nothing is
forwarded on the grounds that DAL did not recognise it.

- ``app``: reads and writes (SELECT, INSERT, REPLACE, UPDATE, DELETE, DO, CALL), metadata
  (SHOW of the kinds below, DESCRIBE, EXPLAIN), session SETs, USE, transactions, LOCK/UNLOCK
  TABLES, prepared statements (a text PREPARE's body is checked as a statement of its own), and
  KILL of its own sessions (answered by DAL).
- ``admin``: the same, plus DDL on tables, indexes, views, routines, triggers and sequences
  (the planner keeps it off sharded and broadcast tables), table maintenance, and CREATE/DROP
  DATABASE (unsharded logical databases DAL creates itself: dal/created_databases.py).
- Nobody: server administration (SHUTDOWN, FLUSH, RESET, PURGE, replication, plugins), users,
  roles and grants, global or binlog settings, file access (LOAD_FILE, INTO OUTFILE/DUMPFILE,
  LOAD DATA/XML), the system schemas mysql/performance_schema/sys, physical shard databases,
  ALTER DATABASE, events, and XA statements (DAL runs XA itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router import errors, syntax
from router.fingerprint import unquote_string
from router.sqltext import (
    AMBIGUOUS_DASH,
    NO_BACKSLASH_ESCAPES,
    security_text,
    statement_after_for,
    string_end,
)

_WORD = re.compile(r"@@[\w$.]+|@[\w$.]+|[A-Z_$0-9][\w$]*")
_LOAD_FILE = re.compile(r"\bLOAD_FILE\s*\(")
_FOR_CONNECTION = re.compile(r"\bFOR\s+CONNECTION\b")
_STRING_DOT = re.compile(r"''[\s\udca0]*\.(?!\d)|(?<!\d)\.[\s\udca0]*''")
_INTO_FILE = re.compile(r"\bINTO\s+(OUTFILE|DUMPFILE)\b")
# The backend's system schemas, and DAL's own control tables (worker leases, ...).
_SYSTEM_QUALIFIED = re.compile(r"\b(MYSQL|PERFORMANCE_SCHEMA|SYS|DAL_META)\s*\.\s*[\w$*]")
_SYSTEM_NAMED = re.compile(r"\b(?:FROM|IN|USE|DATABASE|SCHEMA|DATABASES|SCHEMAS)\s+"
                           r"(MYSQL|PERFORMANCE_SCHEMA|SYS|DAL_META)\b")
# Statements that name a database without a dot after it (SHOW TABLES FROM mysql, USE sys).
_NAMES_DATABASES = frozenset({"SHOW", "USE", "CREATE", "DROP", "ALTER"})
_INFO_TABLE = re.compile(r"\bINFORMATION_SCHEMA\s*\.\s*([\w$]+)")
_SESSION_USER_FUNCTIONS = re.compile(r"\b(CURRENT_USER|SESSION_USER|SYSTEM_USER|USER|"
                                     r"CURRENT_ROLE)\s*(\(\s*\))?")
_GLOBAL_SCOPE = re.compile(r"@@(GLOBAL|PERSIST|PERSIST_ONLY)\.|\b(GLOBAL|PERSIST|PERSIST_ONLY)"
                           r"\s+[\w$]")
_ASSIGNED = re.compile(r"(?<![@\w$])(?:@@(?:SESSION|LOCAL)\.|@@|\b(?:SESSION|LOCAL)\s+)?"
                       r"([A-Z_][\w$]*)\s*:?=")

# information_schema tables an application may read: DAL answers them for the logical view
# (router/info_schema.py) or they hold nothing about the backend's databases and accounts.
INFO_TABLES = frozenset({
    "SCHEMATA", "TABLES", "COLUMNS", "STATISTICS", "KEY_COLUMN_USAGE", "TABLE_CONSTRAINTS",
    "REFERENTIAL_CONSTRAINTS", "CHECK_CONSTRAINTS", "VIEWS", "ROUTINES", "PARAMETERS",
    "TRIGGERS", "PARTITIONS", "COLLATIONS", "CHARACTER_SETS",
    "COLLATION_CHARACTER_SET_APPLICABILITY", "ENGINES", "KEYWORDS", "SQL_FUNCTIONS",
    "SESSION_VARIABLES", "SESSION_STATUS", "PLUGINS",
    "FILES",  # always empty on MariaDB (a stub kept for NDB); mariadb-dump reads it
})

_READ_WRITE = frozenset({"SELECT", "WITH", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE",
                         "DO", "CALL"})
_METADATA = frozenset({"DESCRIBE", "DESC", "EXPLAIN"})
_TRANSACTION = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_PREPARED = frozenset({"EXECUTE", "DEALLOCATE"})
_DDL = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"})
_MAINTENANCE = frozenset({"OPTIMIZE", "REPAIR", "CHECK", "ANALYZE", "CHECKSUM"})
# Objects an admin may create, alter or drop (on unsharded tables: the planner checks those).
_ADMIN_OBJECTS = frozenset({"TABLE", "INDEX", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER",
                            "SEQUENCE"})
_CREATE_MODIFIERS = frozenset({"OR", "REPLACE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL",
                               "ONLINE", "OFFLINE", "IGNORE", "AGGREGATE", "SQL", "SECURITY",
                               "DEFINER", "INVOKER", "ALGORITHM", "UNDEFINED", "MERGE",
                               "TEMPTABLE", "CURRENT_USER", "IF", "NOT", "EXISTS"})
# Not PROFILE(S): the profiling history stays on a pooled connection, another session's.
_SHOW_ALLOWED = frozenset({
    "TABLES", "DATABASES", "SCHEMAS", "COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS",
    "TABLE", "WARNINGS", "ERRORS", "COUNT", "VARIABLES", "STATUS", "COLLATION", "CHARACTER",
    "CHARSET", "ENGINES", "STORAGE", "PLUGINS", "PRIVILEGES", "PROCESSLIST", "GRANTS",
    "TRIGGERS", "PROCEDURE", "FUNCTION", "AUTHORS", "CONTRIBUTORS", "CREATE",
})
# Session variables that change how the backend reads statement text.
READING_VARIABLES = frozenset({"SQL_MODE", "NAMES", "CHARACTER", "CHARSET",
                                "CHARACTER_SET_CLIENT", "CHARACTER_SET_CONNECTION",
                                "COLLATION_CONNECTION"})
_SHOW_CREATE_ALLOWED = frozenset({"TABLE", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER",
                                  "SEQUENCE", "DATABASE", "SCHEMA"})
_SHOW_SKIP = frozenset({"FULL", "GLOBAL", "SESSION", "LOCAL", "EXTENDED"})
# Session variables whose SET needs SUPER or a replication privilege on MariaDB, or that
# would break DAL's own tracking of its backend connections.
_PRIVILEGED_VARIABLES = frozenset({"SQL_LOG_BIN", "SQL_LOG_OFF", "SQL_LOG_UPDATE",
                                   "PSEUDO_THREAD_ID", "PSEUDO_SLAVE_MODE", "SERVER_ID",
                                   "SKIP_REPLICATION", "SQL_SLAVE_SKIP_COUNTER",
                                   "DEFAULT_MASTER_CONNECTION", "PROFILING",
                                   "PROFILING_HISTORY_SIZE"})
_PRIVILEGED_PREFIXES = ("BINLOG_", "GTID_", "WSREP_", "SLAVE_", "REPLICA_", "DEBUG",
                        "SESSION_TRACK_", "MASTER_", "RPL_")
# Privilege MariaDB names for a statement an application may never run, by its first word.
_PRIVILEGE = {"SHUTDOWN": "SHUTDOWN", "RESTART": "SHUTDOWN", "GRANT": "GRANT OPTION",
              "REVOKE": "GRANT OPTION", "FLUSH": "RELOAD", "RESET": "RELOAD",
              "PURGE": "BINLOG ADMIN", "CHANGE": "REPLICATION SLAVE ADMIN",
              "STOP": "REPLICATION SLAVE ADMIN", "START": "REPLICATION SLAVE ADMIN",
              "LOAD": "FILE", "BINLOG": "BINLOG REPLAY", "INSTALL": "SUPER",
              "UNINSTALL": "SUPER", "CACHE": "SUPER", "BACKUP": "RELOAD"}


# Every word a MariaDB 10.11 statement can start with; another first word is a syntax error.
_STATEMENT_WORDS = frozenset({
    "ALTER", "ANALYZE", "BACKUP", "BEGIN", "BINLOG", "CACHE", "CALL", "CASE", "CHANGE",
    "CHECK", "CHECKSUM", "CLOSE", "COMMIT", "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DESC",
    "DESCRIBE", "DO", "DROP", "EXECUTE", "EXPLAIN", "FETCH", "FLUSH", "FOR", "GET", "GRANT",
    "HANDLER", "HELP", "IF", "INSERT", "INSTALL", "ITERATE", "KILL", "LEAVE", "LOAD", "LOCK",
    "LOOP", "OPEN", "OPTIMIZE", "PREPARE", "PURGE", "RELEASE", "RENAME", "REPAIR", "REPEAT",
    "REPLACE", "RESET", "RESIGNAL", "RESTART", "RETURN", "REVOKE", "ROLLBACK", "SAVEPOINT",
    "SELECT", "SET", "SHOW", "SHUTDOWN", "SIGNAL", "START", "STOP", "TABLE", "TRUNCATE",
    "UNINSTALL", "UNLOCK", "UPDATE", "USE", "VALUES", "WHILE", "WITH", "XA"})
# Compound statements MariaDB runs outside stored programs; their bodies would be unchecked.
_COMPOUND = frozenset({"CASE", "IF", "LOOP", "REPEAT", "WHILE", "FOR", "DECLARE", "ITERATE",
                       "LEAVE", "RETURN", "OPEN", "FETCH", "CLOSE"})
_LABEL = re.compile(r"\s*[\w$]+\s*:(?!=)")

# Statement classes every role may run without further checks: first word -> the second words
# that make it one of them (None: any). KILL is answered by DAL for its own connection ids
# (dal/sessions_view.py).
_ALLOWED: dict[str, frozenset[str] | None] = {
    **dict.fromkeys(_READ_WRITE | _TRANSACTION | _PREPARED | _METADATA | {"USE", "KILL"}),
    "LOCK": frozenset({"TABLE", "TABLES"}),
    "UNLOCK": frozenset({"TABLE", "TABLES"}),
    "START": frozenset({"TRANSACTION"}),
    "GET": frozenset({"DIAGNOSTICS", "CURRENT", "STACKED"}),
    "DROP": frozenset({"PREPARE"}),
    "ANALYZE": frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "FORMAT", "WITH"}),
}
_NEVER: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a statement is refused: (code, SQLSTATE, message) and the rule counted for it."""

    code: int
    sqlstate: str
    message: str
    rule: str | None = "privilege"

    @property
    def error(self) -> tuple[int, str, str]:
        return self.code, self.sqlstate, self.message


def _privilege(privilege: str, what: str) -> Denial:
    return Denial(*errors.ACCESS_DENIED, f"Access denied; you need (at least one of) the "
                  f"{privilege} privilege(s) for this operation (DAL: {what})")


def _not_supported(what: str) -> Denial:
    return Denial(*errors.NOT_SUPPORTED, f"DAL does not run {what}")


def _unchecked_form(text: str, sql: str, verb: str, nxt: str) -> Denial | None:
    """Statements DAL cannot check: compound statements outside stored routines, EXECUTE
    IMMEDIATE, and (a syntax error) a first word no statement starts with."""
    if (verb in _COMPOUND or (verb == "BEGIN" and nxt == "NOT")
            or _LABEL.match(text)):
        return _not_supported("compound statements (BEGIN NOT ATOMIC, IF, CASE, LOOP, "
                              "REPEAT, WHILE, FOR, labels) outside stored routines: "
                              "create a procedure and CALL it")
    if verb not in _STATEMENT_WORDS:
        start = sql.upper().find(verb)  # near the word no statement starts with
        return Denial(*errors.PARSE_ERROR, syntax.message(sql, start if start >= 0 else None),
                      rule=None)
    if verb == "EXECUTE" and nxt == "IMMEDIATE":
        return _not_supported("EXECUTE IMMEDIATE: DAL cannot check a statement it cannot "
                              "see; use server-side prepared statements")
    return None


class AccessPolicy:
    """The allowlist of one config generation: ``check`` a statement for a role."""

    def __init__(self, shard_prefixes: list[str]) -> None:
        prefixes = "|".join(re.escape(p.upper()) for p in sorted(set(shard_prefixes)))
        self._shard_db = re.compile(rf"\b((?:{prefixes})\d+)\b") if prefixes else None

    def check(self, sql: str, modes: int, admin: bool) -> Denial | None:
        """None when the role may run ``sql``; else the refusal."""
        return self.check_code(security_text(sql, modes), sql, modes, admin)

    def check_code(self, text: str, sql: str, modes: int, admin: bool) -> Denial | None:
        """None when the role may run the statement whose `security_text` is ``text`` (``sql``
        as sent); else the refusal."""
        words = _WORD.findall(text)
        if not words:
            return None  # empty or only comments: the backend answers as MariaDB does
        verb = words[0]
        nxt = words[1] if len(words) > 1 else ""
        denial = self._everywhere(text, verb)
        if denial is None:
            denial = _unchecked_form(text, sql, verb, nxt)
        if denial is not None:
            return denial
        allowed = _ALLOWED.get(verb, _NEVER)
        if allowed is None or nxt in allowed:
            return None
        return self._by_verb(text, sql, words, modes, admin)

    def _by_verb(self, text: str, sql: str, words: list[str], modes: int,
                 admin: bool) -> Denial | None:
        """The statement classes checked beyond their first words (SHOW, SET, PREPARE, DDL),
        and the refusal of the rest."""
        verb = words[0]
        if verb == "SHOW":
            return _show(words[1:])
        if verb == "SET":
            return self._set(text, words, modes, admin)
        if verb == "PREPARE":
            return self._prepare(sql, modes, admin)
        if verb == "XA":
            return _not_supported("XA statements from clients: it runs XA itself in "
                                  "transaction mode xa (transactions.mode)")
        if verb in _DDL or verb in _MAINTENANCE:
            return _ddl(verb, words[1:], admin, text)
        privilege = _PRIVILEGE.get(verb, "SUPER")
        return _privilege(privilege, f"{verb} is server administration, which DAL refuses "
                          "for every client; run it on the backend as a DBA")

    def _everywhere(self, text: str, verb: str) -> Denial | None:
        """Refusals whatever the statement class: files, system schemas, shard databases, and
        a string next to a dot, which MariaDB refuses as a syntax error but DAL's parser would
        read as a name (information_schema."PROCESSLIST"; ANSI_QUOTES is off, else it is a
        name here too)."""
        if AMBIGUOUS_DASH in text:
            return Denial(*errors.PARSE_ERROR, "DAL cannot tell whether '--' followed by a "
                          "character outside ASCII starts a comment (that depends on the "
                          "client character set); write '-- ' with a space for a comment, or "
                          "'- -' for two minus signs", None)
        if _STRING_DOT.search(text):
            return Denial(*errors.PARSE_ERROR, "You have an error in your SQL syntax: a string "
                          "next to a '.' (with ANSI_QUOTES off, \"...\" is a string, not a "
                          "name; quote names with backticks)", None)
        if verb in _METADATA and _FOR_CONNECTION.search(text):
            return _privilege("PROCESS", "EXPLAIN FOR CONNECTION shows another session's "
                              "statement: every DAL backend connection is the same account")
        if _LOAD_FILE.search(text) or _INTO_FILE.search(text):
            return _privilege("FILE", "reading or writing server files is refused for every "
                              "client")
        system = _SYSTEM_QUALIFIED.search(text) or (
            verb in _NAMES_DATABASES and _SYSTEM_NAMED.search(text))
        if system:
            name = system.group(1).lower()
            return Denial(*errors.TABLE_ACCESS_DENIED, f"SELECT command denied for database "
                          f"'{name}': DAL does not expose the backend's system schema '{name}'")
        for match in _INFO_TABLE.finditer(text):
            if match.group(1) not in INFO_TABLES:
                table = match.group(1).lower()
                hint = " (use SHOW PROCESSLIST)" if table == "processlist" else ""
                return Denial(*errors.TABLE_ACCESS_DENIED, f"SELECT command denied for table "
                              f"'information_schema.{table}': DAL shows only the logical "
                              f"view of information_schema{hint}")
        if self._shard_db is not None and (shard := self._shard_db.search(text)):
            return Denial(*errors.DB_ACCESS_DENIED, f"Access denied to database "
                          f"'{shard.group(1).lower()}': shard databases are DAL's own; use the "
                          "logical database and its tables")
        return None

    def _set(self, text: str, words: list[str], modes: int, admin: bool) -> Denial | None:
        second = words[1] if len(words) > 1 else ""
        if second in ("PASSWORD", "ROLE", "DEFAULT"):
            return _privilege("CREATE USER", f"SET {second}: DAL's users and passwords are in "
                              "its config (users:)")
        if _GLOBAL_SCOPE.search(text):
            return _privilege("SUPER", "global settings belong to the backend's DBA; a client "
                              "may set session variables only")
        if denial := _client_charset(text, words):
            return denial
        if second == "STATEMENT":  # SET STATEMENT v=x FOR <statement>: both parts checked
            found = statement_after_for(text, modes)
            head, inner = (text[:found[0]], text[found[1]:]) if found else (text, "")
            if "(" in head or ")" in head:
                # A FOR inside the values ((SELECT 0 FOR UPDATE), SUBSTRING(x FROM 1 FOR 2))
                # would be taken for the one before the statement.
                return _not_supported("SET STATEMENT with an expression in parentheses among "
                                      "its values: DAL must tell where the values end; use "
                                      "plain values")
            denial = _variables(head)
            if denial is not None or not inner.strip():
                return denial
            if _WORD.findall(inner)[:1] == ["PREPARE"]:  # its body is a string, blanked here
                return _not_supported("SET STATEMENT ... FOR PREPARE: prepare the statement "
                                      "on its own")
            return self.check_code(inner, inner, modes, admin)
        return _variables(text)

    def _prepare(self, sql: str, modes: int, admin: bool) -> Denial | None:
        """PREPARE name FROM '<statement>': the statement is checked as if it were sent."""
        body = prepare_body(sql, modes)
        if body is None:
            return _not_supported("PREPARE ... FROM @variable: DAL cannot see the statement "
                                  "a variable holds; use PREPARE ... FROM '<statement>' or "
                                  "server-side prepared statements")
        inner = security_text(body, modes)
        words = _WORD.findall(inner)
        if words[:1] == ["SET"] and not READING_VARIABLES.isdisjoint(variable_names(words)):
            return _not_supported("PREPARE of a SET of sql_mode or the character set: its "
                                  "EXECUTE would change how the backend reads statements "
                                  "without DAL knowing; send the SET itself")
        return self.check_code(inner, body, modes, admin)


def variable_names(words: list[str]) -> set[str]:
    """The statement's words (`words_of`) as bare variable names: `@@SESSION.SQL_MODE`,
    `@@SQL_MODE` and `SQL_MODE` are all `SQL_MODE`, so that a check of READING_VARIABLES
    holds in every spelling."""
    return {word.rpartition(".")[2].lstrip("@") for word in words}


def words_of(code: str) -> list[str]:
    """The words of a statement's `security_text` (upper-cased, strings and comments out)."""
    return _WORD.findall(code)


_PREPARE = re.compile(r"(?is)^\s*PREPARE\s+(?:`[^`]*`|[\w$]+)\s+FROM\s+")


def prepare_body(sql: str, modes: int) -> str | None:
    """The statement text of ``PREPARE name FROM '<text>'``; None for a variable or an
    expression."""
    stripped = security_text(sql, modes)  # comments out of the way
    head = _PREPARE.match(sql)
    if head is None or not stripped.lstrip().startswith("PREPARE"):
        return None
    start = head.end()
    if start >= len(sql) or sql[start] not in "'\"":
        return None
    end = string_end(sql, start, sql[start], modes)
    if sql[end:].strip().rstrip(";").strip():
        return None  # FROM 'a' 'b' or an expression: not one literal
    raw = sql[start + 1:end - 1]
    quote = sql[start]
    if not modes & NO_BACKSLASH_ESCAPES:
        return unquote_string((quote + raw + quote).encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape")
    return raw.replace(quote * 2, quote)


def _show(words: list[str]) -> Denial | None:
    rest = [w for w in words if w not in _SHOW_SKIP]
    what = rest[0] if rest else ""
    if what not in _SHOW_ALLOWED:
        privilege = {"MASTER": "REPLICATION CLIENT", "SLAVE": "REPLICATION CLIENT",
                     "REPLICA": "REPLICATION CLIENT", "BINARY": "REPLICATION CLIENT",
                     "BINLOG": "REPLICATION SLAVE", "RELAYLOG": "REPLICATION SLAVE",
                     "ENGINE": "PROCESS", "EXPLAIN": "PROCESS"}.get(what, "PROCESS")
        return _privilege(privilege, f"SHOW {what} describes the backend server, not the "
                          "logical database")
    if what == "CREATE" and (len(rest) < 2 or rest[1] not in _SHOW_CREATE_ALLOWED):
        obj = rest[1] if len(rest) > 1 else ""
        return _privilege("SUPER", f"SHOW CREATE {obj} describes the backend server")
    return None


def _variables(text: str) -> Denial | None:
    for match in _ASSIGNED.finditer(text):
        name = match.group(1)
        if name in _PRIVILEGED_VARIABLES or name.startswith(_PRIVILEGED_PREFIXES):
            return _privilege("SUPER", f"SET {name.lower()} changes replication or DAL's own "
                              "connection tracking, which clients may not")
    return None


def _ddl(verb: str, words: list[str], admin: bool, text: str) -> Denial | None:
    obj = next((w for w in words if w not in _CREATE_MODIFIERS and not w.startswith("@")
                and w not in ("NO_WRITE_TO_BINLOG",)), "")
    objects = verb in ("CREATE", "DROP", "ALTER") or (verb == "RENAME" and obj == "USER")
    if objects and obj in ("DATABASE", "SCHEMA"):
        if verb == "ALTER":
            return _not_supported(f"ALTER {obj}: DAL's logical databases come from its config "
                                  "(databases:) or an admin's CREATE DATABASE")
        if not admin:  # whether DAL takes the name is decided when it runs (1235 too)
            return _not_supported(f"{verb} {obj} is for DAL's admin users (an unsharded "
                                  "logical database, server.create_database_prefix)")
        return None
    if objects and obj in ("USER", "ROLE"):
        return _privilege("CREATE USER", f"{verb} {obj}: DAL's users are in its config "
                          "(users:), and backend accounts belong to the DBA")
    if objects and obj not in _ADMIN_OBJECTS:
        return _privilege("SUPER", f"{verb} {obj} is server administration, which DAL refuses "
                          "for every client")
    if obj == "FUNCTION" and "SONAME" in words:
        return _privilege("SUPER", "CREATE FUNCTION ... SONAME loads a server plugin")
    if obj in ("VIEW", "PROCEDURE", "FUNCTION", "TRIGGER") and "INFORMATION_SCHEMA" in words:
        return Denial(*errors.TABLE_ACCESS_DENIED, f"a {obj.lower()} may not read "
                      "information_schema: it would show clients the backend's databases, not "
                      "DAL's logical view")
    if obj in ("PROCEDURE", "FUNCTION", "TRIGGER") and (
            bad := _routine_body_denial(words) or _body_settings(text)):
        return _privilege("SUPER", f"a {obj.lower()} body may not run {bad} (it would run "
                          "later, as DAL's backend account)")
    if not admin:
        return Denial(*errors.ACCESS_DENIED, "Access denied; you need (at least one of) the "
                      "DAL admin privilege(s) for this operation (DDL is for admin users)",
                      rule="ddl")
    return None  # the planner keeps DDL off sharded and broadcast tables


# Inside a routine or trigger body: what the allowlist refuses when sent directly, and
# dynamic SQL, which would hide a statement from DAL until the routine runs.
_BODY_WORDS = frozenset({"SHUTDOWN", "RESTART", "GRANT", "REVOKE", "FLUSH", "RESET", "PURGE",
                         "INSTALL", "UNINSTALL", "KILL", "PREPARE", "EXECUTE", "GLOBAL",
                         "PERSIST", "SQL_LOG_BIN", "BINLOG", "MASTER", "SLAVE", "REPLICA",
                         "XA", "IMMEDIATE"})
_BODY_OBJECTS = frozenset({"USER", "ROLE", "DATABASE", "SCHEMA", "EVENT", "SERVER"})


def _body_settings(text: str) -> str | None:
    """A global setting or a privileged session variable set inside a routine body."""
    if _GLOBAL_SCOPE.search(text):
        return "SET GLOBAL"
    for match in _BODY_SET.finditer(text):
        if _variables("SET " + match.group(1)) is not None:
            return "a SET of a privileged variable"
    return None


# A SET statement inside a routine body (not UPDATE ... SET): after ;, BEGIN, THEN, ELSE, DO...
_BODY_SET = re.compile(r"(?:^|;|\)|\bBEGIN|\bTHEN|\bELSE|\bDO|\bLOOP|\bREPEAT|:)\s*SET\s+"
                       r"([^;]*)")


def _routine_body_denial(words: list[str]) -> str | None:
    for i, word in enumerate(words):
        if word in _BODY_WORDS:
            return word
        if (word in ("CREATE", "DROP", "ALTER", "RENAME") and i + 1 < len(words)
                and words[i + 1] in _BODY_OBJECTS):
            return f"{word} {words[i + 1]}"
        if word == "LOAD" and i + 1 < len(words) and words[i + 1] in ("DATA", "XML"):
            return f"LOAD {words[i + 1]}"
    return None


# Client character sets whose multibyte characters can end in the byte 0x5c (a backslash):
# MariaDB then reads `'\xbf\x5c' ...` as a string that ends where DAL's byte scanner sees an
# escaped quote, so code after it would be hidden from every check above.
UNSAFE_CLIENT_CHARSETS = frozenset({"big5", "cp932", "gbk", "sjis", "gb18030"})
BAD_CHARSET = (1115, "42000")  # ER_UNKNOWN_CHARACTER_SET


def unsafe_charset_refusal(charset: str) -> str | None:
    """The refusal message when ``charset`` may not be a client character set through DAL."""
    name = charset.strip("'\"`").lower()
    if name not in UNSAFE_CLIENT_CHARSETS:
        return None
    return (f"Unknown character set: '{name}' (DAL does not accept {name} as the client "
            "character set: its multibyte characters can end in a backslash byte, so DAL "
            "would read string literals differently from MariaDB; use utf8mb4)")


def unsafe_names_refusal(names: str | None) -> str | None:
    """The refusal message for a handshake's (or COM_CHANGE_USER's) character set, given as
    its SET NAMES fragment (``NAMES <charset> COLLATE <collation>``; None: the default)."""
    return None if names is None else unsafe_charset_refusal(names.split()[1])


_CLIENT_CHARSET = re.compile(r"\bCHARACTER_SET_CLIENT\s*:?=\s*(?:([\w$]+)\s*(?:,|$)|'')")
_CLIENT_CHARSET_WORDS = frozenset({"CHARACTER_SET_CLIENT", "@@CHARACTER_SET_CLIENT",
                                   "@@SESSION.CHARACTER_SET_CLIENT",
                                   "@@LOCAL.CHARACTER_SET_CLIENT"})


def _client_charset(text: str, words: list[str]) -> Denial | None:
    """A SET that would make the client character set one DAL cannot scan (or an expression
    DAL cannot see the value of)."""
    for word in words:
        if word.lower() in UNSAFE_CLIENT_CHARSETS:
            return Denial(*BAD_CHARSET, unsafe_charset_refusal(word) or "")
    if _CLIENT_CHARSET_WORDS.isdisjoint(words):
        return None
    found = _CLIENT_CHARSET.search(text.strip().rstrip(";"))
    if found is None or (found.group(1) or "").isdigit():
        return Denial(*BAD_CHARSET, "DAL takes SET character_set_client = <character set name> "
                      "only, not an expression or a number (it must know how to read the next "
                      "statement)")
    return None


def names_session_user(text: str) -> bool:
    """True when a statement calls CURRENT_USER(), USER() and the like (the backend would
    answer with DAL's own backend account)."""
    for match in _SESSION_USER_FUNCTIONS.finditer(text):
        if match.group(2) or match.group(1) in ("CURRENT_USER", "CURRENT_ROLE"):
            return True
    return False
