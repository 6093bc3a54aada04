"""More logical databases (issue 22): an admin's CREATE DATABASE makes an unsharded logical
database (named with server.create_database_prefix, test_ in test.yaml) on the default
instance, registered in dal_meta for every DAL process; DROP DATABASE removes it. Drivers' and
ORMs' suites need such a second schema: SQLAlchemy's reflection of one is checked against the
same reflection straight on MariaDB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pymysql
import pymysql.cursors
import pytest
from sqlalchemy import create_engine, inspect

from tests.own_dal import own_dal

HOST = "127.0.0.1"


@pytest.fixture
def created(direct) -> Iterator[str]:
    """A fresh name DAL may create; the database and its registry row are gone afterwards."""
    name = f"test_cdb_{uuid.uuid4().hex[:8]}"
    yield name
    with direct("a", account="dba").cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute("DELETE FROM dal_meta.created_databases WHERE name = %s", (name,))


def _code(conn, sql: str) -> int | None:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
    except pymysql.MySQLError as exc:
        return exc.args[0]
    return None


def _databases(conn) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return [row[0] for row in cur.fetchall()]


def test_create_use_and_drop_a_database(dal, connect, direct, created) -> None:
    admin = connect("admin", "admin")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {created} CHARACTER SET utf8mb4")
        assert cur.rowcount == 1
        assert _code(admin, f"CREATE DATABASE {created}") == 1007
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {created}")
        # USE, DDL and writes in it; qualified names from another database.
        cur.execute(f"USE {created}")
        cur.execute("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(40))")
        cur.execute("INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (created,)
        cur.execute("USE trade")
        cur.execute(f"SELECT body FROM {created}.notes ORDER BY id")
        assert cur.fetchall() == (("one",), ("two",))
        cur.execute(f"SELECT n.body, m.id FROM `{created}`.notes n LEFT JOIN merchants m "
                    "ON m.id = -n.id WHERE n.id = 2")
        assert cur.fetchall() == (("two", None),)
        cur.execute(f"SHOW TABLES FROM {created}")
        assert cur.fetchall() == (("notes",),)
        cur.execute(f"SHOW TABLE STATUS FROM {created}")
        assert [row[0] for row in cur.fetchall()] == ["notes"]
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = %s", (created,))
        assert cur.fetchall() == ((created, "notes"),)
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (created,))
        assert cur.fetchall() == ((created,),)
    with direct("a", created).cursor() as cur:  # a database of its own on the default instance
        cur.execute("SELECT COUNT(*) FROM notes")
        assert cur.fetchone() == (2,)
    # Every user sees it (no `databases` list in test.yaml), logs in with it, reads it.
    app = connect(database=created)
    assert created in _databases(app)
    with app.cursor() as cur:
        cur.execute("SELECT body FROM notes WHERE id = 1")
        assert cur.fetchone() == ("one",)
    assert _code(app, f"DROP DATABASE {created}") == 1235  # admin users only
    assert _code(app, "CREATE DATABASE test_by_app") == 1235
    with admin.cursor() as cur:
        cur.execute(f"USE {created}")
        cur.execute(f"DROP DATABASE {created}")
        assert cur.rowcount == 1  # the tables it held, as MariaDB counts them
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (None,)
    assert created not in _databases(admin)
    assert _code(admin, f"USE {created}") == 1049
    assert _code(admin, f"SELECT * FROM {created}.notes") == 1049
    assert _code(admin, f"DROP DATABASE {created}") == 1008
    assert _code(admin, f"DROP DATABASE IF EXISTS {created}") is None
    with direct("a").cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (created,))
        assert cur.fetchall() == ()


@pytest.mark.parametrize("sql, code", [
    ("CREATE DATABASE other_db", 1235),          # not named with the prefix
    ("CREATE DATABASE `test_a-b`", 1235),         # not a plain name
    ("DROP DATABASE trade", 1235),                # the config's: stays refused
    ("CREATE DATABASE trade", 1007),              # exists, as MariaDB says
    ("CREATE DATABASE user_007", 1044),           # a shard's name
    ("DROP DATABASE merchant_001", 1044),
    ("CREATE DATABASE dal_meta", 1142),           # DAL's own
    ("ALTER DATABASE trade CHARACTER SET utf8mb4", 1235),
])
def test_what_create_and_drop_database_refuse(connect, sql: str, code: int) -> None:
    assert _code(connect("admin", "admin"), sql) == code


def test_every_dal_process_sees_a_created_database(dal, connect, created, tmp_path) -> None:
    """The registry is shared: a second DAL on the same backends (another worker) learns of
    a database created through the first, and of its drop, within the refresh interval."""
    with own_dal(tmp_path) as other:
        assert created not in _databases(other.connect())
        with connect("admin", "admin").cursor() as cur:
            cur.execute(f"CREATE DATABASE {created}")
            cur.execute(f"CREATE TABLE {created}.t (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {created}.t VALUES (7)")
        deadline = time.monotonic() + 10
        while created not in _databases(other.connect()) and time.monotonic() < deadline:
            time.sleep(0.2)
        conn = other.connect(database=created)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM t")
            assert cur.fetchall() == ((7,),)
        conn.close()
        with other.connect("admin", "admin").cursor() as cur:
            cur.execute(f"DROP DATABASE {created}")
        with connect().cursor() as cur:
            deadline = time.monotonic() + 10
            while _code(cur.connection, f"USE {created}") is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _code(cur.connection, f"USE {created}") == 1049


SCHEMA = """
CREATE TABLE {db}.parents (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(40) NOT NULL,
  UNIQUE KEY uq_parents_name (name)
) ENGINE=InnoDB;
CREATE TABLE {db}.children (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id BIGINT NOT NULL,
  note TEXT NULL COMMENT 'free text',
  created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_children_parent (parent_id),
  CONSTRAINT fk_children_parent FOREIGN KEY (parent_id) REFERENCES {db}.parents (id)
) ENGINE=InnoDB;
CREATE VIEW {db}.named AS SELECT id, name FROM {db}.parents
"""


def _reflect(url: str, schema: str) -> dict:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables = sorted(found.get_table_names(schema=schema))
        return {
            "schemas": schema in found.get_schema_names(),
            "tables": tables,
            "views": found.get_view_names(schema=schema),
            "columns": {t: [(c["name"], str(c["type"]), c["nullable"], c.get("comment"))
                            for c in found.get_columns(t, schema=schema)] for t in tables},
            "pk": {t: found.get_pk_constraint(t, schema=schema)["constrained_columns"]
                   for t in tables},
            "fks": {t: [(fk["name"], fk["constrained_columns"], fk["referred_schema"],
                         fk["referred_table"], fk["referred_columns"])
                        for fk in found.get_foreign_keys(t, schema=schema)] for t in tables},
            "indexes": {t: sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in found.get_indexes(t, schema=schema))
                        for t in tables},
            "unique": {t: sorted(u["name"] for u in
                                 found.get_unique_constraints(t, schema=schema))
                       for t in tables},
        }
    finally:
        engine.dispose()


def test_sqlalchemy_reflects_a_created_schema_as_mariadb_does(dal, connect, backends,
                                                              created) -> None:
    """SQLAlchemy's reflection tests want a second schema beside the default one: the same
    inspection of it through DAL (default database trade) and straight on MariaDB."""
    admin = connect("admin", "admin")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {created}")
        for statement in SCHEMA.format(db=created).split(";"):
            cur.execute(statement)
    a = backends["a"]
    direct = _reflect(f"mysql+pymysql://{a['user']}:{a['password']}@{HOST}:{a['port']}/trade",
                      created)
    through_dal = _reflect(f"mysql+pymysql://admin:admin@{HOST}:{dal.port}/trade", created)
    assert direct["tables"] == ["children", "parents"] and direct["views"] == ["named"]
    assert direct["fks"]["children"] == [("fk_children_parent", ["parent_id"], created,
                                          "parents", ["id"])]
    assert through_dal == direct
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {created}")


def test_live_settings_and_reload_leave_created_databases_alone(dal, connect, created) -> None:
    """SET DAL validates the running config without them; RELOAD DAL CONFIG does not count
    them as a change of the file's databases; the database is still there after both."""
    admin = connect("admin", "admin", cursorclass=pymysql.cursors.DictCursor)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {created}")
        cur.execute("SET DAL rules.max_rows = 0")
        cur.execute("RELOAD DAL CONFIG")
        status = {row["section"]: row["status"] for row in cur.fetchall()}
        assert status["databases"] == "unchanged", status
        cur.execute(f"CREATE TABLE {created}.t (id INT)")
        cur.execute(f"DROP DATABASE {created}")
