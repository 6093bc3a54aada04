"""DAL reads each statement as MariaDB will: a session setting that changes how the backend
reads text (sql_mode's ANSI_QUOTES and NO_BACKSLASH_ESCAPES, the client character set) is
refused in every form DAL could not follow, and text DAL passes on runs under the session's
own settings. Each case here was a way to make DAL's checks read a statement one way and
MariaDB another (found by review after the users' `databases:` fix), so that a name DAL
took for a string reached the backend as a table of a shard or of information_schema.
"""

from __future__ import annotations

import time

import pymysql
import pytest

HOST = "127.0.0.1"


def _refused(connect, sql: str) -> tuple[int, str]:
    conn = connect()
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as caught:
            cur.execute(sql)
        with conn.cursor() as cur:  # nothing changed: the session still reads as before
            cur.execute("SELECT @@sql_mode, @@character_set_client")
            mode, charset = cur.fetchone()
        assert "ANSI_QUOTES" not in mode and charset == "utf8mb4", (sql, mode, charset)
        return caught.value.args[0], caught.value.args[1]
    finally:
        conn.close()


@pytest.mark.parametrize("sql", ["SET sql_mode = 2+2", "SET sql_mode = -(-4)",
                                 "SET @@session.sql_mode = 4 | 0"])
def test_sql_mode_from_a_number_is_refused(dal, connect, sql) -> None:
    # 4 is ANSI_QUOTES by its bit: DAL would go on reading "..." as a string.
    code, message = _refused(connect, sql)
    assert code == 1235 and "sql_mode" in message


def test_sql_mode_from_names_still_evaluates(dal, connect) -> None:
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        cur.execute('SELECT "id" FROM merchants LIMIT 0')  # a name now, for both
        cur.execute("SELECT @@sql_mode")
        assert "ANSI_QUOTES" in cur.fetchone()[0]


@pytest.mark.parametrize("sql", ["SET character_set_client = 28",
                                 "SET @@character_set_client = CONCAT('gb', 'k')",
                                 "SET @@session.character_set_client = 28",
                                 "SET @@local.character_set_client = 'gbk'"])
def test_client_charset_by_number_or_expression_is_refused(dal, connect, sql) -> None:
    # 28 is gbk_chinese_ci: a multibyte character can end in a backslash byte.
    code, _ = _refused(connect, sql)
    assert code == 1115


def test_change_user_to_an_unsafe_charset_is_refused(dal) -> None:
    connector = pytest.importorskip("mysql.connector")
    conn = connector.connect(host=HOST, port=dal.port, user="app", password="app",
                             database="trade", use_pure=True)
    try:
        with pytest.raises(connector.Error) as caught:
            conn.cmd_change_user(username="app", password="app", database="trade", charset=28)
        assert caught.value.errno == 1115
        cur = conn.cursor()
        cur.execute("SELECT @@character_set_client")
        assert cur.fetchall() == [("utf8mb4",)]
    finally:
        conn.close()


@pytest.mark.parametrize("sql", [
    'SELECT USER FROM information_schema."PROCESSLIST"',
    'SELECT DATABASE(), USER FROM information_schema."PROCESSLIST"',
    'SELECT * FROM "user_001".orders',
])
def test_a_string_next_to_a_dot_is_a_syntax_error(dal, connect, sql) -> None:
    # MariaDB refuses it (1064); DAL's parser would have read the string as a name.
    code, _ = _refused(connect, sql)
    assert code == 1064


def test_table_status_filter_runs_under_the_sessions_sql_mode(dal, connect) -> None:
    # Under NO_BACKSLASH_ESCAPES '\' is a whole string, so the filter below names
    # merchants. Were the LIKE/WHERE run on a pooled connection in another mode, the quote
    # after the backslash would be escaped and the text would read otherwise (a syntax error
    # here; with a call in its place, code: such tails are refused, test_carried_statements).
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        cur.execute("SELECT @pin := 1")  # pinned: the pool's other connections serve SHOW
        cur.execute("SHOW TABLE STATUS WHERE Name = '\\' OR Name = 'merchants' -- '")
        assert [row[0] for row in cur.fetchall()] == ["merchants"]


@pytest.mark.parametrize(("sql", "code"), [
    # A FOR inside the values was taken for the one before the statement: EXECUTE IMMEDIATE
    # of any text would have run with DAL's backend grants.
    ("SET STATEMENT max_statement_time = (SELECT 0 FOR UPDATE) FOR EXECUTE IMMEDIATE "
     "CONCAT('SELECT * FROM dal', '_meta.gene_workers')", 1235),
    ("SET STATEMENT max_statement_time = 100 FOR PREPARE s FROM "
     "'SELECT * FROM dal_meta.gene_workers'", 1235),
    # Its EXECUTE would switch ANSI_QUOTES on without DAL knowing.
    ("PREPARE s FROM 'SET sql_mode = ''ANSI_QUOTES'''", 1235),
    ("PREPARE s FROM 'SET @@session.sql_mode = ?'", 1235),
    ("EXPLAIN FOR CONNECTION 1", 1227),
])
def test_statements_that_hide_another_are_refused(dal, connect, sql, code) -> None:
    assert _refused(connect, sql)[0] == code


def test_set_statement_with_plain_values_still_runs(dal, connect) -> None:
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SET STATEMENT max_statement_time = 100 FOR SELECT COUNT(*) FROM merchants")
        assert cur.fetchone()[0] >= 0


@pytest.mark.parametrize(("sql", "code"), [
    # latin1 reads 0xA0 as a space: after --, a comment to MariaDB, so the quote after it
    # opened no string; DAL read one, and the rest of the text hid from its checks.
    ("SELECT 1 --\xa0 '\n, x.* FROM dal_meta.gene_workers x -- '", 1064),
    ("SELECT * FROM dal_meta\xa0.gene_workers LIMIT ROWS EXAMINED 10", 1142),
    ("SELECT * FROM information_schema\xa0.PROCESSLIST", 1142),
])
def test_a_latin1_space_is_a_space(dal, sql, code) -> None:
    conn = pymysql.connect(host=HOST, port=dal.port, user="app", password="app",
                           database="trade", charset="latin1", autocommit=True,
                           read_timeout=20)
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as caught:
            cur.execute(sql)
        assert caught.value.args[0] == code
    finally:
        conn.close()


def test_a_prepared_statement_is_read_again_after_sql_mode_changes(dal) -> None:
    # Prepared and executed under the default sql_mode, this text is one shard's read of
    # orders ("\", ..., "/*" are string aliases to DAL and MariaDB alike). Under ANSI_QUOTES
    # both read "\" as a name and the rest as a subquery on dal_meta: once the session
    # switches, executions must be checked under the new reading, not take the fast route
    # built under the old one.
    from router.rows.types import ColumnType
    from tests.psclient import PsClient, ServerError

    text = ('SELECT COUNT(*) AS "\\", (SELECT COUNT(*) FROM dal_meta.gene_workers) AS q, '
            '2 AS "/*" /* */ FROM orders WHERE user_id = ?')
    long = (ColumnType.LONGLONG, False)
    client = PsClient(dal.port)
    client.login()
    try:
        statement = client.prepare(text)
        client.execute(statement.id, [(long, 1)])
        assert len(client.read_result().rows) == 1
        client.query(b"SET sql_mode = 'ANSI_QUOTES'")
        for user in (5, 9, 1):  # new shards, and the one the route knows
            client.execute(statement.id, [(long, user)])
            with pytest.raises(ServerError) as refused:
                client.read_result()
            assert refused.value.code == 1142, user
    finally:
        client.close()


@pytest.mark.parametrize("sql", ["SET @a = 1, character_set_client = 'gbk'",
                                 "SET @a = 1, NAMES 'gbk'",
                                 "SET @a := 1, @@character_set_client = 'gbk'",
                                 "SET @a = 1, CHARACTER SET 'gbk'"])
def test_a_pinned_set_cannot_carry_the_character_set(dal, connect, sql) -> None:
    # The user variable pins the SET, which then went to the backend whole.
    assert _refused(connect, sql)[0] == 1115


def test_a_comment_after_the_sql_mode_hides_nothing(dal, connect) -> None:
    # sqlglot kept the comment in the recorded value, and DAL's reading of it found no mode:
    # the backend read "..." as names while DAL read strings.
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SET @@sql_mode = 'ANSI_QUOTES' /* x */")
        cur.execute('SELECT "id" FROM merchants LIMIT 0')  # a name, for DAL too
        with pytest.raises(pymysql.MySQLError) as caught:
            cur.execute('SELECT 1 AS "\\", worker_id FROM dal_meta.gene_workers -- " '
                        "FROM merchants")
        assert caught.value.args[0] == 1142


def test_rewritten_statements_refuse_backslashes_under_no_backslash_escapes(dal, connect):
    # sqlglot reads backslashes as escapes whatever the sql_mode: the SQL DAL builds from its
    # tree (DATABASE(), information_schema) ran the middle of this as code, unchecked.
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
        with pytest.raises(pymysql.MySQLError) as caught:
            cur.execute("SELECT '\\' AS a ' , (SELECT COUNT(*) FROM information_schema."
                        "processlist) , '\\' AS b ', DATABASE()")
        assert caught.value.args[0] == 1235
        cur.execute("SELECT 'a\\', DATABASE()")  # a backslash DAL passes on as sent
        assert cur.fetchall() == (("a\\", "trade"),)


def test_a_parenthesized_information_schema_table_gets_the_logical_view(dal, connect):
    with connect().cursor() as cur:  # the fixture closes it
        cur.execute("SELECT DISTINCT TABLE_SCHEMA FROM (information_schema.TABLES)")
        schemas = {row[0] for row in cur.fetchall()}
    assert "trade" in schemas
    assert not {s for s in schemas if s.startswith(("user_", "merchant_"))}, schemas
    assert "dal_meta" not in schemas


@pytest.mark.parametrize(("sql", "name"), [
    ("SELECT @`leak_v` := 'secret'", "@leak_v"), ("SELECT @'leak_v' := 'secret'", "@leak_v"),
    ("SELECT @leak_v /**/ := 'secret'", "@leak_v"),
    ("SELECT 'secret' INTO /**/ @leak_v", "@leak_v"), ("SELECT 'secret' INTO@leak_v", "@leak_v"),
    ("SELECT @leak.v := 'secret'", "@`leak.v`"), ("DO @leak.w := 'secret'", "@`leak.w`"),
    ("SELECT @leak$ := 'secret'", "@leak$"), ("SELECT @`leak x` := 'secret'", "@`leak x`"),
])
def test_user_variables_in_any_spelling_stay_in_their_session(dal, connect, sql, name) -> None:
    # A spelling the pin patterns missed left the variable on a pooled connection, unreset,
    # for the next session of any user.
    for _ in range(4):
        writer = connect()
        with writer.cursor() as cur:
            cur.execute(sql)
        writer.close()
        reader = connect()
        with reader.cursor() as cur:
            cur.execute(f"SELECT {name}")
            assert cur.fetchone() == (None,), sql
        reader.close()


@pytest.mark.parametrize("sql", ["SELECT @@last_insert_id", "SELECT @@identity",
                                 "SELECT @@last_insert_id + 0", "SELECT @@identity FROM DUAL",
                                 "SELECT @@session.insert_id"])
def test_another_sessions_insert_id_is_not_shown(dal, connect, sql) -> None:
    # A pooled connection keeps the last insert id of whoever used it last: DAL answers the
    # session's own (alone in a SELECT) or refuses the read outside a transaction.
    for _ in range(3):
        writer = connect()
        with writer.cursor() as cur:
            cur.execute("SELECT LAST_INSERT_ID(4242)")
        writer.close()
        reader = connect()
        try:
            with reader.cursor() as cur:
                try:
                    cur.execute(sql)
                except pymysql.MySQLError as exc:
                    assert exc.args[0] == 1235, sql
                else:
                    assert cur.fetchone()[0] != 4242, sql
        finally:
            reader.close()


def test_a_named_lock_in_any_spelling_ends_with_its_session(dal, connect) -> None:
    holder = connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK/**/('dal_test_lock', 0)")
        assert cur.fetchone() == (1,)
    holder.close()
    other = connect()
    try:
        with other.cursor() as cur:
            for _ in range(50):  # the holder's connection is closed in the background
                cur.execute("SELECT IS_FREE_LOCK('dal_test_lock')")
                if cur.fetchone() == (1,):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the named lock outlived its session")
    finally:
        other.close()


def test_an_untracked_set_of_sql_mode_is_refused_in_every_spelling(dal) -> None:
    # Prepared, an executable comment is not expanded: the SET is planned as written, and
    # its @@session spelling escaped the check that refuses `sql_mode` (ANSI_QUOTES unseen).
    from tests.psclient import PsClient, ServerError

    client = PsClient(dal.port)
    client.login()
    try:
        for sql in ("SET /*!50000 @@session.sql_mode = 'ANSI_QUOTES' */",
                    "SET /*!50000 sql_mode = 'ANSI_QUOTES' */"):
            with pytest.raises(ServerError) as refused:
                client.prepare(sql)
            assert refused.value.code == 1235, sql
    finally:
        client.close()
