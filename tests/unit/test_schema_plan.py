"""`dal schema` without a database: parsing the schema file, placing tables, describing drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_config
from tools.schema import (
    DEFAULT_SCHEMA,
    SchemaError,
    describe_drift,
    normalise,
    parse_schema,
    plan,
    plan_warnings,
    split_statements,
)

TEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "test.yaml"

ORDERS = """CREATE TABLE `orders` (
  `id` bigint(20) unsigned NOT NULL,
  `note` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_note` (`note`)
) ENGINE=InnoDB AUTO_INCREMENT=17 DEFAULT CHARSET=utf8mb4"""


def test_split_ignores_semicolons_in_quotes_and_comments() -> None:
    text = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE a (b VARCHAR(3) DEFAULT ';', c INT COMMENT 'it''s; \\' ok');\n"
        "/* block; comment */ # hash; comment\n"
        "\n"
        "CREATE TABLE `x;y` (z INT) /*!50100 ENGINE=InnoDB */;;\n"
    )
    assert split_statements(text) == [
        (2, "CREATE TABLE a (b VARCHAR(3) DEFAULT ';', c INT COMMENT 'it''s; \\' ok')"),
        (5, "CREATE TABLE `x;y` (z INT) /*!50100 ENGINE=InnoDB */"),
    ]


def test_parse_the_shipped_schema() -> None:
    tables = parse_schema(DEFAULT_SCHEMA)
    assert [t.name for t in tables] == ["orders", "order_items", "merchants", "regions"]
    assert tables[0].line == 5
    assert tables[0].sql.startswith("CREATE TABLE IF NOT EXISTS orders (")


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DROP TABLE orders;", "expected a CREATE TABLE statement"),
        ("CREATE TABLE trade.orders (id INT);", "names a database"),
        ("CREATE OR REPLACE TABLE t (id INT);", "not allowed"),
        ("CREATE TABLE t (id INT);\ncreate table `t` (id INT);", "defined twice"),
        ("-- nothing\n", "no CREATE TABLE statement"),
    ],
)
def test_parse_refuses_with_file_and_line(tmp_path: Path, sql: str, problem: str) -> None:
    file = tmp_path / "bad.sql"
    file.write_text(sql)
    with pytest.raises(SchemaError, match=problem) as exc:
        parse_schema(file)
    assert str(exc.value).startswith(str(file))


def test_plan_places_each_table_by_its_kind() -> None:
    config = load_config(TEST_CONFIG)
    targets = {t.database: t for t in plan(config, parse_schema(DEFAULT_SCHEMA))}
    assert len(targets) == 241
    assert targets["trade"].instance == "a"
    assert targets["trade"].tables == ("merchants", "regions")
    for prefix in ("user_", "merchant_"):
        for shard in range(120):
            target = targets[f"{prefix}{shard:03d}"]
            assert target.tables == ("orders", "order_items", "regions")
            assert target.instance == ("a" if shard < 60 else "b")


def test_a_table_the_config_does_not_name_is_unsharded(tmp_path: Path) -> None:
    file = tmp_path / "s.sql"
    file.write_text("CREATE TABLE orders (id INT);\nCREATE TABLE audit (id INT);")
    config = load_config(TEST_CONFIG)
    targets = {t.database: t for t in plan(config, parse_schema(file))}
    assert targets["trade"].tables == ("audit",)
    assert targets["user_001"].tables == ("orders",)
    warnings = plan_warnings(config, parse_schema(file))
    assert "trade: table 'regions' is in the config but not in the schema file" in warnings


def test_describe_drift() -> None:
    want = normalise(ORDERS)
    assert "AUTO_INCREMENT" not in want
    extra = want.replace("  PRIMARY", "  `x` int(11) DEFAULT NULL,\n  PRIMARY")
    assert describe_drift(want, extra) == "column x is extra"
    assert describe_drift(want, want.replace("255", "200")) == "column note differs"
    no_key = want.replace(",\n  KEY `idx_note` (`note`)", "")
    assert describe_drift(want, no_key) == "index idx_note is missing"
    aria = want.replace("InnoDB", "Aria")
    options = "table options differ (ENGINE=Aria DEFAULT CHARSET=utf8mb4)"
    assert describe_drift(want, aria) == options
