"""A bounded LRU of plans keyed by (fingerprint, session schema, config generation)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")

# Statements longer than this (bulk INSERTs) are planned every time instead of filling the cache.
MAX_CACHED_KEY = 4096


class PlanCache(Generic[V]):
    """Least-recently-used cache with hit and miss counters."""

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[tuple, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> V | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return value

    def put(self, key: tuple, value: V) -> None:
        if len(key[0]) > MAX_CACHED_KEY:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
