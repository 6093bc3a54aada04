"""Order IDs that carry their shards (the "gene"), and the per-process generator that makes them.

120 is not a power of two, so the shards cannot sit in low bits. Instead an ID is
``base * 14400 + merchant_shard * 120 + user_shard``, so that ``id % 120`` is the user shard
and ``(id // 120) % 120`` the merchant shard. ``base`` is time-ordered and unique across the
fleet: ``tick << 10 | worker << 5 | sequence``, where ``tick`` counts milliseconds since
2026-01-01, ``worker`` is one of 32 worker ids (leased, dal/worker_lease.py) and ``sequence``
one of 32 numbers per millisecond: 32,000 ids per second per worker in real time. A burst
beyond that borrows the next millisecond (the generator runs ahead of the clock until it catches
up; ``borrowed`` counts those ticks); a clock that steps back is treated the same way, so a
generator never issues an id at or below one it issued. IDs stay below 2^63 until 2045-10.

Restart safety: a generator issues ids only below its ``ceiling`` (a tick persisted before any
id at it is issued); when a tick reaches it, ``reserve`` is called to persist a higher one. A
restarted worker starts at the persisted ceiling, so above everything it issued before.

The layout before this one (31 bits of seconds, 10 of worker, 9 of sequence) used 2^19 bases
per second; this one uses 2^20 from the same epoch, so its IDs are above every ID issued before.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

EPOCH = 1767225600  # 2026-01-01T00:00:00Z
EPOCH_MS = EPOCH * 1000
SHARDS = 120
GENE_SPACE = SHARDS * SHARDS
WORKER_BITS = 5
SEQUENCE_BITS = 5
WORKERS = 1 << WORKER_BITS
PER_TICK = 1 << SEQUENCE_BITS  # ids per worker per millisecond
TICKS_PER_SECOND = 1000
MAX_ID = (1 << 63) - 1
# The last tick whose ids all stay below 2^63 (2045-10).
LAST_TICK = ((MAX_ID // GENE_SPACE + 1) >> (WORKER_BITS + SEQUENCE_BITS)) - 1
END_TICK = LAST_TICK + 1  # no generator's ceiling goes beyond it


def user_shard_of_gene(gene_id: int, shards: int = SHARDS) -> int:
    """The user shard an order ID names."""
    return gene_id % shards


def merchant_shard_of_gene(gene_id: int, shards: int = SHARDS) -> int:
    """The merchant shard an order ID names."""
    return (gene_id // shards) % shards


def worker_of_id(order_id: int) -> int:
    """The worker id that generated ``order_id`` (this layout's ids only)."""
    return (order_id // GENE_SPACE >> SEQUENCE_BITS) % WORKERS


def tick_of_id(order_id: int) -> int:
    """The tick (milliseconds since EPOCH) of ``order_id`` (this layout's ids only)."""
    return order_id // GENE_SPACE >> (WORKER_BITS + SEQUENCE_BITS)


def first_id_of_tick(tick: int) -> int:
    """The smallest id any worker can issue at ``tick``."""
    return (tick << (WORKER_BITS + SEQUENCE_BITS)) * GENE_SPACE


def clock_tick(clock: Callable[[], float] = time.time) -> int:
    """The current tick by ``clock`` (milliseconds since EPOCH)."""
    return int(clock() * 1000) - EPOCH_MS


def tick_time(tick: int) -> str:
    """``tick`` as a UTC time, ``YYYY-MM-DD HH:MM:SS.mmm``."""
    stamp = datetime.datetime.fromtimestamp(EPOCH + tick / 1000, datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class GeneGenerator:
    """Generates gene IDs for one process (one worker id), never at or below one it issued.

    ``start`` is the first tick it may use (a restarted worker's persisted ceiling);
    ``ceiling`` the first tick it may not use yet, and ``reserve(tick)`` is called with a tick
    at or above it to persist and return a higher ceiling (it may raise to refuse the id).
    Without ``reserve`` the ceiling is the end of the layout (tests, tools)."""

    def __init__(self, worker_id: int, clock: Callable[[], float] | None = None, *,
                 start: int = 0, ceiling: int = END_TICK,
                 reserve: Callable[[int], int] | None = None) -> None:
        self._clock = clock or time.time
        self._reserve = reserve
        self.borrowed = 0  # ticks used ahead of the clock (bursts, a clock stepped back)
        self.reset(worker_id, start, ceiling)

    def reset(self, worker_id: int, start: int, ceiling: int) -> None:
        """Issue from now on as ``worker_id``, from tick ``start``, below ``ceiling``."""
        if not 0 <= worker_id < WORKERS:
            raise ValueError(f"worker id {worker_id} out of range 0..{WORKERS - 1}")
        self.worker_id = worker_id
        self._worker = worker_id << SEQUENCE_BITS
        self._tick = start
        self._sequence = 0
        self.ceiling = min(ceiling, END_TICK)

    @property
    def tick(self) -> int:
        """The tick of the last id issued (or the start tick)."""
        return self._tick

    def raise_ceiling(self, ceiling: int) -> None:
        """A higher ceiling was persisted (the lease's renewal)."""
        if ceiling > self.ceiling:
            self.ceiling = min(ceiling, END_TICK)

    def next_id(self, user_id: int, merchant_id: int) -> int:
        """A new ID whose gene names the shards of ``user_id`` and ``merchant_id``."""
        now = int(self._clock() * 1000) - EPOCH_MS
        sequence = self._sequence
        if now > self._tick:
            self._tick, sequence = now, 0
        elif sequence >= PER_TICK:
            self._tick += 1  # borrow the next tick; also what a clock stepped back does
            sequence = 0
            self.borrowed += 1
        if self._tick >= self.ceiling:
            self._extend(sequence)
        self._sequence = sequence + 1
        return (((self._tick << (WORKER_BITS + SEQUENCE_BITS)) | self._worker | sequence)
                * GENE_SPACE + (merchant_id % SHARDS) * SHARDS + user_id % SHARDS)

    def _extend(self, sequence: int) -> None:
        self._sequence = sequence  # if reserve raises, this (tick, sequence) was not issued
        if self._tick > LAST_TICK:
            raise OverflowError("order ids are exhausted: the gene layout ends at tick "
                                f"{LAST_TICK} (2045-10)")
        if self._reserve is None:
            raise OverflowError("the generator's ceiling is reached and it has no reserve")
        self.ceiling = min(max(self.ceiling, self._reserve(self._tick)), END_TICK)
        assert self.ceiling > self._tick, "reserve returned a ceiling at or below the tick"
