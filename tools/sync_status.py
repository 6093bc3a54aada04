"""Lag of `dal sync` per source instance: a JSON status file (written atomically every second,
read by `SHOW DAL SHARDS`) and Prometheus metrics on the follower's own port."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.sync_follow import Follower

class SyncStatus:
    """Collects the followers' counters for the status file, the metrics and stderr."""

    def __init__(self, followers: list[Follower], path: str) -> None:
        self.followers = followers
        self.path = Path(path)
        self._bytes: dict[str, int | None] = {}
        self._bytes_at = 0.0

    def snapshot(self) -> dict:
        """Per source: positions, lag and counters."""
        now = time.time()
        if now - self._bytes_at >= 1.0:
            self._bytes_at = now
            for f in self.followers:
                try:
                    self._bytes[f.name] = f.bytes_behind()
                except Exception:
                    self._bytes[f.name] = None
        sources = {}
        for f in self.followers:
            pos = f.applied_pos
            sources[f.name] = {
                "applied_file": pos[0] if pos else None,
                "applied_pos": pos[1] if pos else None,
                "lag_seconds": round(f.lag_seconds(), 3),
                "lag_events": max(f.events_read - f.events_applied - f.events_dropped, 0),
                "xa_prepared": len(f.prepared.held),
                "lag_bytes": self._bytes.get(f.name),
                "events_applied": f.events_applied,
                "transactions_applied": f.txns_applied,
                "reconnects": f.restarts,
                "error": f.error,
            }
        return {"pid": os.getpid(), "updated": now, "sources": sources}

    def write(self) -> None:
        """Replace the status file atomically (write, fsync, rename)."""
        data = json.dumps(self.snapshot(), indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def lines(self) -> list[str]:
        snap = self.snapshot()["sources"]
        return [f"sync {name}: applied {s['transactions_applied']} txns, {s['events_applied']} "
                f"rows; at {s['applied_file']}:{s['applied_pos']}; lag {s['lag_seconds']:.1f} s, "
                f"{s['lag_events']} events, {s['lag_bytes']} bytes"
                + (f"; last error: {s['error']}" if s["error"] else "")
                for name, s in snap.items()]


def start_metrics(status: SyncStatus, host: str, port: int) -> None:
    """Serve dal_sync_* gauges on ``host:port``/metrics, read from the followers at scrape."""
    from prometheus_client import start_http_server
    from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            snap = status.snapshot()["sources"]
            gauges = {
                "lag_seconds": GaugeMetricFamily(
                    "dal_sync_lag_seconds", "Age of the oldest source transaction read and not "
                    "yet applied to the copy", labels=["source"]),
                "lag_events": GaugeMetricFamily(
                    "dal_sync_lag_events", "Row events read from the source binlog and not yet "
                    "applied", labels=["source"]),
                "lag_bytes": GaugeMetricFamily(
                    "dal_sync_lag_bytes", "Source binlog bytes after the last applied "
                    "transaction", labels=["source"]),
                "xa_prepared": GaugeMetricFamily(
                    "dal_sync_xa_prepared", "XA transactions read from the source at XA PREPARE "
                    "and not yet decided: their rows wait for XA COMMIT", labels=["source"]),
            }
            applied = CounterMetricFamily("dal_sync_applied_events", "Row events applied",
                                          labels=["source"])
            for name, s in snap.items():
                for key, family in gauges.items():
                    if s[key] is not None:
                        family.add_metric([name], s[key])
                applied.add_metric([name], s["events_applied"])
            yield from gauges.values()
            yield applied

    REGISTRY.register(Collector())
    start_http_server(port, addr=host)
