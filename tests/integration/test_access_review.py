"""Bypasses of the per-role allowlist (router/access.py) found by an adversarial review in
stop 17: each test asserts the safe behaviour, so each would fail if its bypass came back.

The section comments describe each bypass as it was found; all are fixed (docs/design-notes.md,
"What an adversarial review taught").
"""

from __future__ import annotations

import uuid

import pymysql
import pytest

MARK = f"rev{uuid.uuid4().hex[:6]}"


def _code(conn: pymysql.connections.Connection, sql: str | bytes) -> int | None:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            while cur.nextset():
                cur.fetchall()
    except pymysql.MySQLError as exc:
        return exc.args[0]
    return None


def _tables(direct, schema: str, name: str) -> int:
    with direct("a").cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = %s", (schema, name))
        return cur.fetchone()[0]


def _creates(app, direct, sql: str, table: str) -> tuple[int | None, int]:
    """Run ``sql``, which would create ``trade.<table>``, as ``app``: its error code and how
    many such tables then exist (one that was made is dropped again)."""
    code = _code(app, sql)
    exists = _tables(direct, "trade", table)
    if exists:
        with direct("a", account="dba").cursor() as cur:
            cur.execute(f"DROP TABLE trade.{table}")
    return code, exists


# -- the plan cache: the fingerprint reads comments differently from MariaDB --------------
#
# router/fingerprint.py takes `--` followed by CR (or any control character other than space,
# tab, newline) as code and a string inside `/*! ... */` as ending the comment at its `*/`;
# MariaDB (and router/sqltext.py) do not. So the fingerprint makes a `?` of text MariaDB runs:
# a harmless statement caches an allowed plan, and a harmful one of the same fingerprint is
# served from the cache without the access check (router/planner.py `Router.plan`).


def test_dash_dash_cr_comment_cannot_poison_the_plan_cache(connect, direct) -> None:
    app = connect()
    head = f"/* {MARK}cr */ --\r'\n "
    assert _code(app, head + "SELECT 1 -- '\n") is None
    table = f"{MARK}_ddl"
    code, exists = _creates(app, direct, head + f"CREATE TABLE trade.{table} (id INT) -- '\n",
                            table)
    assert code == 1227 and not exists, f"app ran DDL through the plan cache (code {code})"


def test_dash_dash_cr_comment_cannot_drop_a_shard_table(connect, direct) -> None:
    table = f"{MARK}_shard"
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"CREATE TABLE user_017.{table} (id INT)")
    try:
        app = connect()
        head = f"/* {MARK}drop */ --\r'\n "
        assert _code(app, head + "DO 1 -- '\n") is None
        code = _code(app, head + f"DROP TABLE user_017.{table} -- '\n")
        assert _tables(direct, "user_017", table) == 1, "app dropped a shard database's table"
        assert code in (1044, 1227)
    finally:
        with direct("a", account="dba").cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS user_017.{table}")


def test_string_in_executable_comment_cannot_poison_the_plan_cache(connect) -> None:
    app = connect()
    head = f"/* {MARK}ex */ SELECT 1 /*! '*/' , ("
    assert _code(app, head + "SELECT 1) , '*/' */") is None
    code = _code(app, head + "SELECT COUNT(*) FROM user_017.orders) , '*/' */")
    assert code == 1044, f"shard database read through the plan cache (code {code})"


# -- `--` followed by a control character ---------------------------------------------------
#
# MariaDB starts a `-- ` comment when the second dash is followed by whitespace *or any
# control character* (my_iscntrl: 0x00-0x1f, 0x7f); router/sqltext.py `security_text` knows
# only space, tab, CR, LF, VT, FF. So after `--\x01` it reads a quote as opening a string and
# blanks everything up to the next quote, which MariaDB runs. With `/*!*/` anywhere the
# planner does not parse the statement either (router/planner.py `_EXECUTABLE_COMMENT` ->
# router/catalog.py `Catalog.unparsed`, a plain route to the default instance): no cache needed.


def _hidden(body: str, ctl: str = "\x01") -> str:
    return f"/* {MARK}{uuid.uuid4().hex[:6]} */ --{ctl}'\n {body} /*!*/ -- '\n"


def test_control_character_comment_hides_ddl(connect, direct) -> None:
    app = connect()
    table = f"{MARK}_ctl"
    code, exists = _creates(app, direct, _hidden(f"CREATE TABLE trade.{table} (id INT)"), table)
    assert code == 1227 and not exists, f"app created a table (code {code})"


def test_control_character_comment_hides_drop_database(connect, direct) -> None:
    scratch = f"user_{MARK}"  # matches the backend account's `user\_%` grant, as shards do
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"CREATE DATABASE {scratch}")
    try:
        app = connect()
        code = _code(app, _hidden(f"DROP DATABASE {scratch}", "\x7f"))
        with direct("a").cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (scratch,))
            assert cur.fetchall(), f"app dropped a shard-pattern database (code {code})"
        assert code in (1044, 1227, 1235)
    finally:
        with direct("a", account="dba").cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {scratch}")


def test_control_character_comment_hides_control_schema_and_shard_names(connect) -> None:
    app = connect()
    with app.cursor() as cur:
        leaked = []
        for body in ("SELECT COUNT(*) FROM dal_meta.gene_workers",
                     "SELECT schema_name FROM information_schema.schemata WHERE schema_name "
                     "LIKE 0x7573657225",  # 'user%' without a quote
                     "SELECT CURRENT_USER()"):
            try:
                cur.execute(_hidden(body, "\x1f"))
                rows = cur.fetchall()
            except pymysql.MySQLError:
                continue
            # DAL's own answers are no leak: the logical view (no shard database) and the DAL
            # user; a row of dal_meta, a shard name or the backend account would be
            if "dal_meta" in body or (rows and not str(rows[0][0]).startswith("app@")):
                leaked.append((body, rows[:1]))
    assert not leaked, f"read past the allowlist: {leaked}"


# -- an executable comment MariaDB skips ends at its first `*/` -----------------------------
#
# A `/*!NNNNNN ... */` or `/*M!NNNNNN ... */` whose version is above the server's is skipped
# by MariaDB as a plain comment: it ends at the first `*/`, quotes or not. security_text reads
# every executable comment as code and so lexes a string inside it that swallows the `*/`,
# and everything after it up to the next quote.


def test_skipped_executable_comment_ends_at_first_close(connect) -> None:
    app = connect()
    leaked = []
    with app.cursor() as cur:
        for sql in (f"/* {MARK}v1 */ SELECT 1 /*M!999999 ' */ , (SELECT COUNT(*) FROM "
                    "dal_meta.gene_workers) -- ' */",
                    f"/* {MARK}v2 */ SELECT 1 /*!999999 \" */ , (SELECT CURRENT_USER()) "
                    "-- \" */"):
            try:
                cur.execute(sql)
                leaked.append((sql, cur.fetchall()))
            except pymysql.MySQLError:
                pass
    assert not leaked, f"read past the allowlist: {leaked}"


def test_skipped_executable_comment_hides_drop_database(connect, direct) -> None:
    scratch = f"user_{MARK}v"
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"CREATE DATABASE {scratch}")
    try:
        code = _code(connect(), f"/*!999999 ' */ DROP DATABASE {scratch} -- ' */")
        with direct("a").cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (scratch,))
            assert cur.fetchall(), f"app dropped a shard-pattern database (code {code})"
    finally:
        with direct("a", account="dba").cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {scratch}")


# -- ANSI_QUOTES that DAL does not know about ----------------------------------------------
#
# dal/session/state.py `sql_mode_ansi_quotes` reads ANSI_QUOTES from the sql_mode DAL recorded
# (self.state["sql_mode"]) and router/sqltext.py `modes_of` from mode *names*. A SET it does
# not record (SESSION keyword, a user variable, a subquery: pinned and forwarded) or a numeric
# sql_mode (4 = ANSI_QUOTES) leaves the backend with ANSI_QUOTES and DAL without: `"x\"` is
# then a string to DAL (backslash escape) and the identifier `x\` to MariaDB.

ANSI_SETUPS = [
    ["SET sql_mode = 4"],
    ["SET SESSION sql_mode = 'ANSI_QUOTES'"],
    ["SET @m = 'ANSI_QUOTES'", "SET sql_mode = @m"],
    ["SET sql_mode = (SELECT 'ANSI_QUOTES')"],
]


def test_ansi_quotes_set_any_way_is_known_to_the_access_check(connect) -> None:
    leaked = []
    for setup in ANSI_SETUPS:
        app = connect()
        with app.cursor() as cur:
            try:
                for sql in setup:
                    cur.execute(sql)
            except pymysql.MySQLError as exc:  # DAL refuses a mode it could not track: safe
                assert exc.args[0] in (1235, 1227), exc
                app.close()
                continue
            cur.execute("SELECT @@sql_mode")
            assert "ANSI_QUOTES" in cur.fetchone()[0]
            try:
                cur.execute(f'/* {MARK}{uuid.uuid4().hex[:6]} */ SELECT 1 AS "x\\" , '
                            '(SELECT COUNT(*) FROM dal_meta.gene_workers) -- "')
                leaked.append((setup, cur.fetchall()))
            except pymysql.MySQLError as exc:
                assert exc.args[0] == 1142, exc
        app.close()
    assert not leaked, f"dal_meta read under an ANSI_QUOTES DAL did not see: {leaked}"


# -- multibyte character sets whose second byte may be 0x5c ---------------------------------
#
# Under gbk, big5, sjis or cp932, 0xbf5c / 0x815c is one character to MariaDB: the backslash
# is its second byte and escapes nothing, so the string `'\xbf\'` ends at its second quote.
# router/sqltext.py `string_end` (and the fingerprint and sqlglot) read the bytes as UTF-8
# with surrogateescape: the backslash escapes the quote and the string runs on to the next
# quote, blanking what MariaDB runs.

MULTIBYTE = [("gbk", b"\xbf"), ("big5", b"\xbf"), ("sjis", b"\x81"), ("cp932", b"\x81")]


def test_multibyte_charset_cannot_swallow_a_backslash(connect) -> None:
    leaked = []
    for charset, lead in MULTIBYTE:
        for how in ("handshake", "set names"):
            try:  # DAL refuses these character sets (1115): safe
                if how == "handshake":
                    app = connect(charset=charset, use_unicode=False)
                else:
                    app = connect(use_unicode=False)
                    with app.cursor() as cur:
                        cur.execute(f"SET NAMES {charset}")
            except pymysql.MySQLError as exc:
                assert exc.args[0] == 1115, exc
                continue
            sql = (f"/* {MARK}{uuid.uuid4().hex[:6]} */ SELECT '".encode() + lead
                   + b"\\' AS a, (SELECT COUNT(*) FROM dal_meta.gene_workers) AS b -- '")
            with app.cursor() as cur:
                try:
                    cur.execute(sql)
                    row = cur.fetchone()
                except pymysql.MySQLError:
                    continue
            if len(row) > 1:  # the subquery ran: MariaDB ended the string at the 2nd quote
                leaked.append((charset, how, row))
            app.close()
    assert not leaked, f"dal_meta read through a multibyte string: {leaked}"


# -- SET STATEMENT ... FOR <statement> --------------------------------------------------------
#
# router/access.py `_set` finds the inner statement with `text.partition(" FOR ")`: the first
# " FOR " between two spaces. With a newline or tab around FOR there is none, and the inner
# statement is never checked; with a FOR inside a skipped executable comment before the real
# one, the "inner statement" checked is the comment's (SELECT 1). MariaDB runs the real one.


def test_set_statement_for_checks_the_real_inner_statement(connect, direct) -> None:
    app = connect()
    made = []
    for i, sql in enumerate([
            "SET STATEMENT max_statement_time=100 FOR\nCREATE TABLE trade.{t} (id INT)",
            "SET STATEMENT max_statement_time=100\tFOR\tCREATE TABLE trade.{t} (id INT)",
            "SET STATEMENT max_statement_time=100 /*!999999 FOR SELECT 1 */ FOR "
            "CREATE TABLE trade.{t} (id INT)"]):
        table = f"{MARK}_st{i}"
        code = _code(app, sql.format(t=table))
        if _tables(direct, "trade", table):
            made.append((sql, code))
            with direct("a", account="dba").cursor() as cur:
                cur.execute(f"DROP TABLE trade.{table}")
        else:
            assert code == 1227, (sql, code)
    assert not made, f"app ran DDL inside SET STATEMENT: {made}"


def test_set_statement_for_cannot_reach_server_administration(connect) -> None:
    app = connect()
    with app.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
        cur.execute("SET STATEMENT max_statement_time=100 FOR\nSHUTDOWN")
    # DAL's own refusal names itself; the backend's (the statement reached it) does not
    assert "DAL" in info.value.args[1], f"SHUTDOWN reached the backend: {info.value.args}"


# -- EXECUTE IMMEDIATE ------------------------------------------------------------------------
#
# router/access.py lets every EXECUTE through (`_PREPARED`), so MariaDB's EXECUTE IMMEDIATE
# <expression> runs any statement, checked by nobody: its text is a literal DAL does not
# look into, or an expression or a user variable DAL cannot see.


def test_execute_immediate_is_checked_or_refused(connect, direct) -> None:
    app = connect()
    table = f"{MARK}_ei"
    code = _code(app, f"EXECUTE IMMEDIATE 'CREATE TABLE trade.{table} (id INT)'")
    exists = _tables(direct, "trade", table)
    if exists:
        with direct("a", account="dba").cursor() as cur:
            cur.execute(f"DROP TABLE trade.{table}")
    assert not exists and code in (1227, 1235), f"EXECUTE IMMEDIATE ran DDL (code {code})"
    leaked = []
    with app.cursor() as cur:
        for sql in ("EXECUTE IMMEDIATE CONCAT('SELECT COUNT(*) FROM dal_', 'meta.gene_workers')",
                    "EXECUTE IMMEDIATE CONCAT('SELECT CURRENT_', 'USER()')"):
            try:
                cur.execute(sql)
                leaked.append((sql, cur.fetchall()))
            except pymysql.MySQLError:
                pass
    assert not leaked, f"EXECUTE IMMEDIATE read past the allowlist: {leaked}"


# -- information_schema beyond the logical view ---------------------------------------------
#
# The logical rewrite (router/info_schema.py) runs only on a statement sqlglot parsed; one
# that holds any executable comment, or that sqlglot cannot parse (PROCEDURE ANALYSE()), is
# routed as written (router/catalog.py `Catalog.unparsed`) and reads the backend's own
# information_schema. And router/access.py refuses information_schema tables off its list only
# when qualified (`_INFO_TABLE`): with information_schema as the default database (USE,
# COM_INIT_DB, or the handshake), USER_PRIVILEGES, SCHEMA_PRIVILEGES and PROCESSLIST are read
# unqualified.


def test_information_schema_stays_logical_when_not_parsed(connect) -> None:
    app = connect()
    leaked = []
    with app.cursor() as cur:
        for sql in ("SELECT GROUP_CONCAT(DISTINCT table_schema) FROM information_schema.tables "
                    "/*!*/",
                    "SELECT GROUP_CONCAT(schema_name) FROM information_schema.schemata WHERE 1 "
                    "/*!50000 AND 1 */",
                    "SELECT GROUP_CONCAT(DISTINCT table_schema) FROM information_schema.tables "
                    "PROCEDURE ANALYSE()"):
            try:
                cur.execute(sql)
                text = repr(cur.fetchall())
            except pymysql.MySQLError:
                continue
            if "user_0" in text or "merchant_0" in text or "dal_meta" in text:
                leaked.append(sql)
    assert not leaked, f"shard database names read: {leaked}"


def test_unqualified_information_schema_tables_are_refused(connect) -> None:
    leaked = []
    for how in ("use", "init_db", "handshake"):
        try:  # DAL refuses information_schema as the default database (1044): safe
            if how == "handshake":
                app = connect(database="information_schema")
            else:
                app = connect()
                if how == "use":
                    with app.cursor() as cur:
                        cur.execute("USE information_schema")
                else:
                    app.select_db("information_schema")
        except pymysql.MySQLError as exc:
            assert exc.args[0] == 1044, exc
            continue
        with app.cursor() as cur:
            for table in ("USER_PRIVILEGES", "SCHEMA_PRIVILEGES"):
                try:
                    cur.execute(f"SELECT GROUP_CONCAT(grantee) FROM {table}")
                    text = repr(cur.fetchall())
                except pymysql.MySQLError:
                    continue
                if "'dal'" in text:
                    leaked.append((how, table, text[:80]))
        app.close()
    assert not leaked, f"the backend account's privileges read: {leaked}"


def test_backend_processlist_shows_no_other_session_statement(connect) -> None:
    import threading

    secret = f"{MARK}secret"
    other = connect()

    def slow() -> None:
        with other.cursor() as cur:
            cur.execute(f"SELECT SLEEP(2), '{secret}'")
            cur.fetchall()

    thread = threading.Thread(target=slow)
    thread.start()
    seen = ""
    try:
        try:
            app = connect(database="information_schema")
        except pymysql.MySQLError as exc:  # refused as a default database (1044): safe
            assert exc.args[0] == 1044, exc
            return
        for _ in range(10):
            with app.cursor() as cur:
                try:
                    cur.execute("SELECT GROUP_CONCAT(COALESCE(info, '')) FROM PROCESSLIST")
                    seen = str(cur.fetchone()[0])
                except pymysql.MySQLError:
                    break
            if secret in seen:
                break
            __import__("time").sleep(0.1)
    finally:
        thread.join()
    assert secret not in seen, "another session's statement read from the backend processlist"


# -- admin objects that show app the backend's information_schema ---------------------------
#
# router/access.py lets an admin create views and routines over the information_schema tables
# on its list (TABLES, SCHEMATA, ...), and over any table when information_schema is the
# default database (unqualified names). The logical rewrite (router/info_schema.py) applies to
# statements DAL routes, not to a view's or routine's body: app then reads, through the view
# or CALL, the backend's own information_schema (every shard database, the backend account).


def test_admin_view_over_information_schema_shows_app_no_shard_database(connect) -> None:
    admin = connect("admin", "admin")
    app = connect()
    view, proc = f"{MARK}_v", f"{MARK}_p"
    seen = []
    try:
        if _code(admin, f"CREATE VIEW {view} AS SELECT schema_name FROM "
                        "information_schema.schemata") is None:
            with app.cursor() as cur:
                cur.execute(f"SELECT GROUP_CONCAT(schema_name) FROM {view}")
                seen.append(("view", str(cur.fetchone()[0])))
        if _code(admin, f"CREATE PROCEDURE {proc}() SELECT GROUP_CONCAT(schema_name) FROM "
                        "information_schema.schemata") is None:
            with app.cursor() as cur:
                cur.execute(f"CALL {proc}()")
                seen.append(("call", str(cur.fetchone()[0])))
                while cur.nextset():
                    pass
    finally:
        _code(admin, f"DROP VIEW IF EXISTS {view}")
        _code(admin, f"DROP PROCEDURE IF EXISTS {proc}")
    leaked = [(how, text[:60]) for how, text in seen if "user_0" in text]
    assert not leaked, f"shard database names through an admin object: {leaked}"


def test_admin_cannot_create_views_over_unqualified_backend_tables(connect) -> None:
    admin = connect("admin", "admin")
    view = f"{MARK}_up"
    if _code(admin, "USE information_schema") == 1044:  # refused as a default database: safe
        return
    code = _code(admin, f"CREATE VIEW trade.{view} AS SELECT grantee FROM USER_PRIVILEGES")
    _code(admin, f"DROP VIEW IF EXISTS trade.{view}")
    assert code in (1142, 1227), f"view over information_schema.USER_PRIVILEGES made ({code})"


def test_routine_body_global_and_privileged_sets_are_refused(connect) -> None:
    """README: routine bodies that would run a refused statement later are refused. The body
    check (router/access.py `_routine_body_denial`) looks for the word GLOBAL / SQL_LOG_BIN,
    which `@@global.x` and `@@session.sql_log_bin` are not (one `@@...` word each)."""
    admin = connect("admin", "admin")
    made = []
    for i, body in enumerate(("SET @@global.max_connections = 100",
                              "SET @@session.sql_log_bin = 0")):
        proc = f"{MARK}_g{i}"
        code = _code(admin, f"CREATE PROCEDURE {proc}() {body}")
        if code is None:
            made.append(body)
            _code(admin, f"DROP PROCEDURE {proc}")
    assert not made, f"routine bodies DAL refuses when sent directly: {made}"


# -- SHOW PROFILES: another session's statements ----------------------------------------------
#
# router/access.py allows SHOW PROFILE(S) and SET profiling. The profiling history lives on the
# backend connection, which the pool hands to the next session: it reads the previous
# session's statements, literals included (admin's too).


def test_show_profiles_shows_no_other_session_statement(connect) -> None:
    secret = f"{MARK}card4111"
    admin = connect("admin", "admin")
    with admin.cursor() as cur:
        try:
            cur.execute("SET profiling = 1")
        except pymysql.MySQLError as exc:  # refused (1227): the history cannot start
            assert exc.args[0] == 1227, exc
        cur.execute(f"SELECT '{secret}' FROM merchants LIMIT 1")
        cur.fetchall()
    admin.close()
    seen = []
    for _ in range(4):
        app = connect()
        with app.cursor() as cur:
            try:
                cur.execute("SHOW PROFILES")
                seen.append(repr(cur.fetchall()))
            except pymysql.MySQLError:
                pass
        app.close()
    assert not any(secret in s for s in seen), "app read admin's statement from SHOW PROFILES"
