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


# Compound statements: a `;` inside a stored program's body, or inside BEGIN NOT ATOMIC / IF /
# CASE / LOOP / WHILE / REPEAT run outside one, does not split (as MariaDB's parser reads them).
PROC = (b"CREATE PROCEDURE p(IN n INT) COMMENT 'x;' BEGIN\n"
        b"  DECLARE i INT DEFAULT IF(n > 0, n, 0);\n"
        b"  outer_loop: LOOP\n"
        b"    SET i = i - 1;\n"
        b"    IF i < 0 THEN LEAVE outer_loop; ELSEIF i = 2 THEN SELECT 'two;'; "
        b"ELSE BEGIN SELECT CASE WHEN i THEN IF(i, 1, 2) ELSE 0 END; END; END IF;\n"
        b"    CASE i WHEN 1 THEN SELECT 1; ELSE BEGIN END; END CASE;\n"
        b"    WHILE i > 5 DO SET i = i - 1; END WHILE;\n"
        b"    REPEAT SET i = i - 1; UNTIL i < 3 END REPEAT;\n"
        b"  END LOOP outer_loop;\n"
        b"  DROP TEMPORARY TABLE IF EXISTS tmp;\n"
        b"END")


@pytest.mark.parametrize(("sql", "expected"), [
    (PROC + b"; CALL p(3)", [PROC, b"CALL p(3)"]),
    (b"CREATE PROCEDURE p() BEGIN SELECT 1; END;SELECT 2",
     [b"CREATE PROCEDURE p() BEGIN SELECT 1; END", b"SELECT 2"]),
    (b"CREATE OR REPLACE DEFINER=`a`@`%` PROCEDURE IF NOT EXISTS p() "
     b"l1: BEGIN l2: BEGIN SELECT 1; END l2; END l1; SELECT 2",
     [b"CREATE OR REPLACE DEFINER=`a`@`%` PROCEDURE IF NOT EXISTS p() "
      b"l1: BEGIN l2: BEGIN SELECT 1; END l2; END l1", b"SELECT 2"]),
    (b"create definer = current_user() function f(a INT) returns int deterministic "
     b"return if(a > 0, 1, 2); SELECT f(1)",
     [b"create definer = current_user() function f(a INT) returns int deterministic "
      b"return if(a > 0, 1, 2)", b"SELECT f(1)"]),
    (b"CREATE FUNCTION f(a INT) RETURNS INT BEGIN IF (a > 0) THEN RETURN 1; END IF; "
     b"RETURN 2; END; SELECT 1",
     [b"CREATE FUNCTION f(a INT) RETURNS INT BEGIN IF (a > 0) THEN RETURN 1; END IF; "
      b"RETURN 2; END", b"SELECT 1"]),
    (b"CREATE PROCEDURE p() SELECT 1; SELECT 2", [b"CREATE PROCEDURE p() SELECT 1",
                                                 b"SELECT 2"]),
    (b"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = IF(NEW.a, 1, 2); SELECT 1",
     [b"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = IF(NEW.a, 1, 2)",
      b"SELECT 1"]),
    (b"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN IF NEW.a THEN SET NEW.b = 1; "
     b"END IF; END; SELECT 1",
     [b"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN IF NEW.a THEN SET NEW.b = 1; "
      b"END IF; END", b"SELECT 1"]),
    (b"CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO BEGIN DELETE FROM t; END; SELECT 1",
     [b"CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO BEGIN DELETE FROM t; END", b"SELECT 1"]),
    (b"ALTER EVENT e DO BEGIN DELETE FROM t; END; SELECT 1",
     [b"ALTER EVENT e DO BEGIN DELETE FROM t; END", b"SELECT 1"]),
    (b"BEGIN NOT ATOMIC DECLARE x INT; SET x = 1; SELECT x; END; SELECT 2",
     [b"BEGIN NOT ATOMIC DECLARE x INT; SET x = 1; SELECT x; END", b"SELECT 2"]),
    (b"IF 1 THEN SELECT 1; ELSE SELECT 2; END IF; SELECT 3",
     [b"IF 1 THEN SELECT 1; ELSE SELECT 2; END IF", b"SELECT 3"]),
    (b"lbl: WHILE 0 DO SELECT 1; END WHILE lbl; SELECT 3",
     [b"lbl: WHILE 0 DO SELECT 1; END WHILE lbl", b"SELECT 3"]),
    (b"BEGIN; SELECT 1; COMMIT", [b"BEGIN", b"SELECT 1", b"COMMIT"]),
    (b"BEGIN WORK; SELECT 1", [b"BEGIN WORK", b"SELECT 1"]),
    (b"SELECT REPEAT('a', 2); SELECT IF(1, 2, 3); SELECT 1",
     [b"SELECT REPEAT('a', 2)", b"SELECT IF(1, 2, 3)", b"SELECT 1"]),
    (b"CREATE TABLE t (a INT, `begin` INT); CREATE TABLE IF NOT EXISTS u (b INT); SELECT 1",
     [b"CREATE TABLE t (a INT, `begin` INT)", b"CREATE TABLE IF NOT EXISTS u (b INT)",
      b"SELECT 1"]),
    (b"SET @a := 1; SELECT @a", [b"SET @a := 1", b"SELECT @a"]),
    (b"CREATE PROCEDURE p() BEGIN SELECT 1", [b"CREATE PROCEDURE p() BEGIN SELECT 1"]),
])
def test_compound_statements(sql, expected):
    assert split_statements(sql) == expected


def test_compound_prefixes_are_safe():
    for cut in range(len(PROC)):  # no prefix raises, and none splits before the body ends
        assert len(split_statements(PROC[:cut])) <= 1
