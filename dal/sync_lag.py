"""`dal sync`'s lag as the proxy reads it: the follower's JSON status file (tools/sync_status.py
writes it every second), for `SHOW DAL SHARDS`."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

STALE_AFTER = 10.0  # seconds: an older status file means the follower is not running


def read_status(path: str) -> dict | None:
    """The status file if the follower wrote it within STALE_AFTER seconds, else None."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(Path(path).read_text())
        if time.time() - float(data.get("updated", 0)) <= STALE_AFTER:
            return data
    return None


def shard_lag(status: dict | None, sources: list[str]) -> tuple[object, object]:
    """(lag seconds, lag events) over ``sources``: the worst of them; None when unknown."""
    if status is None:
        return None, None
    rows = [status["sources"][s] for s in sources if s in status["sources"]]
    if not rows:
        return None, None
    return (max(r["lag_seconds"] for r in rows), max(r["lag_events"] for r in rows))
