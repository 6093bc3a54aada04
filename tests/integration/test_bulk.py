"""COM_STMT_BULK_EXECUTE through DAL: hand-built packets (rows on both instances, NULL and
DEFAULT indicators, malformed packets) and the `mariadb` connector's ``executemany``, each
checked against a direct read of the owning shards."""

from __future__ import annotations

import time

import pytest

from dal.wire.binary import encode_value
from dal.wire.constants import MARIADB_CLIENT_STMT_BULK_OPERATIONS
from dal.wire.framing import frame
from router.rows.buffer import u16, u32
from router.rows.types import ColumnType as T
from tests.psclient import PsClient, ServerError

USERS = [812_011 + i * 6133 for i in range(6)]  # shards on both instances
INSERT = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
          "updated_at) VALUES (?, ?, ?, ?, ?, NOW(), NOW())")
TYPES = [(T.LONGLONG, True), (T.LONGLONG, True), (T.TINY, False), (T.VAR_STRING, False),
         (T.VAR_STRING, False)]
NONE, NULL, DEFAULT = 0, 1, 2


def bulk_packet(statement_id: int, types: list, rows: list[list], flags: int = 128) -> bytes:
    """A COM_STMT_BULK_EXECUTE; a cell is a value, None (NULL) or ``DEFAULT``."""
    parts = [b"\xfa", u32(statement_id), u16(flags)]
    if flags & 128:
        parts += [bytes((code, 0x80 if unsigned else 0)) for code, unsigned in types]
    for row in rows:
        for (code, unsigned), cell in zip(types, row, strict=True):
            if cell is None:
                parts.append(bytes((NULL,)))
            elif cell is DEFAULT:
                parts.append(bytes((DEFAULT,)))
            else:
                parts += [bytes((NONE,)), encode_value(code, unsigned, cell)]
    return frame(b"".join(parts), 0)


def owning_shard(direct, user: int) -> list[tuple]:
    shard = user % 120
    with direct("a" if shard < 60 else "b").cursor() as cur:
        cur.execute(f"SELECT id, user_id, status, note FROM user_{shard:03d}.orders WHERE "
                    "user_id = %s ORDER BY id", (user,))
        return list(cur.fetchall())


@pytest.fixture
def client(dal, connect):
    with connect().cursor() as cur:
        cur.execute(f"DELETE FROM orders WHERE user_id IN ({', '.join(map(str, USERS))})")
    ps = PsClient(dal.port)
    ps.login()
    yield ps
    ps.close()
    with connect().cursor() as cur:
        cur.execute(f"DELETE FROM orders WHERE user_id IN ({', '.join(map(str, USERS))})")


def test_bulk_insert_is_one_statement_split_by_shard(client, direct) -> None:
    stmt = client.prepare(INSERT)
    rows = [[user, 5, 1, b"9.50", f"bulk {user}".encode()] for user in USERS]
    rows[1][4] = None
    rows[2][4] = DEFAULT
    client.send(bulk_packet(stmt.id, TYPES, rows))
    result = client.read_result()
    assert result.affected_rows == len(USERS)
    assert result.insert_id % 120 == USERS[0] % 120  # the first generated id, a gene of it
    for i, user in enumerate(USERS):
        found = owning_shard(direct, user)
        assert len(found) == 1 and found[0][1:3] == (user, 1)
        assert found[0][3] == (None if i in (1, 2) else f"bulk {user}")
    assert found[0][0] and owning_shard(direct, USERS[0])[0][0] == result.insert_id
    # Types omitted: the ones bound last apply. Rows by (user_id, id), one statement each.
    ids = {user: owning_shard(direct, user)[0][0] for user in USERS}
    update = client.prepare("UPDATE orders SET status = ? WHERE user_id = ? AND id = ?")
    types = [(T.TINY, False), (T.LONGLONG, True), (T.LONGLONG, True)]
    client.send(bulk_packet(update.id, types, [[7, u, ids[u]] for u in USERS]))
    assert client.read_result().affected_rows == len(USERS)
    client.send(bulk_packet(update.id, types, [[8, u, ids[u]] for u in USERS[:2]], flags=0))
    assert client.read_result().affected_rows == 2
    assert [owning_shard(direct, u)[0][2] for u in USERS] == [8, 8, 7, 7, 7, 7]
    delete = client.prepare("DELETE FROM orders WHERE user_id = ? AND id = ?")
    types = [(T.LONGLONG, True), (T.LONGLONG, True)]
    client.send(bulk_packet(delete.id, types, [[u, ids[u]] for u in USERS]))
    assert client.read_result().affected_rows == len(USERS)
    assert all(owning_shard(direct, u) == [] for u in USERS)


def test_bulk_stops_at_the_first_error(client, direct) -> None:
    update = client.prepare("UPDATE orders SET status = ? WHERE user_id = ?")
    client.send(bulk_packet(update.id, [(T.TINY, False), (T.LONGLONG, True)],
                            [[1, USERS[0]], [1, None], [1, USERS[1]]]))
    with pytest.raises(ServerError) as info:  # user_id = NULL names no shard
        client.read_result()
    assert info.value.code == 1235 and "scatter write" in info.value.message
    assert client.run("SELECT ? + 1", [((T.LONGLONG, True), 41)]).rows == [[42]]


@pytest.mark.parametrize("packet, code, words", [
    (b"\xfa", 1243, "Unknown prepared statement"),
    (None, 1210, "mysqld_stmt_bulk_execute"),  # a value cut short
    (None, 1210, "indicator"),
    (None, 1235, "per-row results"),
])
def test_malformed_bulk_is_an_error_and_the_session_goes_on(client, packet, code, words) -> None:
    stmt = client.prepare("UPDATE orders SET status = ? WHERE user_id = ?")
    if packet is None:
        good = bulk_packet(stmt.id, [(T.TINY, False), (T.LONGLONG, True)], [[1, USERS[0]]])[4:]
        packet = {"mysqld_stmt_bulk_execute": good[:-3], "indicator": good[:-9] + b"\x09",
                  "per-row results": good[:5] + u16(128 | 64) + good[7:]}[words]
    client.send(frame(packet, 0))
    with pytest.raises(ServerError) as info:
        client.read_result()
    assert info.value.code == code and words in info.value.message
    assert client.run("SELECT ? + 1", [((T.LONGLONG, True), 1)]).rows == [[2]]


def test_mariadb_connector_executemany_uses_bulk(dal, direct, client) -> None:
    mariadb = pytest.importorskip("mariadb", reason="pip package mariadb (needs libmariadb-dev)")
    from mariadb.constants import INDICATOR

    conn = mariadb.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                           database="trade", autocommit=True)
    try:
        assert conn.extended_server_capabilities & MARIADB_CLIENT_STMT_BULK_OPERATIONS
        cur = conn.cursor(binary=True)
        mark = f"cx{time.time_ns() % 10**9}"
        rows = [(u, 6, 2, "3.25", f"{mark} {u}") for u in USERS]
        rows[0] = (USERS[0], 6, 2, "3.25", INDICATOR.NULL)
        rows[1] = (USERS[1], 6, 2, "3.25", INDICATOR.DEFAULT)
        cur.executemany(INSERT, rows)
        assert cur.rowcount == len(USERS)
        for i, user in enumerate(USERS):
            found = owning_shard(direct, user)
            assert [r[3] for r in found] == [None if i < 2 else f"{mark} {user}"]
        cur.executemany("UPDATE orders SET status = ? WHERE user_id = ?",
                        [(9, u) for u in USERS])
        assert all(owning_shard(direct, u)[0][2] == 9 for u in USERS)
        cur.executemany("DELETE FROM orders WHERE user_id = ?", [(u,) for u in USERS])
        assert all(owning_shard(direct, u) == [] for u in USERS)
        cur.close()
    finally:
        conn.close()


def test_bulk_of_a_statement_without_parameters_is_refused(client) -> None:
    # Each row would take no bytes: the row loop used to spin for ever on the event loop,
    # stalling every client of the process.
    stmt = client.prepare("SELECT 1")
    client.send(frame(b"\xfa" + u32(stmt.id) + u16(128) + b"\x00", 0))
    with pytest.raises(ServerError) as info:
        client.read_result()
    assert info.value.code == 1210 and "without parameters" in info.value.message
    assert client.run("SELECT ? + 1", [((T.LONGLONG, True), 1)]).rows == [[2]]
