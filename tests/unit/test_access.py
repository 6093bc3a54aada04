"""The role allowlist (router/access.py) and the lexer it reads statements with
(router/sqltext.py), as properties: string contents never decide anything, and a refused
statement stays refused however it is spelled, commented or wrapped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.access import AccessPolicy
from router.fingerprint import fingerprint, fingerprint_in_modes
from router.sqltext import ANSI_QUOTES, NO_BACKSLASH_ESCAPES, modes_of, security_text
from tests.dal_process import ROOT

POLICY = AccessPolicy(["user_", "merchant_"])
FORBIDDEN = [
    "SHUTDOWN", "CREATE USER x", "DROP USER dal", "GRANT ALL ON *.* TO app",
    "SET GLOBAL max_connections=151", "SET sql_log_bin=0", "FLUSH PRIVILEGES",
    "SELECT LOAD_FILE('/etc/passwd')", "SELECT 1 INTO OUTFILE '/tmp/x'",
    "LOAD DATA INFILE '/etc/hostname' INTO TABLE merchants", "SELECT * FROM mysql.user",
    "DROP DATABASE merchant_059", "CREATE EVENT e ON SCHEDULE "
    "EVERY 1 HOUR DO SELECT 1", "SHOW BINARY LOGS", "SELECT * FROM user_000.orders",
]
ALLOWED = ["SELECT 1", "SELECT * FROM orders WHERE user_id = 5", "SET NAMES utf8mb4",
           "SHOW TABLES", "BEGIN", "INSERT INTO merchants (name) VALUES ('x')"]


def default_quote(text: str) -> str:
    """A string literal as drivers write it without NO_BACKSLASH_ESCAPES."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + escaped + "'"


def nbe_quote(text: str) -> str:
    """A string literal as drivers write it under NO_BACKSLASH_ESCAPES."""
    return "'" + text.replace("'", "''") + "'"


@settings(max_examples=300)
@given(st.text())
def test_string_contents_never_decide(content: str) -> None:
    for modes, quote in ((0, default_quote), (NO_BACKSLASH_ESCAPES, nbe_quote)):
        sql = f"SELECT {quote(content)}, {quote(content)} FROM merchants"
        assert POLICY.check(sql, modes, admin=False) is None
        assert security_text(sql, modes).split() == ["SELECT", "''", ",", "''", "FROM",
                                                     "MERCHANTS"]
        fp = fingerprint_in_modes(sql.encode("utf-8", "surrogatepass"), modes)
        assert fp.key == b"SELECT ?, ? FROM merchants"


@st.composite
def disguised(draw: st.DrawFn, statement: str) -> str:
    """``statement`` with random case, spacing, a leading comment, or inside an executable
    comment of any version."""
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in statement)
    space = draw(st.sampled_from([" ", "  ", "\t", "\n", " \r\n "]))
    text = cased.replace(" ", space)
    wrap = draw(st.sampled_from(["plain", "comment", "dash", "exec", "exec_version", "maria"]))
    if wrap == "comment":
        return f"/* {draw(st.text(alphabet='abc xyz'))} */ {text}"
    if wrap == "dash":
        return f"-- note\n{text}"
    if wrap == "exec":
        return f"/*!{text}*/"
    if wrap == "exec_version":
        return f"/*!{draw(st.integers(10000, 999999))} {text} */"
    if wrap == "maria":
        return f"/*M!{draw(st.integers(100000, 999999))} {text} */"
    return text


@settings(max_examples=400)
@given(st.data())
def test_forbidden_statements_stay_refused(data: st.DataObject) -> None:
    statement = data.draw(st.sampled_from(FORBIDDEN))
    sql = data.draw(disguised(statement))
    for admin in (False, True):
        denial = POLICY.check(sql, 0, admin)
        assert denial is not None, sql
        assert denial.code in (1044, 1142, 1227, 1235)
    renamed = data.draw(disguised("RENAME TABLE merchants TO m2"))  # DDL: admins only
    assert POLICY.check(renamed, 0, admin=False).code == 1227


@settings(max_examples=200)
@given(st.data())
def test_allowed_statements_pass_in_any_spelling(data: st.DataObject) -> None:
    statement = data.draw(st.sampled_from(ALLOWED))
    sql = data.draw(disguised(statement))
    assert POLICY.check(sql, 0, admin=False) is None, sql


def test_the_lexer_modes_change_where_strings_end() -> None:
    # default: \' is an escaped quote, the LOAD_FILE is inside the string
    sql = "SELECT 'a\\' , LOAD_FILE('/etc/passwd') , '"
    assert POLICY.check(sql, 0, admin=False) is None
    # NO_BACKSLASH_ESCAPES: the string ends at \' and LOAD_FILE is code
    assert POLICY.check(sql, NO_BACKSLASH_ESCAPES, admin=False).code == 1227
    # ANSI_QUOTES: "mysql"."user" are identifiers; without it, strings next to a dot: a
    # syntax error, as MariaDB says (DAL's parser would read them as names)
    assert POLICY.check('SELECT * FROM "mysql"."user"', 0, admin=False).code == 1064
    assert POLICY.check('SELECT * FROM "mysql"."user"', ANSI_QUOTES, admin=False).code == 1142
    assert fingerprint_in_modes(b'SELECT "a" FROM t', ANSI_QUOTES).key == b'SELECT "a" FROM t'
    assert fingerprint_in_modes(b'SELECT "a" FROM t', 0) == fingerprint(b'SELECT "a" FROM t')


@pytest.mark.parametrize(("mode", "bits"), [
    ("NO_BACKSLASH_ESCAPES", NO_BACKSLASH_ESCAPES), ("ansi", ANSI_QUOTES),
    ("'STRICT_TRANS_TABLES,ANSI_QUOTES,NO_BACKSLASH_ESCAPES'", 3), ("ORACLE", ANSI_QUOTES),
    ("STRICT_TRANS_TABLES", 0), ("", 0)])
def test_modes_of_sql_mode(mode: str, bits: int) -> None:
    assert modes_of(mode) == bits


@pytest.mark.parametrize("sql", [
    "PREPARE s FROM 'SHUTDOWN'", "PREPARE s FROM 'SELECT LOAD_FILE(\\'/etc/passwd\\')'",
    "SET STATEMENT max_statement_time=1 FOR SHUTDOWN", "PREPARE s FROM @q",
    "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END",
    "CREATE TRIGGER t BEFORE INSERT ON merchants FOR EACH ROW BEGIN SHUTDOWN; END",
    "CREATE FUNCTION f RETURNS STRING SONAME 'evil.so'"])
def test_statements_inside_statements_are_checked(sql: str) -> None:
    assert POLICY.check(sql, 0, admin=True) is not None


def test_admin_ddl_on_tables_passes_app_ddl_does_not() -> None:
    for sql in ("CREATE TABLE t (id INT)", "ALTER TABLE merchants ADD COLUMN z INT",
                "DROP TABLE t", "CREATE INDEX i ON merchants (name)", "TRUNCATE TABLE t",
                "CREATE PROCEDURE p() BEGIN SELECT 1; END", "OPTIMIZE TABLE merchants"):
        assert POLICY.check(sql, 0, admin=True) is None, sql
        assert POLICY.check(sql, 0, admin=False).code == 1227, sql


@pytest.mark.parametrize("sql", [
    "BEGIN NOT ATOMIC SHUTDOWN; END", "lbl: BEGIN NOT ATOMIC SELECT 1; END lbl",
    "IF 1 THEN DROP USER dal; END IF", "WHILE 1 DO SELECT 1; END WHILE"])
def test_compound_statements_outside_routines_are_refused(sql: str) -> None:
    for admin in (False, True):
        assert POLICY.check(sql, 0, admin).code == 1235


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECTT * FROM orders", "FOO", "x := 1"])
def test_an_unknown_first_word_is_a_syntax_error(sql: str) -> None:
    denial = POLICY.check(sql, 0, admin=False)
    assert denial.code == 1064 and "right syntax to use near" in denial.message


@pytest.mark.parametrize("sql", [
    "SET NAMES gbk", "SET NAMES 'sjis' COLLATE sjis_japanese_ci", "SET CHARACTER SET big5",
    "SET character_set_client = cp932", "/*!40101 SET NAMES gbk */",
    "SET character_set_client = CONCAT('g', 'bk')"])
def test_client_charsets_that_hide_a_backslash_are_refused(sql: str) -> None:
    """In gbk, sjis, big5 and cp932 a multibyte character can end in 0x5c: MariaDB would end a
    string where DAL's byte scanner sees an escaped quote."""
    from config.loader import load_config
    from router.planner import Router

    plan = Router(load_config(ROOT / "config" / "test.yaml")).analyse(sql.encode(), "trade", False)
    assert plan.error is not None and plan.error[0] in (1115, 1235), sql


def test_sets_dal_cannot_track_are_pinned_or_refused() -> None:
    from config.loader import load_config
    from router.planner import Router

    router = Router(load_config(ROOT / "config" / "test.yaml"))
    plan = router.analyse(b"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "trade", False)
    assert plan.pin == "set_other"  # never back in the pool with state DAL does not know
    for sql in (b"SET sql_mode = @m", b"SET sql_mode = 4", b"SET sql_mode = (SELECT 'ANSI')",
                b"SET sql_mode = NULL"):
        assert router.analyse(sql, "trade", False).error[0] == 1235, sql
    # an executable comment's SET is read as the backend reads it (the session expands a
    # text statement before planning it), and recorded
    expanded = router.expand(b"/*!40101 SET sql_mode='ANSI_QUOTES' */", 0)
    plan = router.analyse(expanded, "trade", False)
    assert plan.assignments == (("sql_mode", "@@session.sql_mode='ANSI_QUOTES'"),)


def test_a_long_statement_is_read_in_linear_time() -> None:
    # The qualifier pattern once tried every position of a long word to its end: 15,000
    # characters took 3 s of the event loop, 1 MB would have taken hours.
    import time

    from router.user_databases import foreign_database

    code = "SELECT ID FROM MERCHANTS WHERE ID = " + "A" * 200_000
    started = time.process_time()
    assert foreign_database(code, {"SBTEST": "sbtest"}) is None
    assert time.process_time() - started < 2
