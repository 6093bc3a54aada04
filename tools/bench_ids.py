"""`dal bench --ids`: order ids generated per second in one process (router/genes.py).

The hot call DAL makes for each generated id, `GeneGenerator.next_id(user, merchant)`, in a
tight loop of this process, no database and no DAL needed. Three runs of
``count`` ids each; the report gives ids per second of wall time (median and best run) and of
CPU time (`time.process_time`, which on a shared machine is not inflated by stolen time).

In real time one worker issues at most 32,000 ids per second (32 per millisecond); a loop
faster than that borrows milliseconds ahead of the clock (router/genes.py), so `ahead_seconds`
says how far ahead of the clock the generator ran at the end of the last run: the price of a
burst at that rate, not an error.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from router.genes import PER_TICK, TICKS_PER_SECOND, GeneGenerator, clock_tick

RUNS = 3
DEFAULT_COUNT = 1_000_000
WORKER_ID = 31  # any valid id: nothing is persisted, no lease is taken


@dataclass
class IdFigures:
    """What `measure` found."""

    count: int  # ids per run
    runs: int
    ids_per_second: float  # wall clock, median of the runs
    ids_per_second_best: float
    ids_per_cpu_second: float  # CPU time, median of the runs
    ahead_seconds: float  # how far the last run's generator ran ahead of the clock
    real_time_limit: int  # ids per second one worker issues without borrowing

    def describe(self) -> str:
        return (f"order ids, one process ({self.runs} x {self.count:,} next_id calls): "
                f"{self.ids_per_second:,.0f}/s (best {self.ids_per_second_best:,.0f}/s; "
                f"{self.ids_per_cpu_second:,.0f} per CPU second); the generator ran "
                f"{self.ahead_seconds:.1f} s ahead of the clock (real-time rate of one worker: "
                f"{self.real_time_limit:,}/s)")

    def as_json(self) -> dict[str, float | int]:
        return {key: round(value, 1) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


def one_run(count: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, seconds ahead of the clock) of ``count`` ids."""
    gen = GeneGenerator(WORKER_ID)
    next_id = gen.next_id
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        next_id(i, 7)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, max(0, gen.tick - clock_tick()) / TICKS_PER_SECOND


def measure(count: int = DEFAULT_COUNT, runs: int = RUNS) -> IdFigures:
    """``runs`` runs of ``count`` ids each."""
    results = [one_run(count) for _ in range(runs)]
    rates = [count / wall for wall, _, _ in results]
    return IdFigures(
        count=count, runs=runs, ids_per_second=statistics.median(rates),
        ids_per_second_best=max(rates),
        ids_per_cpu_second=statistics.median(count / max(cpu, 1e-9) for _, cpu, _ in results),
        ahead_seconds=results[-1][2], real_time_limit=PER_TICK * TICKS_PER_SECOND)
