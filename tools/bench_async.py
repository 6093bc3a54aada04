"""The asyncio load generator of `dal bench --clients-set` for client counts beyond sysbench
(or without --sysbench): thousands of point-select clients in a few processes.

The built-in generator gives each connection a thread, which does not scale to thousands of
clients; here each worker process runs one event loop (uvloop) with its share of the clients,
each an asyncio MySQL connection (DAL's client-role `BackendConnection`, a few KB each), doing
the same random point selects as the other generators, one at a time. `worker` speaks the
messages of tools/bench.py's `builtin_round` (ready / failed / done), which runs it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from pool.connection import BackendConnection, BackendError
from tools.bench_common import MAX_ERROR_SAMPLES, QUERY, Target

QUERY_TIMEOUT = 10.0  # seconds one query may take before it counts as an error
CONNECT_PARALLEL = 64  # logins in flight at once per process (keeps accept backlogs sane)
CONNECT_TIMEOUT = 30.0
SAMPLES_PER_PROC = 500_000
LOGINS_PER_SECOND = 200  # a pessimistic login rate for the ready deadline


def ready_timeout(clients: int) -> float:
    """Seconds to allow for ``clients`` logins before a round is declared failed."""
    return max(30.0, clients / LOGINS_PER_SECOND)


@dataclass
class _Stats:
    queries: int = 0
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    error_samples: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES and message not in self.error_samples:
            self.error_samples.append(message)


async def _open(target: Target, gate: asyncio.Semaphore) -> BackendConnection:
    async with gate:
        return await BackendConnection.open("client", target.host, target.port, target.user,
                                            target.password, target.database,
                                            timeout=CONNECT_TIMEOUT)


async def _client(target: Target, conn: BackendConnection, table_size: int, deadline: float,
                  cap: int, stats: _Stats) -> None:
    """One connection's loop: random point selects until the deadline or ``cap`` queries."""
    rnd = random.Random()
    clock = time.perf_counter
    append = stats.latencies.append
    done = 0
    while done < cap:
        t = clock()
        if t >= deadline:
            break
        sql = QUERY % (int(rnd.random() * table_size) + 1)
        done += 1
        try:
            await asyncio.wait_for(conn.query(sql), QUERY_TIMEOUT)
        except (BackendError, OSError, TimeoutError) as exc:
            stats.note(f"{sql}: {type(exc).__name__}: {exc}")
            if isinstance(exc, BackendError) and exc.code not in (2013, 2006) and not conn.closed:
                continue  # an error answer; the connection still works
            conn.close()
            try:
                conn = await _open(target, asyncio.Semaphore(1))
            except (BackendError, OSError) as again:
                stats.note(f"reconnect: {type(again).__name__}: {again}")
                return
            continue
        append(clock() - t)
        stats.queries += 1
    conn.close()


async def _run(target: Target, clients: int, table_size: int, duration: float, cap: int,
               start: Any, results: Any) -> None:
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    opened = await asyncio.gather(*(_open(target, gate) for _ in range(clients)),
                                  return_exceptions=True)
    conns = [c for c in opened if isinstance(c, BackendConnection)]
    failed = [c for c in opened if not isinstance(c, BackendConnection)]
    if failed:
        for conn in conns:
            conn.close()
        results.put({"kind": "failed", "error": f"{len(failed)} of {clients} logins failed, "
                     f"the first: {type(failed[0]).__name__}: {failed[0]}"})
        return
    results.put({"kind": "ready"})
    await asyncio.get_running_loop().run_in_executor(None, start.wait)
    t0 = time.perf_counter()
    stats = _Stats()
    await asyncio.gather(*(_client(target, c, table_size, t0 + duration, cap, stats)
                           for c in conns))
    seconds = time.perf_counter() - t0
    latencies = stats.latencies
    if len(latencies) > SAMPLES_PER_PROC:
        latencies = latencies[:: len(latencies) // SAMPLES_PER_PROC + 1]
    results.put({"kind": "done", "queries": stats.queries, "errors": stats.errors,
                 "seconds": seconds, "latencies": latencies,
                 "error_samples": stats.error_samples})


def worker(target: Target, clients: int, table_size: int, duration: float, cap: int,
           start: Any, results: Any) -> None:
    """A worker process: log ``clients`` connections in, wait for ``start``, query for
    ``duration`` seconds; the same messages as tools/bench.py's `_worker`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import uvloop

    uvloop.run(_run(target, clients, table_size, duration, cap, start, results))
