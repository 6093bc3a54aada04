"""`BackendConnection.pipeline` against a real MariaDB: several commands sent at once come back
as the same responses, in the same order, as when sent one by one, whatever the chunking of
the reply (results of many rows, errors in the middle, OKs)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dal.wire.framing import frame
from pool.connection import BackendConnection, BackendError, decode_response

STATEMENTS = [
    "SELECT 1",
    "SELECT REPEAT('x', 70000)",  # a row larger than one read
    "SELECT seq, REPEAT('y', seq % 50) FROM seq_1_to_3000",  # many packets
    "SELECT no_such_column FROM DUAL",  # an ERR
    "DO 1",  # an OK
    "SELECT NULL, 'a', 2.5",
    "SELECT 'last', 3",
]


def _describe(raw: bytes) -> object:
    try:
        result = decode_response(raw)
    except BackendError as exc:
        return ("error", exc.code)
    return ("ok", [tuple(row) for row in result.rows])


async def _both_ways(cfg: dict, sql: list[str]) -> tuple[list, list]:
    conn = await BackendConnection.open("a", cfg["host"], cfg["port"], cfg["user"],
                                        cfg["password"], "trade")
    try:
        packets = [frame(b"\x03" + s.encode(), 0) for s in sql]
        one_by_one = [_describe(await conn.command(p)) for p in packets]
        pipelined = [_describe(raw) for raw in await conn.pipeline(packets)]
        again = _describe(await conn.command(packets[0]))  # the connection is usable after it
        assert again == one_by_one[0]
        return one_by_one, pipelined
    finally:
        conn.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=12))
def test_pipelined_responses_equal_one_by_one(backends, sql: list[str]) -> None:
    one_by_one, pipelined = asyncio.run(_both_ways(backends["a"], sql))
    assert pipelined == one_by_one
    assert len(pipelined) == len(sql)
