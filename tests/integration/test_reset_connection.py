"""COM_RESET_CONNECTION through DAL does what it does on a direct MariaDB connection: user
variables, LAST_INSERT_ID(), session variables, autocommit and the open transaction go; the
database stays; the character set goes back to the handshake's (SET NAMES is undone)."""

from __future__ import annotations

import uuid

import pymysql
import pytest

PROBE = ("SELECT @v, LAST_INSERT_ID(), @@sql_mode = @@global.sql_mode, "
         "@@character_set_client, @@character_set_results, DATABASE(), @@autocommit, "
         "@@in_transaction")


def reset_and_probe(conn: pymysql.connections.Connection, name: str, names: str) -> tuple:
    with conn.cursor() as cur:
        cur.execute(f"SET NAMES {names}")
        cur.execute("SET sql_mode = 'ANSI_QUOTES'")
        cur.execute("SET @v = 1")
        cur.execute("SET autocommit = 0")
        cur.execute("INSERT INTO merchants (name) VALUES (%s)", (name,))
        conn._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
        conn._read_ok_packet()
        cur.execute(PROBE)
        seen = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM merchants WHERE name = %s", (name,))
        return seen, cur.fetchone()[0]


@pytest.mark.parametrize(("handshake", "names"), [("latin1", "utf8mb4"), ("utf8mb4", "latin1")])
def test_reset_connection_matches_mariadb(connect, backends, handshake, names):
    cfg = backends["a"]
    direct = pymysql.connect(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                             password=cfg["password"], database="trade", charset=handshake,
                             autocommit=True)
    try:
        want = reset_and_probe(direct, f"reset-{uuid.uuid4()}", names)
    finally:
        direct.close()
    got = reset_and_probe(connect(charset=handshake), f"reset-{uuid.uuid4()}", names)
    assert got == want
    assert got == ((None, 0, 1, handshake, handshake, "trade", 1, 0), 0)
