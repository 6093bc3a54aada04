"""/metrics for a DAL of several workers: every worker's families, added up.

The metrics endpoint runs in worker 0. At each scrape it collects its own families (the same
`ServerCollector` a single worker exports) and asks every other worker for theirs over the
fleet channel (dal/fleet.py), then merges sample by sample (same name, same labels):

- counters and histograms (buckets, _sum, _count) are summed: they count what the clients did,
  wherever it happened;
- gauges are summed too (pool connections in use, idle, waiting, each worker's share of
  pool.max_size, connected clients), except those in `MAX`: a state every worker has on its own
  (breaker state: the worst one shows) or a figure every worker reads from the same shared place
  (a migration's phase and progress, read from dal_meta), which summing would multiply.

A worker that does not answer a scrape (dead, or stuck past the timeout) keeps its last
counters and histograms in the sum, so that totals never go backwards; its gauges are left out.
``dal_workers{state="answering"|"missing"}`` says how many answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric

from dal.metrics import ServerCollector

if TYPE_CHECKING:
    from dal.ports import ServerPort

# Families merged by taking the largest value rather than the sum (see the module docstring).
MAX = frozenset({
    "dal_breaker_state",
    "dal_migration_phase",
    "dal_migration_backfill_rows",
    "dal_migration_backfill_rows_per_second",
    "dal_migration_repair_depth",
})
SCRAPE_TIMEOUT = 5.0  # seconds the HTTP thread waits for the event loop's answer


def to_wire(families: Iterable[Metric]) -> list[list[Any]]:
    """Families as JSON-able lists: [name, type, help, [[sample name, labels, value], ...]]."""
    return [[f.name, f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]]
            for f in families]


def from_wire(data: list[list[Any]]) -> list[Metric]:
    families = []
    for name, type_, documentation, samples in data:
        family = Metric(name, documentation, type_)
        for sample_name, labels, value in samples:
            family.add_sample(sample_name, labels, value)
        families.append(family)
    return families


def merge(answers: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family per name, its samples added up across ``answers`` (or the largest taken, for
    the families in `MAX`). A series only some workers have keeps its samples together, in the
    first such worker's order."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in answers:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            largest = family.name in MAX
            series = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                old = series.get(key)
                series[key] = (sample.value if old is None
                               else max(old, sample.value) if largest else old + sample.value)
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class FleetCollector:
    """The registered collector of worker 0 when there are several workers."""

    def __init__(self, server: ServerPort, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.last: dict[int, list[Metric]] = {}  # each peer's last answer

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry would otherwise collect at registration, on the event
        loop thread that the collection waits for."""
        return []

    def collect(self):
        """Runs in the HTTP server's thread: the gathering runs on the event loop."""
        future = asyncio.run_coroutine_threadsafe(self.gather(), self.loop)
        yield from future.result(SCRAPE_TIMEOUT)

    async def gather(self) -> list[Metric]:
        """This worker's families and the peers', merged."""
        fleet = self.server.fleet
        own = list(ServerCollector(self.server).collect())
        answers = await fleet.ask({"op": "metrics"})
        peers = []
        for index in fleet.peers:
            if index in answers:
                self.last[index] = from_wire(answers[index])
                peers.append(self.last[index])
            elif index in self.last:  # gone: its counts stay, its gauges go
                peers.append([f for f in self.last[index] if f.type != "gauge"])
        workers = GaugeMetricFamily("dal_workers", "Worker processes of this DAL, by whether "
                                    "they answered this scrape (a missing worker's counters "
                                    "stay in the totals at their last values)",
                                    labels=["state"])
        workers.add_metric(["answering"], 1 + len(answers))
        workers.add_metric(["missing"], len(fleet.peers) - len(answers))
        return [*merge([own, *peers]), workers]
