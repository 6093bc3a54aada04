"""`dal schema` without a database: parsing the schema files, placing tables, describing drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load_config
from config.model import Config
from tools.schema import (
    DEFAULT_SCHEMA,
    SCHEMA_DIR,
    SchemaError,
    describe_drift,
    load_schemas,
    normalise,
    parse_schema,
    plan,
    plan_warnings,
    schema_path,
    split_statements,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
TEST_CONFIG = CONFIG_DIR / "test.yaml"
BENCH_CONFIG = CONFIG_DIR / "bench.yaml"
SBTEST_SCHEMA = CONFIG_DIR / "schema" / "sbtest.sql"


def with_databases(**extra: dict[str, Any]) -> Config:
    """config/test.yaml plus more logical databases, each one dimension `user` over 120 shards."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    for name, db in extra.items():
        raw["databases"][name] = {
            "default_instance": "a",
            "default_database": name,
            "dimensions": {"user": {"key": "id", "prefix": f"{name}_", "placement": [
                {"shards": "0-59", "instance": "a"}, {"shards": "60-119", "instance": "b"}]}},
            **db,
        }
    return Config.model_validate(raw)

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


def test_each_logical_database_gets_only_its_own_schema_file() -> None:
    config = load_config(BENCH_CONFIG)
    assert schema_path("trade", config.databases["trade"]) == DEFAULT_SCHEMA
    assert schema_path("sbtest", config.databases["sbtest"]) == SBTEST_SCHEMA
    schemas = load_schemas(config)
    assert [t.name for t in schemas["trade"]] == ["orders", "order_items", "merchants", "regions"]
    # sbtest1 for `dal bench --sharded`, orders for `dal bench --scatter`
    assert [t.name for t in schemas["sbtest"]] == ["sbtest1", "orders"]
    assert {t.file for t in schemas["sbtest"]} == {str(SBTEST_SCHEMA)}
    targets = {t.database: t for t in plan(config, schemas)}
    assert len(targets) == 241 + 121
    assert targets["trade"].tables == ("merchants", "regions")
    assert targets["user_007"].tables == ("orders", "order_items", "regions")
    assert targets["sbtest"].tables == ()  # the default database: both tables are sharded
    for shard in range(120):
        target = targets[f"sbtest_{shard:03d}"]
        assert target.tables == ("sbtest1", "orders")
        assert [d.file for d in target.defs] == [str(SBTEST_SCHEMA)] * 2
        # all on a, the instance the direct target runs on (config/bench.yaml says why)
        assert target.instance == "a"
    assert plan_warnings(config, schemas) == []


def test_an_explicit_schema_file_applies_to_every_logical_database() -> None:
    config = load_config(BENCH_CONFIG)
    schemas = load_schemas(config, DEFAULT_SCHEMA)
    assert schemas["sbtest"] == schemas["trade"] == parse_schema(DEFAULT_SCHEMA)
    targets = {t.database: t for t in plan(config, schemas)}
    # Of trade's tables sbtest's config names only orders (sharded); the rest are unsharded.
    assert targets["sbtest_003"].tables == ("orders",)
    assert targets["sbtest"].tables == ("order_items", "merchants", "regions")
    assert "sbtest: table 'sbtest1' is in the config but not in the schema file" in (
        plan_warnings(config, schemas))


def test_the_schema_key_names_a_file_relative_to_the_config_directory(tmp_path: Path) -> None:
    mine = tmp_path / "mine.sql"
    mine.write_text("CREATE TABLE t (id INT);")
    config = with_databases(
        other={"schema": "schema/sbtest.sql", "tables": {"sbtest1": {"kind": "sharded"}}},
        third={"schema": str(mine)},
    )
    assert schema_path("other", config.databases["other"]) == SCHEMA_DIR / "schema/sbtest.sql"
    schemas = load_schemas(config)
    assert [t.name for t in schemas["other"]] == ["sbtest1", "orders"]
    assert schemas["third"][0].file == str(mine)
    targets = {t.database: t for t in plan(config, schemas)}
    assert targets["other_119"].tables == ("sbtest1",)
    assert targets["other"].tables == ("orders",)  # not named by other's config: unsharded
    assert targets["third"].tables == ("t",)
    assert targets["third_000"].tables == ()


def test_a_missing_schema_file_is_an_error_naming_it() -> None:
    config = with_databases(nosuch={})
    with pytest.raises(SchemaError) as exc:
        load_schemas(config)
    message = str(exc.value)
    assert message.startswith(str(SCHEMA_DIR / "schema" / "nosuch.sql"))
    assert "logical database 'nosuch'" in message and "does not exist" in message
    config = with_databases(other={"schema": "schema/gone.sql"})
    with pytest.raises(SchemaError, match=r"gone\.sql: .*databases\.other"):
        load_schemas(config)


def test_one_database_defined_differently_by_two_files_is_an_error(tmp_path: Path) -> None:
    one, two = tmp_path / "one.sql", tmp_path / "two.sql"
    one.write_text("CREATE TABLE t (id INT);")
    two.write_text("CREATE TABLE t (id BIGINT);")
    same = {"default_database": "shared"}
    config = with_databases(x={"schema": str(one), **same}, y={"schema": str(two), **same})
    with pytest.raises(SchemaError, match=r"database shared on instance a would hold table 't'"):
        plan(config, load_schemas(config))
    two.write_text("CREATE TABLE t (id INT);")  # the same definition twice is fine
    targets = {t.database: t for t in plan(config, load_schemas(config))}
    assert targets["shared"].tables == ("t",)


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
