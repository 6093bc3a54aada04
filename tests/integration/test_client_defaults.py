"""Clients with their defaults, against a DAL with the shipped config's transaction mode
(config/local.yaml: xa), and the session values DAL answers for (issue 22).

- PyMySQL starts with autocommit off: `executemany` over three users on both instances is
  one atomic transaction.
- An SQLAlchemy ORM Session reads one user, then runs a scatter, then writes, then commits.
- Connector/J-style `SET sql_mode = CONCAT(@@sql_mode, ...)` does not pin the session.
- LAST_INSERT_ID(), ROW_COUNT() and FOUND_ROWS() inside statements are the session's, as
  MariaDB answers them directly.

Every write is checked in the backend shards directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import yaml
from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.conftest import assert_pools_idle
from tests.dal_process import ROOT, running_test_config
from tests.own_dal import OwnDal, own_dal

MARK = f"defaults-{uuid.uuid4().hex[:8]}"
USERS = (3, 64, 7)  # user shards 3 and 7 on instance a, 64 on instance b


@pytest.fixture(scope="module")
def xdal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnDal]:
    shipped = yaml.safe_load((ROOT / "config" / "local.yaml").read_text())["transactions"]
    assert shipped["mode"] == "xa"
    tmp = tmp_path_factory.mktemp("defaults")
    transactions = {**shipped, "decision_log": str(tmp / "xa.log"),
                    "xid_prefix": f"dft{uuid.uuid4().hex[:4]}"}
    with own_dal(tmp, transactions=transactions) as proc:
        yield proc
        assert_pools_idle(proc.port)


def shard_notes(user: int) -> list[str]:
    """The notes of this test's orders in ``user``'s shard, read directly."""
    cfg = running_test_config().instances["a" if user % 120 < 60 else "b"]
    conn = pymysql.connect(host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password,
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT note FROM user_{user % 120:03d}.orders WHERE user_id = %s "
                        "AND note LIKE %s ORDER BY note", (user, MARK + "%"))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def cleanup(dal: OwnDal) -> None:
    conn = dal.connect()
    with conn.cursor() as cur:
        for user in USERS:
            cur.execute("DELETE FROM orders WHERE user_id = %s AND note LIKE %s",
                        (user, MARK + "%"))
    conn.close()


def test_pymysql_executemany_with_autocommit_off(xdal: OwnDal) -> None:
    conn = xdal.connect(autocommit=False)  # pymysql's default
    rows = [(user, 11, f"{MARK}-many-{user}") for user in USERS]
    try:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                            "created_at, updated_at) VALUES (%s, %s, 1, 9.50, %s, NOW(), NOW())",
                            rows)
        assert all(shard_notes(user) == [] for user in USERS)  # not committed yet
        conn.commit()
        for user in USERS:
            assert shard_notes(user) == [f"{MARK}-many-{user}"]
        # and a rolled-back batch leaves nothing on either instance
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                            "created_at, updated_at) VALUES (%s, %s, 1, 9.50, %s, NOW(), NOW())",
                            [(u, 11, f"{MARK}-gone-{u}") for u in USERS])
        conn.rollback()
        for user in USERS:
            assert shard_notes(user) == [f"{MARK}-many-{user}"]
    finally:
        conn.close()
        cleanup(xdal)


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Numeric(12, 2))
    note: Mapped[str | None] = mapped_column(String(255))
    created_at = mapped_column(DateTime)
    updated_at = mapped_column(DateTime)


def test_sqlalchemy_orm_session_across_users_with_a_scatter(xdal: OwnDal) -> None:
    engine = create_engine(f"mysql+pymysql://app:app@127.0.0.1:{xdal.port}/trade")
    try:
        with Session(engine) as session:
            now = func.now()
            session.add(Order(user_id=USERS[0], merchant_id=12, status=1, total=1,
                              note=f"{MARK}-orm-0", created_at=now, updated_at=now))
            session.commit()
            mine = session.scalars(select(Order).where(Order.user_id == USERS[0],
                                                       Order.note.like(MARK + "%"))).all()
            assert [o.note for o in mine] == [f"{MARK}-orm-0"]
            # the same transaction goes on to a scatter and to other users' shards
            everyone = session.scalar(select(func.count()).select_from(Order)
                                      .where(Order.note.like(MARK + "%")))
            assert everyone == 1
            for i, user in enumerate(USERS[1:], 1):
                session.add(Order(user_id=user, merchant_id=12, status=1, total=1,
                                  note=f"{MARK}-orm-{i}", created_at=now, updated_at=now))
            mine[0].status = 2
            session.commit()
        for i, user in enumerate(USERS):
            assert shard_notes(user) == [f"{MARK}-orm-{i}"]
    finally:
        engine.dispose()
        cleanup(xdal)


def test_set_expression_does_not_pin(xdal: OwnDal) -> None:
    """Connector/J (jdbcCompliantTruncation) sends this at connect; the session then reads
    merchants on both instances and scatters, as before it."""
    conn = xdal.connect()
    pins = xdal.metric("dal_pins_total", reason="set_expression")
    try:
        with conn.cursor() as cur:
            cur.execute("SET sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')")
            cur.execute("SET net_write_timeout = 6 * 10")
            cur.execute("SELECT @@sql_mode, @@net_write_timeout")
            mode, timeout = cur.fetchone()
            assert "STRICT_TRANS_TABLES" in mode and timeout == 60
            for merchant in (5, 65):  # merchant shards on a and on b
                cur.execute("SELECT COUNT(*) FROM orders WHERE merchant_id = %s", (merchant,))
                cur.fetchall()
            cur.execute("SELECT COUNT(*) FROM orders")
            cur.fetchall()
            cur.execute("SELECT @@sql_mode")  # replayed on whichever connection served it
            assert cur.fetchone()[0] == mode
    finally:
        conn.close()
    assert xdal.metric("dal_pins_total", reason="set_expression") == pins


def _session_values(conn, table: str, key: str, value: int) -> list:
    """One script of statements that use the session's values inside SQL."""
    seen = []
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {key} = LAST_INSERT_ID()")
        seen.append(cur.fetchall())
        cur.execute(f"UPDATE {table} SET status = 3 WHERE {key} = %s", (value,))
        cur.execute("SELECT ROW_COUNT()")
        seen.append(cur.fetchall())
        cur.execute(f"SELECT ROW_COUNT() + 1, LAST_INSERT_ID() = {value} FROM {table} "
                    f"WHERE {key} = %s", (value,))
        seen.append(cur.fetchall())
        cur.execute(f"SELECT {key} FROM {table} WHERE {key} = %s", (value,))
        cur.fetchall()
        cur.execute("SELECT FOUND_ROWS()")
        seen.append(cur.fetchall())
        cur.execute("SET @o = LAST_INSERT_ID()")
        cur.execute("SELECT @o = %s", (value,))
        seen.append(cur.fetchall())
    return seen


def test_session_values_inside_statements_match_mariadb(xdal: OwnDal, tmp_path: Path) -> None:
    """The same script on a sharded table through DAL and on one table directly."""
    cfg = running_test_config().instances["a"]
    direct = pymysql.connect(host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password,
                             autocommit=True, database="trade")
    table = f"ref_{uuid.uuid4().hex[:8]}"
    conn = xdal.connect()
    try:
        with direct.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                        "status INT, note VARCHAR(64))")
            cur.execute(f"INSERT INTO {table} (status, note) VALUES (1, %s)", (MARK,))
            expected = _session_values(direct, table, "id", cur.lastrowid)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO orders (user_id, merchant_id, status, total, note, "
                        "created_at, updated_at) VALUES (%s, 5, 1, 1.00, %s, NOW(), NOW())",
                        (USERS[0], f"{MARK}-values"))
            order_id = cur.lastrowid
        assert _session_values(conn, "orders", "id", order_id) == expected
    finally:
        conn.close()
        with direct.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        direct.close()
        cleanup(xdal)


CONNECTOR_J = Path("/usr/share/java/mariadb-java-client.jar")


def test_connector_j_with_default_properties(xdal: OwnDal, tmp_path: Path) -> None:
    """MariaDB Connector/J's defaults (its sql_mode SET included): merchant reads on both
    instances and a scatter after it, and a batch of inserts over users on both instances."""
    if shutil.which("javac") is None or not CONNECTOR_J.exists():
        pytest.skip("javac or MariaDB Connector/J (apt package libmariadb-java) missing")
    source = ROOT / "tests" / "clients" / "java" / "Defaults.java"
    compiled = subprocess.run(["javac", "-d", str(tmp_path), str(source)], capture_output=True,
                              timeout=120, check=False)
    assert compiled.returncode == 0, compiled.stderr.decode(errors="replace")
    note = f"{MARK}-java"
    pins = xdal.metric("dal_pins_total", reason="set_expression")
    try:
        done = subprocess.run(["java", "-cp", f"{tmp_path}:{CONNECTOR_J}", "Defaults",
                               str(xdal.port), note, *map(str, USERS)], capture_output=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert seen["batch"] == len(USERS)
        # read from the merchant copy (kept by `dal sync`, which this test does not run): what
        # matters is that the reads ran, on both instances, after the driver's sql_mode SET
        assert len(seen["merchant_counts"]) == len(USERS)
        assert seen["scatter"] == [len(USERS), min(USERS), max(USERS)]
        assert "STRICT_TRANS_TABLES" in seen["sql_mode"]
        for user in USERS:
            assert shard_notes(user) == [note]
        assert xdal.metric("dal_pins_total", reason="set_expression") == pins
    finally:
        cleanup(xdal)
