"""Character sets: the collation a client announces in its handshake becomes the session's
(255, MySQL 8's utf8mb4_0900_ai_ci, which MariaDB 10.11 lacks, becomes utf8mb4_unicode_ci),
and clients of different character sets read the same non-ASCII text in their own, through
single-shard relays, scatter merges and unsharded tables, as a direct connection would."""

from __future__ import annotations

import uuid

import pymysql
import pytest

from router.rows.columns import decode_text_row
from tests.rawclient import RawClient

USER = 907_011  # user shard 11, instance a
TEXT = "Crème brûlée, naïve Ålborg ß 😀"


@pytest.mark.parametrize(("collation", "expected"), [
    (8, ("latin1", "latin1_swedish_ci", "latin1")),
    (33, ("utf8mb3", "utf8mb3_general_ci", "utf8mb3")),
    (45, ("utf8mb4", "utf8mb4_general_ci", "utf8mb4")),
    (224, ("utf8mb4", "utf8mb4_unicode_ci", "utf8mb4")),
    (255, ("utf8mb4", "utf8mb4_unicode_ci", "utf8mb4")),
])
def test_handshake_collation_becomes_the_session_collation(connect, dal, collation, expected):
    client = RawClient(dal.port)
    try:
        assert client.login(collation=collation)[:1] == b"\x00"
        packets = client.query(b"SELECT @@character_set_client, @@collation_connection, "
                               b"@@character_set_results")
        row = decode_text_row(packets[5], 3)
        assert tuple(v.decode() for v in row) == expected
    finally:
        client.close()


@pytest.fixture
def written(connect, direct):
    """A sharded order and a merchant whose text a utf8mb4 client wrote through DAL."""
    marker = uuid.uuid4().hex[:10]
    writer = connect(charset="utf8mb4", ssl_disabled=True)
    with writer.cursor() as cur:
        cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
                    "updated_at) VALUES (%s, 5, 1, 1, %s, NOW(), NOW())",
                    (USER, f"{marker} {TEXT}"))
        order_id = cur.lastrowid
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (f"{marker} {TEXT}",))
        merchant_id = cur.lastrowid
    yield marker, order_id, merchant_id
    with writer.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE user_id = %s", (USER,))
        cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))


@pytest.mark.parametrize("charset", ["latin1", "utf8mb4", "utf8"])
@pytest.mark.parametrize("how", ["handshake", "set-names"])
def test_readers_get_text_in_their_charset(connect, backends, written, charset, how):
    marker, order_id, merchant_id = written
    if how == "handshake":
        dal = connect(charset=charset, ssl_disabled=True)
    else:  # logs in as latin1, then switches with SET NAMES
        dal = connect(charset="latin1", ssl_disabled=True)
        dal.set_character_set(charset)
    cfg = backends["a"]
    ref = pymysql.connect(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                          password=cfg["password"], charset=charset)
    queries = [  # (through DAL, directly on the owning database)
        (f"SELECT note FROM orders WHERE user_id = {USER}",  # one shard, relayed
         f"SELECT note FROM user_{USER % 120:03d}.orders WHERE user_id = {USER}"),
        (f"SELECT note FROM orders WHERE id = {order_id}",  # routed by the id's gene
         f"SELECT note FROM user_{USER % 120:03d}.orders WHERE id = {order_id}"),
        (f"SELECT note FROM orders WHERE note LIKE '{marker}%' ORDER BY id",  # scatter
         f"SELECT note FROM user_{USER % 120:03d}.orders WHERE note LIKE '{marker}%'"),
        (f"SELECT name FROM merchants WHERE id = {merchant_id}",  # unsharded
         f"SELECT name FROM trade.merchants WHERE id = {merchant_id}"),
    ]
    try:
        for through_dal, directly in queries:
            with dal.cursor() as cur:
                cur.execute(through_dal)
                got = cur.fetchall()
            with ref.cursor() as cur:
                cur.execute(directly)
                want = cur.fetchall()
            assert got == want, through_dal
            expected = TEXT if charset == "utf8mb4" else TEXT.replace("😀", "?")
            assert got == ((f"{marker} {expected}",),), through_dal
    finally:
        ref.close()


def test_a_prepared_statement_is_read_in_each_sessions_client_character_set(
        tmp_path, direct) -> None:
    """MariaDB reads a prepared text's literals in the client character set in force when it
    was prepared. Two sessions sharing DAL's one pooled connection prepare the same bytes, the
    second with character_set_client latin1: each gets what a direct connection with its own
    settings gets, not the first session's backend statement."""
    from tests.own_dal import own_dal
    from tests.psclient import PsClient

    sql = "SELECT 'é' AS v, COUNT(*) AS n FROM merchants WHERE id < 0".encode()
    truth = {}
    for charset in ("utf8mb4", "latin1"):
        conn = direct("a", "trade")
        with conn.cursor() as cur:
            cur.execute(f"SET character_set_client = {charset}")
            cur.execute(sql)
            truth[charset] = cur.fetchone()[0]
    assert truth["utf8mb4"] != truth["latin1"]  # the test means something
    with own_dal(tmp_path, pool={"max_size": 1, "pipeline_depth": 0}) as dal:
        seen = {}
        for charset in ("utf8mb4", "latin1"):  # one after the other, on the one connection
            ps = PsClient(dal.port)
            try:
                assert ps.login()[:1] == b"\x00"
                assert ps.query(f"SET character_set_client = {charset}".encode())[0][:1] == (
                    b"\x00")
                for _ in range(2):
                    seen[charset] = ps.run(sql).rows[0][0].decode()
            finally:
                ps.close()
    assert seen == truth
