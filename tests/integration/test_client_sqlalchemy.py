"""SQLAlchemy 2 Core with the pymysql driver against DAL: reflection of `merchants`, and
insert / select / update / delete in `engine.begin()` transactions."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from sqlalchemy import (
    BIGINT,
    DATETIME,
    DECIMAL,
    INTEGER,
    VARCHAR,
    MetaData,
    Table,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql

from tests.clients.merchants import CONFIGURED_TABLES, count_direct, purge, unique_prefix


@pytest.fixture
def engine(dal, connect):
    """An engine on DAL. Depends on `connect`, so the engine is disposed (its connections
    closed) before `connect` checks that every backend connection is back in its pool."""
    eng = create_engine(f"mysql+pymysql://app:app@127.0.0.1:{dal.port}/trade",
                        pool_pre_ping=True, connect_args={"connect_timeout": 10,
                                                          "read_timeout": 30})
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def merchants(engine):
    metadata = MetaData()
    metadata.reflect(bind=engine, only=["merchants"])
    return metadata.tables["merchants"]


@pytest.fixture
def prefix(direct):
    value = unique_prefix("sqlalchemy")
    yield value
    purge(direct("a", "trade"), value)


def test_reflection_of_merchants(engine, merchants):
    cols = merchants.c
    assert [c.name for c in merchants.columns] == [
        "id", "name", "region_id", "rating", "created_at"]
    assert isinstance(cols.id.type, BIGINT) and cols.id.type.unsigned
    assert cols.id.primary_key and cols.id.autoincrement is True
    assert isinstance(cols.name.type, VARCHAR) and cols.name.type.length == 128
    assert isinstance(cols.region_id.type, INTEGER)
    assert isinstance(cols.rating.type, DECIMAL)
    assert (cols.rating.type.precision, cols.rating.type.scale) == (3, 2)
    assert isinstance(cols.created_at.type, DATETIME) and cols.created_at.type.fsp == 6
    assert [c.nullable for c in merchants.columns] == [False, False, True, True, False]
    assert "current_timestamp(6)" in str(cols.created_at.server_default.arg).lower()
    assert [c.name for c in merchants.primary_key] == ["id"]

    # The other spelling, and the inspector.
    again = Table("merchants", MetaData(), autoload_with=engine)
    assert [c.name for c in again.columns] == [c.name for c in merchants.columns]
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= CONFIGURED_TABLES
    assert inspector.get_pk_constraint("merchants")["constrained_columns"] == ["id"]
    orders = {c["name"]: c for c in inspector.get_columns("orders")}
    assert list(orders) == ["id", "user_id", "merchant_id", "status", "total", "note",
                            "created_at", "updated_at"]
    assert isinstance(orders["total"]["type"], mysql.DECIMAL)


def test_crud_in_begin_blocks(engine, merchants, direct, prefix):
    t = merchants
    name = prefix + "core 😀"
    created = datetime.datetime(2024, 5, 17, 8, 30, 15, 250001)
    with engine.begin() as conn:
        result = conn.execute(insert(t).values(name=name, region_id=11,
                                               rating=Decimal("2.75"), created_at=created))
        (merchant_id,) = result.inserted_primary_key
        assert result.rowcount == 1
    assert isinstance(merchant_id, int) and merchant_id > 0

    backend = direct("a", "trade")
    assert count_direct(backend, merchant_id) == 1

    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == merchant_id)).one()
        assert tuple(row) == (merchant_id, name, 11, Decimal("2.75"), created)
        assert row.rating == Decimal("2.75") and row.created_at == created
        assert conn.execute(select(t.c.id).where(t.c.name == name)).scalar_one() == merchant_id
        assert conn.execute(select(t).where(t.c.name == prefix + "nobody")).all() == []

    with engine.begin() as conn:
        result = conn.execute(update(t).where(t.c.id == merchant_id)
                              .values(rating=None, region_id=t.c.region_id + 1))
        assert result.rowcount == 1
        # SQLAlchemy's MySQL dialects ask for CLIENT_FOUND_ROWS: an UPDATE that matches a
        # row but changes nothing still counts it (the ORM's stale-data check relies on it).
        result = conn.execute(update(t).where(t.c.id == merchant_id).values(region_id=12))
        assert result.rowcount == 1
    with engine.connect() as conn:
        row = conn.execute(select(t.c.region_id, t.c.rating).where(t.c.id == merchant_id)).one()
        assert tuple(row) == (12, None)
    with backend.cursor() as cur:
        cur.execute("SELECT region_id, rating FROM trade.merchants WHERE id = %s",
                    (merchant_id,))
        assert cur.fetchone() == (12, None)

    with engine.begin() as conn:
        assert conn.execute(delete(t).where(t.c.id == merchant_id)).rowcount == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t)
                            .where(t.c.id == merchant_id)).scalar_one() == 0
    assert count_direct(backend, merchant_id) == 0


def test_executemany_insert_and_bulk_delete(engine, merchants, prefix):
    t = merchants
    names = [f"{prefix}bulk-{i}" for i in range(5)]
    with engine.begin() as conn:
        result = conn.execute(insert(t), [{"name": n, "region_id": i}
                                          for i, n in enumerate(names)])
        assert result.rowcount == len(names)
    with engine.connect() as conn:
        got = conn.execute(select(t.c.name, t.c.region_id).where(t.c.name.like(prefix + "%"))
                           .order_by(t.c.id)).all()
        assert [tuple(r) for r in got] == [(n, i) for i, n in enumerate(names)]
    with engine.begin() as conn:
        assert conn.execute(delete(t).where(t.c.name.like(prefix + "%"))).rowcount == 5


class Abort(Exception):
    pass


def test_rolled_back_transactions_leave_nothing(engine, merchants, direct, prefix):
    t = merchants
    backend = direct("a", "trade")

    # An exception inside engine.begin() rolls back.
    with pytest.raises(Abort), engine.begin() as conn:
        result = conn.execute(insert(t).values(name=prefix + "aborted"))
        (aborted_id,) = result.inserted_primary_key
        assert conn.execute(select(t.c.name).where(t.c.id == aborted_id)).scalar_one() == (
            prefix + "aborted")
        raise Abort

    # An explicit rollback of a connection's transaction.
    with engine.connect() as conn:
        conn.execute(insert(t).values(name=prefix + "rolled-back"))
        conn.execute(update(t).where(t.c.name == prefix + "rolled-back").values(region_id=1))
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(t)
                            .where(t.c.name.like(prefix + "%"))).scalar_one() == 0

    assert count_direct(backend, aborted_id) == 0
    with backend.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM trade.merchants WHERE name LIKE %s", (prefix + "%",))
        assert cur.fetchone() == (0,)


def test_engine_session_statements(engine):
    with engine.connect() as conn:
        assert conn.execute(text("SELECT DATABASE()")).scalar_one() == "trade"
        assert "MariaDB" in conn.execute(text("SELECT @@version")).scalar_one()
        assert conn.dialect.is_mariadb
        assert conn.dialect.server_version_info[:2] >= (10, 0)
    # Pre-ping (COM_PING) and reuse of pooled connections keep working.
    for _ in range(3):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
