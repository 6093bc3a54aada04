"""Every binary-protocol type through DAL, compared with MariaDB itself (hypothesis).

Each example inserts one row with a prepared statement through DAL and the same row with a
prepared statement directly on the backend, then reads both back with the text protocol and
the binary protocol: DAL's answers must equal MariaDB's. The text row MariaDB sends is also
put through the encoder DAL uses for merged results (`binary_result`), which must give
MariaDB's own binary row.
"""

from __future__ import annotations

import itertools
import struct
import time

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dal.prepared_results import binary_result
from dal.wire.binary import DateTime, Time, column_types, decode_binary_row
from pool.connection import decode_response
from router.rows.types import ColumnType as T
from tests.psclient import PsClient


def as_float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


# (column, SQL type, parameter type, unsigned, strategy)
COLUMNS = [
    ("c_tiny", "TINYINT", T.TINY, False, st.integers(-128, 127)),
    ("c_utiny", "TINYINT UNSIGNED", T.TINY, True, st.integers(0, 255)),
    ("c_short", "SMALLINT", T.SHORT, False, st.integers(-(2**15), 2**15 - 1)),
    ("c_ushort", "SMALLINT UNSIGNED", T.SHORT, True, st.integers(0, 2**16 - 1)),
    ("c_medium", "MEDIUMINT", T.LONG, False, st.integers(-(2**23), 2**23 - 1)),
    ("c_int", "INT", T.LONG, False, st.integers(-(2**31), 2**31 - 1)),
    ("c_uint", "INT UNSIGNED", T.LONG, True, st.integers(0, 2**32 - 1)),
    ("c_big", "BIGINT", T.LONGLONG, False, st.integers(-(2**63), 2**63 - 1)),
    ("c_ubig", "BIGINT UNSIGNED", T.LONGLONG, True, st.integers(0, 2**64 - 1)),
    ("c_float", "FLOAT", T.FLOAT, False,
     st.floats(-1e30, 1e30, allow_nan=False).map(as_float32)),
    ("c_double", "DOUBLE", T.DOUBLE, False, st.floats(allow_nan=False, allow_infinity=False)),
    ("c_dec", "DECIMAL(20,6)", T.NEWDECIMAL, False,
     st.decimals(-(10**13) + 1, 10**13 - 1, places=6).map(lambda d: str(d).encode())),
    ("c_date", "DATE", T.DATE, False,
     st.tuples(st.integers(1000, 9999), st.integers(1, 12), st.integers(1, 28))
     .map(lambda t: DateTime(*t))),
    ("c_dt", "DATETIME(6)", T.DATETIME, False,
     st.tuples(st.integers(1000, 9999), st.integers(1, 12), st.integers(1, 28),
               st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
               st.integers(0, 999999)).map(lambda t: DateTime(*t))),
    ("c_ts", "TIMESTAMP(6) NULL", T.TIMESTAMP, False,
     st.tuples(st.integers(1980, 2030), st.integers(1, 12), st.integers(1, 28),
               st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
               st.integers(0, 999999)).map(lambda t: DateTime(*t))),
    ("c_time", "TIME(6)", T.TIME, False,
     st.tuples(st.booleans(), st.integers(0, 33), st.integers(0, 23),
               st.integers(0, 59), st.integers(0, 59), st.integers(0, 999999))
     .map(lambda t: Time(*t))),
    ("c_year", "YEAR", T.SHORT, False, st.integers(1901, 2155)),
    ("c_char", "CHAR(10)", T.STRING, False,
     st.text("abcxyz é😀", max_size=10).map(lambda s: s.rstrip().encode())),
    ("c_varchar", "VARCHAR(100)", T.VAR_STRING, False,
     st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass"))
     .filter(lambda b: b"\x00" not in b).map(lambda b: b.decode("utf-8", "ignore").encode())),
    ("c_blob", "BLOB", T.BLOB, False, st.binary(max_size=300)),
    ("c_text", "TEXT", T.BLOB, False, st.text(max_size=60).map(lambda s: s.encode())),
    ("c_bit", "BIT(8)", T.BLOB, False, st.binary(min_size=1, max_size=1)),
    ("c_enum", "ENUM('a','b','c')", T.VAR_STRING, False, st.sampled_from([b"a", b"b", b"c"])),
    ("c_set", "SET('x','y')", T.VAR_STRING, False, st.sampled_from([b"", b"x", b"y", b"x,y"])),
]
NAMES = ", ".join(c[0] for c in COLUMNS)
MARKS = ", ".join("?" * (len(COLUMNS) + 1))
INSERT = f"INSERT INTO ps_types (id, {NAMES}) VALUES ({MARKS})"
SELECT = f"SELECT {NAMES} FROM ps_types WHERE id = ?"
DIRECT_OFFSET = 1_000_000
_ids = itertools.count(int(time.time()) % 100_000 * 5)


@pytest.fixture(scope="module")
def table(backends):
    cfg = backends["a"]
    conn = pymysql.connect(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                           password=cfg["password"], database="trade", autocommit=True)
    columns = ", ".join(f"{name} {sql}" for name, sql, *_ in COLUMNS)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ps_types")
        cur.execute(f"CREATE TABLE ps_types (id INT PRIMARY KEY, {columns}) "
                    "DEFAULT CHARSET=utf8mb4")
    yield
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ps_types")
    conn.close()


@pytest.fixture(scope="module")
def clients(dal, backends, table):
    cfg = backends["a"]
    via_dal = PsClient(dal.port)
    via_dal.login()
    direct = PsClient(cfg["port"])
    direct.login(cfg["user"], cfg["password"], "trade")
    text_dal = pymysql.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                               database="trade", autocommit=True, binary_prefix=False)
    text_direct = pymysql.connect(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                                  password=cfg["password"], database="trade", autocommit=True)
    yield via_dal, direct, text_dal, text_direct
    for conn in (via_dal, direct):
        conn.close()
    text_dal.close()
    text_direct.close()


def text_row(conn, row_id: int) -> tuple:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {NAMES} FROM ps_types WHERE id = %s", (row_id,))
        return cur.fetchone()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.tuples(*(st.one_of(st.none(), strategy) for *_, strategy in COLUMNS)))
def test_every_type_round_trips_like_mariadb(clients, values) -> None:
    via_dal, direct, text_dal, text_direct = clients
    row_id = next(_ids)
    params = [((T.LONG, False), row_id)]
    params += [((code, unsigned), value)
               for (_, _, code, unsigned, _), value in zip(COLUMNS, values, strict=True)]
    assert via_dal.run(INSERT, params).affected_rows == 1
    params[0] = ((T.LONG, False), row_id + DIRECT_OFFSET)
    assert direct.run(INSERT, params).affected_rows == 1
    # Text protocol: DAL's row is MariaDB's row.
    assert text_row(text_dal, row_id) == text_row(text_direct, row_id + DIRECT_OFFSET)
    # Binary protocol: DAL relays MariaDB's values and column types.
    mine = via_dal.run(SELECT, [((T.LONG, False), row_id)])
    theirs = direct.run(SELECT, [((T.LONG, False), row_id + DIRECT_OFFSET)])
    assert mine.rows == theirs.rows
    assert column_types(mine.columns) == column_types(theirs.columns)
    # DAL's encoder for merged results turns MariaDB's text row into MariaDB's binary row.
    raw = direct_text_result(direct, row_id + DIRECT_OFFSET)
    result = decode_response(raw)
    payloads = binary_result(result.columns, result.rows, result.status)
    types = column_types(result.columns)
    merged, expected = decode_binary_row(payloads[-2], types), list(theirs.rows[0])
    # MariaDB writes FLOAT with 6 significant digits in text: a merged FLOAT has that precision.
    f = NAMES.split(", ").index("c_float")
    if expected[f] is not None:
        assert merged[f] == pytest.approx(expected[f], rel=1e-5)
        merged[f] = expected[f]
    assert merged == expected


def direct_text_result(client: PsClient, row_id: int) -> bytes:
    """The raw text-protocol response (framed) of the SELECT, read directly."""
    from dal.wire.framing import frame

    payloads = client.query(f"SELECT {NAMES} FROM ps_types WHERE id = {row_id}".encode())
    return b"".join(frame(p, i + 1) for i, p in enumerate(payloads))
