"""The pool's side of pipelining against a real MariaDB: a full pool hands a connection with
statements in flight to requests that may share it, never more than ``pool.pipeline_depth``
at once, queued ones join in FIFO order as answers come back, each answer reaches its own
requester, and the connection is back in the idle list, counted once, at the end."""

from __future__ import annotations

import asyncio

import pytest

from config.model import Instance, PoolConfig
from dal.wire.framing import frame
from pool.connection import BackendConnection
from pool.pool import Pool
from pool.responses import decode_response


async def _run(cfg: dict, depth: int, requests: int) -> dict:
    instance = Instance(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                        password=cfg["password"])
    pool = Pool("a", instance, PoolConfig(max_size=1, pipeline_depth=depth), "trade")
    answers: dict[int, bytearray] = {}
    ended: list[int] = []
    depths: list[int] = []
    all_done = asyncio.get_running_loop().create_future()

    def start(i: int, conn: BackendConnection) -> None:
        if not conn.busy:
            pool.offer(conn)  # as the relay does for a statement that may be shared
        answers[i] = bytearray()
        sql = b"SELECT SLEEP(0.2), 0" if i == 0 else b"SELECT %d, 'row'" % i
        conn.relay(frame(b"\x03" + sql, 0), answers[i].extend,
                   lambda c, scanner: finished(i, c, scanner))
        depths.append(conn.depth)

    def finished(i: int, conn: BackendConnection, scanner: object) -> None:
        assert scanner is not None
        ended.append(i)
        pool.release(conn)
        if len(ended) == requests:
            all_done.set_result(None)

    def ready(i: int):
        return lambda conn, error: start(i, conn) if conn is not None else ended.append(-1)

    for i in range(requests):
        conn = pool.request(False, ready(i), (None, {}, None))
        if conn is not None:
            start(i, conn)
        if i == 0:
            await asyncio.sleep(0.05)  # the head runs
    await asyncio.wait_for(all_done, 10)
    stats = pool.stats()
    await pool.close()
    return {"answers": answers, "ended": ended, "depths": depths, "pipelined": pool.pipelined,
            "in_use": stats.in_use, "idle": stats.idle, "opened": stats.opened}


@pytest.mark.parametrize("depth", [0, 1, 3, 8])
def test_full_pool_pipelines_up_to_the_depth_in_fifo_order(backends, depth: int) -> None:
    requests = 12
    got = asyncio.run(_run(backends["a"], depth, requests))
    assert got["ended"] == list(range(requests))  # answered in the order asked
    for i in range(1, requests):
        assert decode_response(bytes(got["answers"][i])).rows == [[str(i).encode(), b"row"]]
    assert max(got["depths"]) == (min(depth, requests) if depth > 1 else 1)
    assert got["pipelined"] == (requests - 1 if depth > 1 else 0)
    assert (got["in_use"], got["idle"], got["opened"]) == (0, 1, 1)
