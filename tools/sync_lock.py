"""One `dal sync` per config: an exclusive lock on a file next to ``sync.status_file``.

Two followers of one config register on the same sources with the same replica id, and the
second takes the first's binlog connection over. `hold` takes an flock on
``<status_file>.lock`` (released by the kernel when the process ends, however it ends) and
writes the holder's pid into it, so that a refused second start can name the one running.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class AlreadyRunning(Exception):
    """Another follower holds the lock; the message names its pid and the lock file."""


def lock_path(status_file: str | Path) -> Path:
    """The lock file of the follower writing ``status_file``."""
    path = Path(status_file)
    return path.with_name(path.name + ".lock")


def hold(status_file: str | Path, server_id: int) -> IO[str]:
    """Take the lock for the process's lifetime (keep the returned file open); raises
    `AlreadyRunning` if another process holds it."""
    path = lock_path(status_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"another `dal sync` of this config is running (pid {holder}, replica id "
            f"{server_id}; it holds {path}): a second follower with the same replica id would "
            "take its binlog connections over. Stop that one first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
