"""A live terminal view of a running DAL: backend pools, top statements, breakers.

Reads DAL's admin statements over one admin connection (the config's listen address, or
--host/--port): SHOW DAL POOLS (per instance: max, in use, idle, connecting, waiting, opened,
closed), SHOW DAL STATEMENTS (per statement fingerprint: count, errors, total/avg/max
latency; the rate column is the count's change since the previous frame), and SHOW DAL
BREAKERS when this DAL has circuit breakers. Ctrl-C quits.

  dal top                        refresh every second until Ctrl-C
  dal top --once                 print one frame and exit (for scripts and tests)
  dal top --port 3317 --limit 20

Exit status: 0, or 1 when DAL cannot be reached or refuses the admin login.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import pymysql
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from config.loader import load_config

UNKNOWN_STATEMENT = 1235  # what DAL answers for an admin statement it does not have


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="DAL's host (default: the config's listen host)")
    parser.add_argument("--port", type=int, help="DAL's port (default: the config's listen port)")
    parser.add_argument("--user", default="admin", help="an admin user (default: %(default)s)")
    parser.add_argument("--password", default="admin", help="its password (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between frames (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=10,
                        help="statements shown, the most total time first (default: %(default)s)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")


@dataclass
class Frame:
    """One reading of DAL's admin statements."""

    at: float
    pools: list[dict] = field(default_factory=list)
    statements: list[dict] = field(default_factory=list)
    breakers: list[dict] | None = None


def read_frame(conn: pymysql.connections.Connection) -> Frame:
    frame = Frame(time.monotonic())
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW DAL POOLS")
        frame.pools = list(cur.fetchall())
        cur.execute("SHOW DAL STATEMENTS")
        frame.statements = list(cur.fetchall())
        try:
            cur.execute("SHOW DAL BREAKERS")
            frame.breakers = list(cur.fetchall())
        except pymysql.MySQLError as exc:
            if exc.args[0] != UNKNOWN_STATEMENT:
                raise
    return frame


def _bar(used: int, size: int, width: int = 16) -> Text:
    filled = round(width * used / size) if size else 0
    style = "red" if used >= size else "yellow" if used >= size * 0.75 else "green"
    return Text("#" * filled, style=style) + Text("." * (width - filled), style="dim")


# Below this terminal width the tables drop what does not fit (pool addresses, the breakers'
# settings) and use short headers, so that every column keeps its numbers readable.
WIDE = 120
WIDE_BREAKERS = 180  # the breakers' settings (error_rate, window, ...) need this much more
_SHORT = {"in_use": "used", "connecting": "conn", "waiting": "wait", "errors": "errs",
          "failures": "fails", "rejected": "rejects", "retry_in": "retry"}
_BREAKER_LIVE = ("instance", "state", "reason", "calls", "failures", "slow", "rejected",
                 "retry_in")


def _numbers(table: Table, names: tuple[str, ...], narrow: bool) -> None:
    """Right-aligned columns that never shrink below their header."""
    for name in names:
        header = _SHORT.get(name, name) if narrow else name
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))


def render(frame: Frame, previous: Frame | None, limit: int, title: str,
           width: int = WIDE) -> Group:
    """The frame as rich tables for a terminal ``width`` columns wide; rates need the previous
    frame."""
    narrow = width < WIDE
    pools = Table(title="backend pools", title_justify="left", expand=False)
    pools.add_column("instance", no_wrap=True)
    if not narrow:
        pools.add_column("address", no_wrap=True)
    pools.add_column("use", no_wrap=True)
    counts = ("in_use", "idle", "connecting", "waiting", "max", "opened", "closed")
    _numbers(pools, counts, narrow)
    for p in frame.pools:
        pools.add_row(str(p["instance"]), *(() if narrow else (str(p["address"]),)),
                      _bar(int(p["in_use"]), int(p["max"]), 8 if narrow else 16),
                      *(str(p[k]) for k in counts))
    before = {s["fingerprint"]: int(s["count"]) for s in previous.statements} if previous else {}
    seconds = frame.at - previous.at if previous else 0.0
    statements = Table(title=f"top statements (by total time, {limit} shown)",
                       title_justify="left")
    numbers = ("count", "per_s", "errors", "avg_ms", "max_ms", "total_ms")
    statements.add_column("fingerprint", overflow="ellipsis", no_wrap=True,
                          max_width=max(16, min(70, width - 60)))
    _numbers(statements, numbers, narrow)
    for s in frame.statements[:limit]:
        rate = ((int(s["count"]) - before.get(s["fingerprint"], 0)) / seconds
                if seconds > 0 else None)
        statements.add_row(str(s["fingerprint"]), str(s["count"]),
                           "-" if rate is None else f"{rate:.0f}", str(s["errors"]),
                           str(s["avg_ms"]), str(s["max_ms"]), str(s["total_ms"]))
    parts: list = [Text(title, style="bold"), pools, statements]
    if frame.breakers is not None:
        breakers = Table(title="circuit breakers", title_justify="left")
        columns = list(frame.breakers[0]) if frame.breakers else ["(none)"]
        if width < WIDE_BREAKERS and frame.breakers:
            columns = [c for c in columns if c in _BREAKER_LIVE]
        for name in columns:
            header = _SHORT.get(name, name) if narrow else name
            if name == "reason":  # free text: wraps in what the other columns leave
                breakers.add_column(name, overflow="fold")
            else:
                breakers.add_column(header, no_wrap=True, min_width=len("half_open")
                                    if name == "state" else len(header))
        for b in frame.breakers:
            breakers.add_row(*(str(b[c]) for c in columns))
        parts.append(breakers)
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    if host is None or port is None:
        listen = load_config(args.config).server.listen
        host, port = host or listen.host, port or listen.port
    try:
        conn = pymysql.connect(host=host, port=port, user=args.user, password=args.password,
                               connect_timeout=5, read_timeout=10)
    except pymysql.MySQLError as exc:
        print(f"dal top: cannot connect to DAL at {host}:{port} as {args.user}: {exc}",
              file=sys.stderr)
        return 1
    title = f"DAL {host}:{port}"
    console = Console()
    try:
        frame = read_frame(conn)
        if args.once:
            console.print(render(frame, None, args.limit, title, console.width))
            return 0
        from rich.live import Live

        with Live(render(frame, None, args.limit, title, console.width), console=console,
                  auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                previous, frame = frame, read_frame(conn)
                live.update(render(frame, previous, args.limit,
                                   f"{title}  {time.strftime('%H:%M:%S')}", console.width),
                            refresh=True)
    except KeyboardInterrupt:
        return 0
    except pymysql.MySQLError as exc:
        print(f"dal top: DAL at {host}:{port} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
