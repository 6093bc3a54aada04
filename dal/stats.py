"""Statement latency: histograms by statement kind and per-fingerprint digests.

Cheap on the hot path: the session takes one `time.perf_counter()` when a statement arrives
and one when its response ends; `StatementStats.finish` then does a bisect, a few integer adds
and one dict lookup. Exported by `dal.metrics` (histograms) and `SHOW DAL STATEMENTS` (digests).
"""

from __future__ import annotations

from bisect import bisect_left
from time import perf_counter

from pool.histogram import Histogram

MAX_DIGESTS = 2000  # fingerprints tracked; then the cheaper half is folded into one row
OTHER = b"(other statements)"
# A fingerprint is quick once it has been answered this many times in this mean (seconds),
# with warnings or an error in at most one answer of QUICK_DIAGNOSTICS: `pool.pipeline_spread`
# queues statements only behind quick ones (pool/pool.py), so that neither a slow statement
# nor one whose session may read its warnings next has others run behind it by choice.
QUICK_AFTER = 20
QUICK_MEAN = 0.005
QUICK_DIAGNOSTICS = 100


class Digest:
    """One statement fingerprint's totals."""

    __slots__ = ("count", "errors", "max", "total", "warned")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.warned = 0  # answers with warnings (relayed ones: `StatementStats.note_warnings`)
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
            if len(self.digests) >= MAX_DIGESTS:
                self._prune()
            digest = self.digests[fingerprint] = Digest()
        digest.count += 1
        digest.total += elapsed
        if failed:
            digest.errors += 1
        if elapsed > digest.max:
            digest.max = elapsed

    def quick(self, fingerprint: bytes | None) -> bool:
        """Whether statements of ``fingerprint`` have been answered quickly so far (at least
        `QUICK_AFTER` of them, `QUICK_MEAN` on average) and seldom with warnings or errors;
        False for one not seen enough."""
        digest = self.digests.get(fingerprint) if fingerprint is not None else None
        return (digest is not None and digest.count >= QUICK_AFTER
                and digest.total < QUICK_MEAN * digest.count
                and (digest.errors + digest.warned) * QUICK_DIAGNOSTICS <= digest.count)

    def note_warnings(self, fingerprint: bytes | None) -> None:
        """The statement of ``fingerprint`` just answered (`finish`) had warnings."""
        digest = self.digests.get(fingerprint) if fingerprint is not None else None
        if digest is not None:
            digest.warned += 1

    def _prune(self) -> None:
        """Fold the half of the fingerprints with the least total time into one row, so that
        new statement shapes are still tracked in a long-running DAL (amortized: once per
        MAX_DIGESTS / 2 new fingerprints)."""
        ranked = sorted(self.digests.items(), key=lambda item: item[1].total)
        other = self.digests.pop(OTHER, None) or Digest()
        for key, d in ranked[:len(ranked) // 2]:
            if key == OTHER:
                continue
            del self.digests[key]
            other.count += d.count
            other.errors += d.errors
            other.warned += d.warned
            other.total += d.total
            other.max = max(other.max, d.max)
        self.digests[OTHER] = other

    def top(self, limit: int = 50) -> list[tuple[bytes, Digest]]:
        """The fingerprints that took the most total time."""
        return sorted(self.digests.items(), key=lambda item: item[1].total, reverse=True)[:limit]
