"""The physical floor of `dal bench --scatter`: the scatter's shard statements sent straight to
MariaDB, no DAL, by about the cheapest client this project has.

Per query, the 120 statements DAL would send (one per shard database, ``LIMIT 20`` each) are
split over ``connections`` raw backend connections (pool.connection.BackendConnection, logged
in as the instance's DAL account) and written at once on each (`pipeline`); the query ends
when every answer is in. Nothing is decoded or merged: what is left is the backend's work, the
round trips and the receiving. DAL's scatter of the same query cannot be faster than this on
the same machine; its ratio to the unsharded query says whether the issue's 10x bound is
within physical reach here at all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from config.model import Config
from dal.wire.framing import frame
from pool.connection import BackendConnection
from tools.bench_common import BenchError
from tools.bench_layout import ShardTable


class Floor:
    """Raw pipelined connections to the shards' instance(s), for one bench run."""

    def __init__(self, config: Config, shards: list[ShardTable], connections: int) -> None:
        self.config = config
        self.shards = shards
        self.connections = connections
        self.name = f"floor{connections}"
        self.loop = asyncio.new_event_loop()
        self.conns: dict[str, list[BackendConnection]] = {}

    def open(self) -> None:
        """Log in ``connections`` connections per instance of the shards."""
        try:
            for instance in sorted({t.instance for t in self.shards}):
                inst = self.config.instances[instance]
                self.conns[instance] = [self.loop.run_until_complete(BackendConnection.open(
                    instance, inst.host, inst.port, inst.user, inst.password))
                    for _ in range(self.connections)]
        except Exception as exc:
            self.close()
            raise BenchError(f"--scatter: the floor cannot reach the shards: {exc}") from None

    def close(self) -> None:
        for conns in self.conns.values():
            for conn in conns:
                conn.close()
        self.conns.clear()
        self.loop.close()

    def statements(self, sql: str) -> list[tuple[str, bytes]]:
        """(instance, framed COM_QUERY) per shard: ``sql`` with ``{table}`` its shard table."""
        return [(t.instance, frame(b"\x03" + sql.format(table=f"`{t.database}`.orders")
                                   .encode(), 0)) for t in self.shards]

    def timed(self, statements: list[tuple[str, bytes]], seconds: float,
              latencies: list[float]) -> None:
        """Run the statements as one query, again and again for ``seconds`` (at least once)."""
        runs: list[tuple[BackendConnection, list[bytes]]] = []
        for instance, conns in self.conns.items():
            mine = [packets for name, packets in statements if name == instance]
            runs += [(conn, mine[k::len(conns)]) for k, conn in enumerate(conns)
                     if mine[k::len(conns)]]

        async def once() -> Any:
            return await asyncio.gather(*(conn.pipeline(share) for conn, share in runs))

        stop = time.perf_counter() + seconds
        while True:
            t = time.perf_counter()
            self.loop.run_until_complete(once())
            latencies.append(time.perf_counter() - t)
            if time.perf_counter() >= stop:
                return
