"""The TCP sockets Linux lists in /proc/net/tcp and /proc/net/tcp6."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

LISTEN = "0A"  # the state column's TCP_LISTEN
TIME_WAIT = "06"


def tcp_sockets() -> Iterator[tuple[int, str, str]]:
    """(local port, state, inode) of each listed socket; nothing where the tables cannot be
    read (not Linux)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cells = line.split()  # sl, local address:port (hex), remote, state, ..., inode
            if len(cells) > 9:
                yield int(cells[1].rsplit(":", 1)[1], 16), cells[3], cells[9]
