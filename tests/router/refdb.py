"""A reference MariaDB and eight "shards" of it, for differential tests of the scatter merge.

Instance a of config/test.yaml (127.0.0.1:33161, the DBA account) holds ``dal_merge_ref`` with every
row and ``dal_merge_s0`` .. ``dal_merge_s7`` with the rows of ``t`` split by ``id % 8``, the rows of
``items`` stored with their ``t`` row (split by ``t_id % 8``, as a table bound to ``t``), and
``cat`` copied whole into every shard (a broadcast table). Queries run
through `tests.rawclient.RawClient`, so the merge sees the exact column definitions and text
rows MariaDB sends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pymysql

from dal.wire.messages import ERR
from router.rows.columns import ColumnDefinition, decode_text_row
from tests.rawclient import RawClient


def _instance_a_port() -> int:
    import yaml

    from tests.dal_process import TEST_CONFIG

    return int(yaml.safe_load(TEST_CONFIG.read_text())["instances"]["a"]["port"])


def _dba() -> tuple[str, str]:
    from tests.dal_process import dba_login

    return dba_login()  # scratch databases are the DBA account's to create (docs/security.md)


HOST, PORT = "127.0.0.1", _instance_a_port()
USER, PASSWORD = _dba()
SHARDS = 8
REF = "dal_merge_ref"
SHARD_DBS = [f"dal_merge_s{i}" for i in range(SHARDS)]
TABLE = ("CREATE TABLE t (id INT PRIMARY KEY, k INT NULL, g VARCHAR(10) NULL, "
         "price DECIMAL(12,2) NULL, f DOUBLE NULL, ts DATETIME(6) NULL) "
         "DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci")
ITEMS = ("CREATE TABLE items (id INT PRIMARY KEY, t_id INT NOT NULL, qty INT NULL, "
         "price DECIMAL(12,2) NULL, sku VARCHAR(16) NULL) "
         "DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci")
CAT = ("CREATE TABLE cat (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL) "
       "DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci")
CATS = [(i, name) for i, name in enumerate(["zero", "One", "one", "two", "Three", "four", "é"])]
STRINGS = ["abc", "ABC", "Abc", "abd", "b", "B", "é", "e", "E", "ê", "x", "x ", "zz", "",
           "Zebra", "zebra", "ß", "s", "x\t", "\t", "a\nb", "a"]  # \t < ' ' (PAD SPACE)

Row = tuple[int, int | None, str | None, Decimal | None, float | None, dt.datetime | None]
Item = tuple[int, int, int | None, Decimal | None, str | None]
Result = tuple[list[ColumnDefinition], list[list[bytes | None]]]


class QueryError(Exception):
    """MariaDB answered with an ERR packet."""


def available() -> bool:
    """True when the test instance accepts a login."""
    try:
        conn = pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD,
                               connect_timeout=2)
    except pymysql.MySQLError:
        return False
    conn.close()
    return True


def random_rows(seed: int, count: int = 300) -> list[Row]:
    """Seeded rows with NULLs, duplicates, mixed case, accents and trailing spaces; DOUBLEs
    are multiples of 1/4, so that sums are exact whatever the order of addition."""
    rnd = random.Random(seed)

    def maybe(value: object, null: float = 0.15) -> object:
        return None if rnd.random() < null else value

    rows: list[Row] = []
    for i in range(1, count + 1):
        ts = dt.datetime(2024, 1, 1) + dt.timedelta(seconds=rnd.randrange(0, 86400 * 3),
                                                    microseconds=rnd.choice([0, 500000, 123]))
        rows.append((i, maybe(rnd.randint(-3, 12)), maybe(rnd.choice(STRINGS)),  # type: ignore[arg-type]
                     maybe(Decimal(rnd.randint(-50000, 100000)) / 100),
                     maybe(rnd.randint(-400, 4000) / 4), maybe(ts)))
    return rows


def random_items(seed: int, parents: int, count: int = 400) -> list[Item]:
    """Seeded items of ``t`` rows 1..``parents`` (some rows get none, some several; a few
    point past the last row), with NULLs and duplicate SKUs."""
    rnd = random.Random(seed)
    items: list[Item] = []
    for i in range(1, count + 1):
        t_id = rnd.randint(1, parents + 5) if parents else rnd.randint(1, 5)
        if t_id % 7 == 3:
            continue  # these rows of t have no items (LEFT JOIN gives NULLs)
        items.append((i, t_id, None if rnd.random() < 0.1 else rnd.randint(0, 9),
                      None if rnd.random() < 0.1 else Decimal(rnd.randint(1, 99999)) / 100,
                      None if rnd.random() < 0.1 else rnd.choice(STRINGS[:8])))
    return items


class RefDB:
    """The reference database, the shards, and raw connections to each."""

    def __init__(self) -> None:
        self.admin = pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD,
                                     autocommit=True)
        with self.admin.cursor() as cur:
            for db in (REF, *SHARD_DBS):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                cur.execute(f"CREATE DATABASE {db} DEFAULT CHARSET utf8mb4 "
                            "COLLATE utf8mb4_general_ci")
                for table in (TABLE, ITEMS, CAT):
                    cur.execute(f"CREATE TABLE {db}.{table[len('CREATE TABLE '):]}")
                cur.executemany(f"INSERT INTO {db}.cat VALUES (%s, %s)", CATS)
        self.ref = self._client(REF)
        self.shards = [self._client(db) for db in SHARD_DBS]

    @staticmethod
    def _client(db: str) -> RawClient:
        client = RawClient(PORT, HOST)
        reply = client.login(USER, PASSWORD, db)
        assert reply[:1] == b"\x00", f"login to {db} failed: {reply!r}"
        return client

    def load(self, rows: Sequence[Row], items: Sequence[Item] = ()) -> None:
        """Replace the rows of t (``id % 8`` in each shard) and of items (``t_id % 8``)."""
        with self.admin.cursor() as cur:
            for n, db in enumerate((REF, *SHARD_DBS)):
                cur.execute(f"DELETE FROM {db}.t")
                cur.execute(f"DELETE FROM {db}.items")
                part = rows if n == 0 else [r for r in rows if r[0] % SHARDS == n - 1]
                if part:
                    cur.executemany(f"INSERT INTO {db}.t VALUES (%s, %s, %s, %s, %s, %s)", part)
                bound = items if n == 0 else [r for r in items if r[1] % SHARDS == n - 1]
                if bound:
                    cur.executemany(f"INSERT INTO {db}.items VALUES (%s, %s, %s, %s, %s)",
                                    bound)

    def close(self) -> None:
        for client in (self.ref, *self.shards):
            client.close()
        with self.admin.cursor() as cur:
            for db in (REF, *SHARD_DBS):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
        self.admin.close()


def run(client: RawClient, sql: str) -> Result:
    """Column definitions and text rows of one query, exactly as MariaDB sent them."""
    payloads = client.query(sql.encode())
    first = payloads[0]
    if first[:1] == b"\xff":
        raise QueryError(f"{ERR.decode(first).message} in: {sql}")
    if first[:1] == b"\x00":
        return [], []
    count = first[0]
    columns = [ColumnDefinition.decode(p) for p in payloads[1:1 + count]]
    body = payloads[2 + count:-1]
    if body and body[-1][:1] == b"\xff":
        raise QueryError(f"{ERR.decode(body[-1]).message} in: {sql}")
    return columns, [decode_text_row(p, count) for p in body]


@contextlib.contextmanager
def reference() -> Iterator[RefDB]:
    db = RefDB()
    try:
        yield db
    finally:
        db.close()
