"""Statement digests stay bounded and keep tracking new fingerprints."""

from __future__ import annotations

from time import perf_counter

from dal import stats
from dal.stats import OTHER, StatementStats


def test_new_fingerprints_are_tracked_after_the_table_fills(monkeypatch) -> None:
    monkeypatch.setattr(stats, "MAX_DIGESTS", 10)
    s = StatementStats()
    for i in range(25):
        s.finish("select", i % 5 == 0, perf_counter() - 0.001 * (i + 1), f"q{i}".encode())
    assert len(s.digests) <= 11
    assert b"q24" in s.digests, "the newest fingerprint must be tracked"
    assert sum(d.count for d in s.digests.values()) == 25
    assert sum(d.errors for d in s.digests.values()) == 5
    assert s.digests[OTHER].count > 0
    assert s.top(1)[0][0] in (OTHER, b"q24")


def test_latency_histogram_counts_every_statement() -> None:
    s = StatementStats()
    for _ in range(3):
        s.finish("shard:select", False, perf_counter(), None)
    histogram = s.latency["shard:select"]
    assert histogram.count == 3 and histogram.cumulative()[-1] == ("+Inf", 3)
