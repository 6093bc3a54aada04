"""Statement latency: histograms by statement kind and per-fingerprint digests.

Cheap on the hot path: the session takes one `time.perf_counter()` when a statement arrives
and one when its response ends; `StatementStats.finish` then does a bisect, a few integer adds
and one dict lookup. Exported by `dal.metrics` (histograms) and `SHOW DAL STATEMENTS` (digests).
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter

from pool.histogram import Histogram

MAX_DIGESTS = 2000  # fingerprints tracked; later new ones are folded into one "other" row
OTHER = b"(other statements)"


class Digest:
    """One statement fingerprint's totals."""

    __slots__ = ("count", "errors", "max", "total")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total = 0.0
        self.max = 0.0


class StatementStats:
    """Latency by statement kind, and digests by fingerprint."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.digests: dict[bytes, Digest] = {}

    def finish(self, kind: str, failed: bool, started: float, fingerprint: bytes | None) -> None:
        """A statement that started at ``started`` (perf_counter) has just been answered."""
        elapsed = perf_counter() - started
        histogram = self.latency.get(kind)
        if histogram is None:
            histogram = self.latency[kind] = Histogram()
        histogram.counts[bisect_left(histogram.bounds, elapsed)] += 1
        histogram.sum += elapsed
        if fingerprint is None:
            return
        digest = self.digests.get(fingerprint)
        if digest is None:
            key = fingerprint if len(self.digests) < MAX_DIGESTS else OTHER
            digest = self.digests.get(key)
            if digest is None:
                digest = self.digests[key] = Digest()
        digest.count += 1
        digest.total += elapsed
        if failed:
            digest.errors += 1
        if elapsed > digest.max:
            digest.max = elapsed

    def top(self, limit: int = 50) -> list[tuple[bytes, Digest]]:
        """The fingerprints that took the most total time."""
        return sorted(self.digests.items(), key=lambda item: item[1].total, reverse=True)[:limit]
