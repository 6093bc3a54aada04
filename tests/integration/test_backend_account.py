"""The backend accounts hold only what their users need (docs/security.md): a statement that
reached a backend as DAL's account, by whatever path, cannot administer the server, read or
write files, touch accounts, global settings or the system schemas. The same for `dal sync`'s
account, which also cannot read the user shards. And `dal localdb up` narrows an account that an
older version created with ALL PRIVILEGES."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from config.model import Config
from tests.dal_process import running_test_config
from tools import accounts, localdb

ACCESS_DENIED = {1044, 1045, 1142, 1227}  # database, access, table, privilege refusals

# What an application statement slipping past DAL's own allowlist could try.
REFUSED = [
    ("SHUTDOWN", 1227),
    ("CREATE USER 'dal_intruder'@'%' IDENTIFIED BY 'x'", 1227),
    ("GRANT SELECT ON trade.* TO 'dal_sync'@'127.0.0.1'", 1044),
    ("GRANT ALL PRIVILEGES ON *.* TO CURRENT_USER", 1045),
    ("SET GLOBAL max_connections = 10", 1227),
    ("SET GLOBAL read_only = 1", 1227),
    ("FLUSH PRIVILEGES", 1227),
    ("SELECT 1 INTO OUTFILE '/tmp/dal_backend_account_probe'", 1227),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE trade.merchants", 1045),
    ("SELECT * FROM mysql.user", 1142),
    ("SELECT * FROM mysql.global_priv", 1142),
    ("SET sql_log_bin = 0", 1227),
    ("SET SESSION binlog_format = 'STATEMENT'", 1227),
    ("PURGE BINARY LOGS BEFORE NOW()", 1227),
    ("SHOW MASTER STATUS", 1227),
    ("CREATE DATABASE dal_intruder", 1044),
]


@pytest.fixture(scope="module")
def config() -> Config:
    return running_test_config()


def login(config: Config, user: str, password: str, instance: str = "a") -> pymysql.Connection:
    inst = config.instances[instance]
    return pymysql.connect(host=inst.host, port=inst.port, user=user, password=password,
                           autocommit=True)


@pytest.fixture
def dal_account(config: Config) -> Iterator[pymysql.cursors.Cursor]:
    inst = config.instances["a"]
    conn = login(config, inst.user, inst.password)
    yield conn.cursor()
    conn.close()


def refusal(cur: pymysql.cursors.Cursor, sql: str) -> int:
    with pytest.raises(pymysql.MySQLError) as caught:
        cur.execute(sql)
    return caught.value.args[0]


@pytest.mark.parametrize(("sql", "code"), REFUSED, ids=[sql[:40] for sql, _ in REFUSED])
def test_dal_account_is_refused_by_the_backend(dal_account, sql: str, code: int) -> None:
    assert refusal(dal_account, sql) == code


def test_dal_account_cannot_read_files(dal_account) -> None:
    # Without FILE, MariaDB answers NULL rather than an error.
    dal_account.execute("SELECT LOAD_FILE('/etc/passwd')")
    assert dal_account.fetchone() == (None,)


def test_dal_account_holds_no_global_privilege(config: Config, dal_account) -> None:
    user = config.instances["a"].user
    dal_account.execute("SHOW GRANTS")
    grants = [row[0] for row in dal_account.fetchall()]
    assert grants[0].startswith(f"GRANT USAGE ON *.* TO `{user}`@")
    assert not any("ALL PRIVILEGES" in g or "WITH GRANT OPTION" in g for g in grants)
    scopes = sorted(g.split(" ON ")[1].split(" TO ")[0] for g in grants[1:])
    # test.yaml's server.create_database_prefix (test_): the databases admins may create.
    assert config.server.create_database_prefix == "test_"
    assert scopes == sorted(["`trade`.*", "`user\\_%`.*", "`merchant\\_%`.*",
                             "`dal\\_meta`.*", "`test\\_%`.*"])
    routines = [g for g in grants if "CREATE ROUTINE" in g]
    assert sorted(g.split(" ON ")[1].split(" TO ")[0] for g in routines) == [
        "`test\\_%`.*", "`trade`.*"]


def test_dal_account_still_does_what_dal_needs(config: Config, dal_account) -> None:
    """Reads and writes of shards, temporary tables, LOCK TABLES, and XA RECOVER (which lists
    and resolves branches of any connection without a privilege on MariaDB 10.11)."""
    cur = dal_account
    cur.execute("SELECT COUNT(*) >= 0 FROM user_000.orders")
    cur.execute("CREATE TEMPORARY TABLE trade.dal_account_tmp (a INT)")
    cur.execute("LOCK TABLES trade.merchants READ")
    cur.execute("UNLOCK TABLES")
    cur.execute("XA RECOVER")


def test_dal_account_kills_its_own_queries(config: Config) -> None:
    """The statement timeout's KILL QUERY: same account, no PROCESS or SUPER needed."""
    inst = config.instances["a"]
    victim = login(config, inst.user, inst.password)
    killer = login(config, inst.user, inst.password)
    try:
        thread = victim.thread_id()
        with killer.cursor() as cur:
            cur.execute(f"KILL QUERY {thread}")
        with victim.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        victim.close()
        killer.close()


def test_dal_account_cannot_kill_other_accounts(config: Config) -> None:
    other = login(config, config.sync.user, config.sync.password)
    inst = config.instances["a"]
    conn = login(config, inst.user, inst.password)
    try:
        with conn.cursor() as cur:
            assert refusal(cur, f"KILL QUERY {other.thread_id()}") == 1095  # not your thread
    finally:
        conn.close()
        other.close()


def test_sync_account_reads_binlog_and_writes_only_the_copy(config: Config) -> None:
    conn = login(config, config.sync.user, config.sync.password)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            assert cur.fetchone() is not None
            cur.execute("SELECT COUNT(*) >= 0 FROM merchant_000.orders")
            assert refusal(cur, "SELECT COUNT(*) FROM user_000.orders") == 1142
            assert refusal(cur, "SELECT COUNT(*) FROM trade.merchants") in ACCESS_DENIED
            for sql, code in REFUSED:
                if sql != "SHOW MASTER STATUS":
                    assert refusal(cur, sql) == code, sql
            cur.execute("SELECT LOAD_FILE('/etc/passwd')")
            assert cur.fetchone() == (None,)
    finally:
        conn.close()


def test_dba_account_is_no_server_administrator(config: Config) -> None:
    conn = login(config, config.dba.user, config.dba.password)
    try:
        with conn.cursor() as cur:
            for sql in ("SHUTDOWN", "SET GLOBAL max_connections = 10", "FLUSH PRIVILEGES",
                        "SELECT 1 INTO OUTFILE '/tmp/dal_backend_account_probe'"):
                assert refusal(cur, sql) == 1227, sql
            cur.execute("SELECT LOAD_FILE('/etc/passwd')")
            assert cur.fetchone() == (None,)
    finally:
        conn.close()


def test_load_file_through_dal_never_returns_the_file(connect) -> None:
    """Whatever DAL's allowlist decides, the backend never hands out a file."""
    for user in ("app", "admin"):
        with connect(user=user, password=user).cursor() as cur:
            try:
                cur.execute("SELECT LOAD_FILE('/etc/passwd')")
            except pymysql.MySQLError:
                continue  # refused by DAL itself
            assert cur.fetchone() == (None,)


def _grants(m: localdb.Managed, user: str) -> list[str]:
    conn = localdb.root_connect(m)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS FOR %s@'127.0.0.1'", (user,))
            return sorted(row[0] for row in cur.fetchall())
    finally:
        conn.close()


def test_localdb_up_narrows_an_account_with_all_privileges(config: Config) -> None:
    """A datadir from an older version: DAL's account has ALL PRIVILEGES WITH GRANT OPTION."""
    m = next(m for m in localdb.managed(config) if m.name == "a")
    user = m.instance.user
    intended = _grants(m, user)
    root = localdb.root_connect(m)
    try:
        with root.cursor() as cur:
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION",
                        (user,))
        said: list[str] = []
        localdb.up_one(m, said.append)
        assert _grants(m, user) == intended
        assert said[0] == f"a: granted {user} (dal) its privileges"
        said.clear()
        localdb.up_one(m, said.append)  # a second time changes nothing
        assert said == [f"a: already running, pid {localdb.server_pid(m)} on {m.address}"]
    finally:
        localdb.up_one(m, lambda line: None)
        root.close()


def test_grant_scopes_escape_wildcards() -> None:
    assert accounts.database("user_") == "`user\\_`.*"
    assert accounts.database("user_", prefix=True) == "`user\\_%`.*"
    assert accounts.database("a`b%") == "`a``b\\%`.*"


def test_accounts_of_the_bench_config_cover_sbtest() -> None:
    from config.loader import load_config
    from tests.dal_process import ROOT

    bench = load_config(ROOT / "config" / "bench.yaml")
    scopes = accounts.dal_scopes(bench)
    assert {"`sbtest`.*", "`sbtest\\_%`.*", "`trade`.*", "`user\\_%`.*"} <= set(scopes)
    assert accounts.copy_scopes(bench) == ["`merchant\\_%`.*"]


@pytest.mark.parametrize(("section", "key"), [("sync", "sync.user"), ("dba", "dba.user")])
def test_one_account_for_two_roles_is_refused(tmp_path, section: str, key: str) -> None:
    import yaml

    from config.loader import ConfigError, load_config
    from tests.dal_process import TEST_CONFIG

    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw[section] = {"user": raw["instances"]["a"]["user"], "password": "x"}
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert f"is also {key}" in str(refused.value)


def test_admin_ddl_on_unsharded_tables_still_works_through_dal(connect) -> None:
    """What DAL's account keeps CREATE, ALTER, INDEX, DROP, CREATE VIEW and SHOW VIEW for."""
    with connect(user="admin", password="admin").cursor() as cur:
        cur.execute("DROP VIEW IF EXISTS dal_account_view")
        cur.execute("DROP TABLE IF EXISTS dal_account_ddl")
        cur.execute("CREATE TABLE dal_account_ddl (id INT PRIMARY KEY, v INT)")
        cur.execute("ALTER TABLE dal_account_ddl ADD COLUMN w INT")
        cur.execute("CREATE INDEX dal_account_v ON dal_account_ddl (v)")
        cur.execute("INSERT INTO dal_account_ddl VALUES (1, 2, 3)")
        cur.execute("CREATE VIEW dal_account_view AS SELECT id, v + w AS s FROM dal_account_ddl")
        cur.execute("SELECT s FROM dal_account_view")
        assert cur.fetchall() == ((5,),)
        cur.execute("SHOW CREATE VIEW dal_account_view")
        assert "dal_account_ddl" in cur.fetchone()[1]
        cur.execute("DROP VIEW dal_account_view")
        cur.execute("DROP TABLE dal_account_ddl")
