"""The XA decision log: one JSON object per line, appended, fsynced before any XA COMMIT.

``{"xid": gtrid, "decision": "commit", "branches": [[instance, bqual_hex], ...], "at": t}``
is written once every branch is prepared; ``{"xid": gtrid, "done": true}`` once every branch
committed. A gtrid with a decision and no "done" is in doubt: recovery commits its prepared
branches. A prepared branch whose gtrid has no decision is rolled back (presumed abort).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class DecisionLog:
    """Append-only writer; each record is one write() of one line, then fsync."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _append(self, record: dict, sync: bool) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        if sync:
            os.fsync(self._fd)

    def decide_commit(self, gtrid: str, branches: list[tuple[str, str]]) -> None:
        """The durable commit decision; returns once it is on disk."""
        self._append({"xid": gtrid, "decision": "commit", "branches": branches,
                      "at": round(time.time(), 3)}, sync=True)

    def done(self, gtrid: str) -> None:
        """Every branch committed (not fsynced: losing it only makes recovery look again)."""
        self._append({"xid": gtrid, "done": True}, sync=False)

    def close(self) -> None:
        os.close(self._fd)


def pending_decisions(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Commit decisions without a "done" record: gtrid -> branches. A torn last line (a crash
    mid-write, before its fsync returned) is ignored: that transaction was never committed."""
    decided: dict[str, list[tuple[str, str]]] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return decided
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("decision") == "commit":
            decided[record["xid"]] = [tuple(b) for b in record.get("branches", [])]
        elif record.get("done"):
            decided.pop(record["xid"], None)
    return decided


def compact(path: str | Path, keep: dict[str, list[tuple[str, str]]]) -> None:
    """Rewrite the log with only the decisions in ``keep`` (at start-up, before serving)."""
    path = Path(path)
    if not path.exists():
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as out:
        for gtrid, branches in keep.items():
            out.write(json.dumps({"xid": gtrid, "decision": "commit",
                                  "branches": [list(b) for b in branches]},
                                 separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
