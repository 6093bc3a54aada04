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
            pool.offer(conn, True)  # as the relay does for a statement that may be shared
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
        conn = pool.request(False, ready(i), (None, {}, None, True))
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


async def _spread(cfg: dict, spread: int, quick_heads: bool = True) -> dict:
    """Two slow heads on connections of their own (of a shape known to be quick, or not),
    four shareable requests at once while the heads are fresh, and one more after the heads
    have run past `SLOW_HEAD`."""
    instance = Instance(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                        password=cfg["password"])
    pool = Pool("a", instance, PoolConfig(max_size=8, pipeline_depth=4,
                                          pipeline_spread=spread), "trade")
    loop = asyncio.get_running_loop()
    answers: dict[int, bytearray] = {}
    served_by: dict[int, int] = {}
    started: dict[int, asyncio.Future] = {i: loop.create_future() for i in range(7)}
    ended: dict[int, asyncio.Future] = {i: loop.create_future() for i in range(7)}

    def start(i: int, conn: BackendConnection) -> None:
        if not conn.busy:
            pool.offer(conn, i >= 2 or quick_heads)  # as the relay does
        answers[i] = bytearray()
        served_by[i] = conn.id
        sql = b"SELECT SLEEP(0.3), %d" % i if i < 2 else b"SELECT %d, 'row'" % i
        conn.relay(frame(b"\x03" + sql, 0), answers[i].extend,
                   lambda c, scanner: finished(i, c, scanner))
        started[i].set_result(None)

    def finished(i: int, conn: BackendConnection, scanner: object) -> None:
        ended[i].set_result(scanner is not None)
        pool.release(conn)

    def ask(i: int) -> None:
        conn = pool.request(False, lambda c, error: start(i, c) if c is not None
                            else ended[i].set_result(False), (None, {}, None, True))
        if conn is not None:
            start(i, conn)

    ask(0)
    ask(1)
    await asyncio.wait_for(asyncio.gather(started[0], started[1]), 10)
    for i in range(2, 6):  # the heads were sent just now
        ask(i)
    await asyncio.sleep(0.05)  # now they have run past SLOW_HEAD
    ask(6)
    ok = await asyncio.wait_for(asyncio.gather(*ended.values()), 10)
    stats = pool.stats()
    await pool.close()
    return {"ok": ok, "answers": answers, "served_by": served_by, "pipelined": pool.pipelined,
            "opened": stats.opened, "in_use": stats.in_use}


@pytest.mark.parametrize("spread", [0, 2])
def test_spread_pipelines_before_the_pool_is_full_but_not_behind_a_slow_head(
        backends, spread: int) -> None:
    got = asyncio.run(_spread(backends["a"], spread))
    assert all(got["ok"])
    for i in range(2, 7):
        assert decode_response(bytes(got["answers"][i])).rows == [[str(i).encode(), b"row"]]
    heads = {got["served_by"][0], got["served_by"][1]}
    behind = [got["served_by"][i] for i in range(2, 6)]
    if spread:  # two connections run shareable statements: the next four join them, two each
        assert sorted(behind) == sorted([*heads, *heads])
        assert got["pipelined"] == 4
        # the heads have run 50 ms by then: the last one is not queued behind them
        assert got["served_by"][6] not in heads
        assert got["opened"] == 3
    else:  # only a full pool pipelines: each takes a connection of its own
        assert len(set(behind) | heads) == 6 and got["pipelined"] == 0
    assert got["in_use"] == 0


def test_spread_queues_nothing_behind_a_statement_not_known_to_be_quick(backends) -> None:
    """The heads are of a shape not (yet) known to be quick (dal/stats.py `quick`): a
    statement that may run for seconds is not queued behind by choice, fresh or not."""
    got = asyncio.run(_spread(backends["a"], 2, quick_heads=False))
    assert all(got["ok"])
    heads = {got["served_by"][0], got["served_by"][1]}
    assert not heads & {got["served_by"][i] for i in range(2, 7)}
    assert got["pipelined"] == 0


async def _after_an_idle_spell(cfg: dict) -> dict:
    """Spread 2: a connection ran a shareable statement and went idle (its entry in the
    pool's shared set goes stale), another ran an unshared one; then one shareable statement
    runs again. Only one connection runs such statements now, so the next one takes an idle
    connection instead of queueing behind it."""
    instance = Instance(host=cfg["host"], port=cfg["port"], user=cfg["user"],
                        password=cfg["password"])
    pool = Pool("a", instance, PoolConfig(max_size=4, pipeline_depth=4, pipeline_spread=2),
                "trade")
    loop = asyncio.get_running_loop()
    served_by: dict[str, int] = {}

    async def run(name: str, sql: bytes, shared: bool = True,
                  hold: asyncio.Future | None = None) -> None:
        got = loop.create_future()
        conn = pool.request(False, lambda c, error: got.set_result(c),
                            (None, {}, None, True) if shared else None)
        if conn is None:
            conn = await asyncio.wait_for(got, 10)
        if shared and not conn.busy:
            pool.offer(conn, True)  # as the relay does for a statement that may be shared
        served_by[name] = conn.id
        ended = loop.create_future()
        conn.relay(frame(b"\x03" + sql, 0), bytearray().extend,
                   lambda c, scanner: ended.set_result(scanner is not None))
        if hold is not None:
            hold.set_result(None)
        assert await asyncio.wait_for(ended, 10)
        pool.release(conn)

    await asyncio.gather(run("shared", b"SELECT SLEEP(0.05)"),
                         run("unshared", b"SELECT SLEEP(0.15)", shared=False))
    head = loop.create_future()
    running = asyncio.ensure_future(run("head", b"SELECT SLEEP(0.2)", hold=head))
    await head
    await run("next", b"SELECT 1")
    await running
    stats = pool.stats()
    await pool.close()
    return {"served_by": served_by, "pipelined": pool.pipelined, "opened": stats.opened}


def test_spread_counts_only_connections_running_shared_statements_now(backends) -> None:
    got = asyncio.run(_after_an_idle_spell(backends["a"]))
    assert got["served_by"]["next"] != got["served_by"]["head"]
    assert got["pipelined"] == 0 and got["opened"] == 2
