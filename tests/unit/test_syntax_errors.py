"""Parse errors answered as MariaDB words them (router/syntax.py): where the "near" part starts."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot.errors import ParseError, TokenError

from router.syntax import error_position, message


def _near(sql: str) -> str:
    try:
        sqlglot.parse(sql, dialect="mysql")
    except (ParseError, TokenError) as exc:
        text = message(sql, error_position(sql, exc))
        return text.split("near '", 1)[1].rsplit("' at line", 1)[0]
    raise AssertionError(f"parsed: {sql}")


# The "near" parts MariaDB 10.11 gives for the same statements (see test_protocol_corners.py).
@pytest.mark.parametrize(("sql", "near"), [
    ("SELECT * FROM orders WHERE", ""),
    ("SELECT * FROM orders WHERE user_id = 1 AND AND id=3", "AND id=3"),
    ("SELECT * FROM orders WHERE (user_id = 1", ""),
    ("SELECT * FROM orders WHERE user_id = 1)", ")"),
    ("SELECT 1 FROM orders\nWHERE user_id = 1 ORDER BY x x x", "x x"),
    ("SELECT * FROM orders WHERE user_id = 'abc", "'abc"),
])
def test_near_starts_where_mariadb_stops(sql: str, near: str) -> None:
    assert _near(sql) == near


def test_message_is_mariadbs() -> None:
    sql = "SELECT 1\nFROM orders WHERE " + "x = 1 AND " * 20 + "AND"
    text = message(sql, sql.index("FROM"))
    assert text.startswith("You have an error in your SQL syntax; check the manual that "
                           "corresponds to your MariaDB server version for the right syntax "
                           "to use near 'FROM orders")
    assert text.endswith("' at line 2")
    assert len(text.split("near '", 1)[1].rsplit("' at line", 1)[0]) == 80  # MariaDB's cut
    assert message("SELEC", None).endswith("near 'SELEC' at line 1")
