"""Order IDs that carry their shards (the "gene").

120 is not a power of two, so the shards cannot sit in low bits. Instead an ID is
``base * 14400 + merchant_shard * 120 + user_shard``, so that ``id % 120`` is the user shard
and ``(id // 120) % 120`` the merchant shard. ``base`` is time-ordered and unique across DAL
processes: 31 bits of seconds since 2026-01-01, 10 bits of worker id (config
``server.worker_id``), 9 bits of sequence. A second's 512 sequence numbers used up borrow the
next second, so IDs stay unique and increasing under any burst; the clock catches up when the
burst ends. IDs stay below 2^63 until 2060.
"""

from __future__ import annotations

import time

EPOCH = 1767225600  # 2026-01-01T00:00:00Z
SHARDS = 120
GENE_SPACE = SHARDS * SHARDS
WORKER_BITS = 10
SEQUENCE_BITS = 9


def user_shard_of_gene(gene_id: int, shards: int = SHARDS) -> int:
    """The user shard an order ID names."""
    return gene_id % shards


def merchant_shard_of_gene(gene_id: int, shards: int = SHARDS) -> int:
    """The merchant shard an order ID names."""
    return (gene_id // shards) % shards


class GeneGenerator:
    """Generates gene IDs for one process (one worker id)."""

    def __init__(self, worker_id: int, clock: type[time] | None = None) -> None:
        if not 0 <= worker_id < 1 << WORKER_BITS:
            raise ValueError(f"worker id {worker_id} out of range 0..{(1 << WORKER_BITS) - 1}")
        self.worker_id = worker_id
        self._time = (clock or time).time
        self._second = 0
        self._sequence = 0

    def next_id(self, user_id: int, merchant_id: int) -> int:
        """A new ID whose gene names the shards of ``user_id`` and ``merchant_id``."""
        now = max(int(self._time()) - EPOCH, 0)
        if now > self._second:
            self._second, self._sequence = now, 0
        elif self._sequence >= 1 << SEQUENCE_BITS:
            self._second, self._sequence = self._second + 1, 0  # borrow the next second
        base = ((self._second << WORKER_BITS | self.worker_id) << SEQUENCE_BITS) | self._sequence
        self._sequence += 1
        return base * GENE_SPACE + (merchant_id % SHARDS) * SHARDS + user_id % SHARDS
