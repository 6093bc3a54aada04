"""Executable comments resolved as MariaDB's lexer (sql_lex.cc) resolves them, by version."""

from __future__ import annotations

import pytest

from router.sqltext import ANSI_QUOTES, NO_BACKSLASH_ESCAPES, expand_executable, version_id

MARIADB_10_11 = 101119


def words(text: str | None) -> list[str] | None:
    return None if text is None else text.split()


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT /*!40001 SQL_NO_CACHE */ * FROM orders", "SELECT SQL_NO_CACHE * FROM orders"),
    ("SELECT 1 /*!99999 , 2 */", "SELECT 1"),  # a future version: a comment
    ("SELECT 1 /*!101120 , 2 */", "SELECT 1"),  # 6 digits, just above 10.11.19
    ("SELECT 1 /*!101119 , 2 */", "SELECT 1 , 2"),  # equal to the server's: run
    ("SELECT 1 /*M!100000 , 2 */", "SELECT 1 , 2"),
    ("SELECT 1 /*M!999999 , 2 */", "SELECT 1"),
    ("SELECT 1 /*!50700 , 2 */", "SELECT 1"),  # MySQL 5.7+ syntax: skipped by MariaDB
    ("SELECT 1 /*!99999 , 2 */ , 3", "SELECT 1 , 3"),
    ("SELECT 1 /*M!50700 , 2 */", "SELECT 1 , 2"),  # ... unless marked M!
    ("SELECT 1 /*!50699 , 2 */", "SELECT 1 , 2"),
    ("SELECT 1 /*! , 2 */", "SELECT 1 , 2"),  # no version: always run
    ("SELECT 1 /*!4 , 2 */", "SELECT 1 4 , 2"),  # fewer than 5 digits are code
    ("LOCK TABLES a READ /*!32311 LOCAL */, b READ /*!32311 LOCAL */",
     "LOCK TABLES a READ LOCAL , b READ LOCAL"),
    ("SELECT '/*!40001 x */' /*!40001 , 2 */", "SELECT '/*!40001 x */' , 2"),  # in a string
    ("SELECT 1 /*!40001 , '*/' */", "SELECT 1 , '*/'"),  # a run body's strings are code
    ("SELECT 1 /*!99999 , '*/ , 5", "SELECT 1 , 5"),  # a skipped one ignores quotes
    ("SELECT 1 /*!99999 a /* b */ c */ , 4", "SELECT 1 , 4"),  # one nested level skipped
    ("SELECT 1 /*!40001 , 2 /* plain */ */", "SELECT 1 , 2 /* plain */"),
    ("SELECT 1 /*!40001 , 2", None),  # unterminated: left to the backend
    ("SELECT 1 /* plain */", None),
])
def test_expansion_follows_mariadb(sql: str, expected: str | None) -> None:
    assert words(expand_executable(sql, 0, MARIADB_10_11)) == words(expected)


def test_lexer_modes_decide_where_strings_end() -> None:
    sql = r"SELECT 'a\' /*!40001 , 2 */ '"
    assert expand_executable(sql, 0, MARIADB_10_11) == sql  # one string: nothing to run
    assert words(expand_executable(sql, NO_BACKSLASH_ESCAPES, MARIADB_10_11)) == words(
        r"SELECT 'a\' , 2 '")
    quoted = 'SELECT "x /*!40001 , 2 */"'
    assert expand_executable(quoted, 0, MARIADB_10_11) == quoted
    assert expand_executable(quoted, ANSI_QUOTES, MARIADB_10_11) == quoted


def test_mysql_reads_m_comments_as_comments_and_runs_its_own_versions() -> None:
    assert words(expand_executable("SELECT 1 /*M!100000 , 2 */ /*!50700 , 3 */", 0, 80036,
                                   mariadb=False)) == words("SELECT 1 /*M!100000 , 2 */ , 3")


def test_version_ids() -> None:
    assert version_id("10.11.19-MariaDB-0+deb12u1-log") == 101119
    assert version_id("5.5.5-10.6.4-MariaDB") == 100604
    assert version_id("8.0.36") == 80036
    assert version_id("garbage") == 0
