"""The multi-statement splitter: quotes, comments, backquotes; nothing else splits."""

from __future__ import annotations

import pytest

from router.split import split_statements


@pytest.mark.parametrize(("sql", "expected"), [
    (b"SELECT 1", [b"SELECT 1"]),
    (b"SELECT 1;", [b"SELECT 1"]),
    (b"SELECT 1; SELECT 2 ;\n", [b"SELECT 1", b"SELECT 2"]),
    (b"SELECT ';'; SELECT 2", [b"SELECT ';'", b"SELECT 2"]),
    (b"SELECT 'it''s;'; SELECT 2", [b"SELECT 'it''s;'", b"SELECT 2"]),
    (b"SELECT 'a\\';b'; SELECT 2", [b"SELECT 'a\\';b'", b"SELECT 2"]),
    (b'SELECT "x;y"; SELECT 2', [b'SELECT "x;y"', b"SELECT 2"]),
    (b"SELECT `a;b` FROM t; SELECT 2", [b"SELECT `a;b` FROM t", b"SELECT 2"]),
    (b"SELECT `a``;b`; SELECT 2", [b"SELECT `a``;b`", b"SELECT 2"]),
    (b"SELECT 1 -- x; y\n; SELECT 2", [b"SELECT 1 -- x; y", b"SELECT 2"]),
    (b"SELECT 1 # x; y\n; SELECT 2", [b"SELECT 1 # x; y", b"SELECT 2"]),
    (b"SELECT 1 /* a; b */; SELECT 2", [b"SELECT 1 /* a; b */", b"SELECT 2"]),
    (b"SELECT 1 /*!50000 ; */; SELECT 2", [b"SELECT 1 /*!50000 ; */", b"SELECT 2"]),
    (b"SELECT 1--1; SELECT 2", [b"SELECT 1--1", b"SELECT 2"]),  # `--` needs a space
    (b"SELECT 1;; ;SELECT 2", [b"SELECT 1", b"SELECT 2"]),
    (b"SELECT 1; /* only a comment */", [b"SELECT 1"]),
    (b"SELECT 'unterminated; SELECT 2", [b"SELECT 'unterminated; SELECT 2"]),
    (b"", []),
])
def test_split(sql, expected):
    assert split_statements(sql) == expected


def test_every_byte_boundary_is_safe():
    sql = b"INSERT INTO t VALUES ('a;b', \"c;d\"); SELECT `x;` /* ; */ -- ;\n; SELECT 3"
    assert split_statements(sql) == [b"INSERT INTO t VALUES ('a;b', \"c;d\")",
                                     b"SELECT `x;` /* ; */ -- ;", b"SELECT 3"]
    for cut in range(len(sql)):  # no prefix raises
        split_statements(sql[:cut])
