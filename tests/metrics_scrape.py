"""Read DAL's /metrics in tests: samples by (name, labels)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when it is absent (a counter not yet incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def names(samples: Samples) -> set[str]:
    """Sample names seen, e.g. dal_pool_max, dal_pins_total, dal_x_seconds_bucket."""
    return {name for name, _ in samples}


def family_names(port: int, host: str = "127.0.0.1") -> set[str]:
    """Every sample name the families on /metrics may carry, including families that have no
    sample yet (a labelled counter nothing has incremented)."""
    body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    found: set[str] = set()
    for family in text_string_to_metric_families(body):
        found |= {family.name, *(family.name + s for s in ("_total", "_bucket", "_sum",
                                                            "_count"))}
        found |= {s.name for s in family.samples}
    return found
